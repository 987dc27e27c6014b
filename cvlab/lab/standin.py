"""Notebook 01's RGB model and frames: the shipped stand-in for PeopleNet, held-out real video
frames with eye-checked truth, a run of consecutive frames, real photos and synthetic bag frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvlab.lab.workspace import RGB_MODEL_NAME, Workspace


def ensure_rgb_standin(ws: Workspace, max_batch_size: int = 16) -> Path:
    """The shipped RGB stand-in (trained on the real video, :mod:`cvlab.train.standin`) in the
    workspace's model repository as ``peoplenet_rgb_standin``; returns its model folder. Nothing
    is trained: the weights ship inside the package, with their provenance."""
    import json

    from cvlab.export.rgb_standin import write_standin_repository
    from cvlab.train.standin import PROVENANCE_FILE, SHIPPED_DIR, STANDIN_INPUT_SIZE

    model_dir = write_standin_repository(ws.model_repository, RGB_MODEL_NAME, max_batch_size)
    provenance = json.loads((SHIPPED_DIR / PROVENANCE_FILE).read_text())
    ws.update_state(
        rgb_standin={
            "model_dir": model_dir,
            "onnx": model_dir / "1" / "model.onnx",
            "input_size": STANDIN_INPUT_SIZE,
            "trained_on": provenance["trained_on"],
            "epochs": provenance["epochs"],
        }
    )
    return model_dir


def standin_summary() -> str:
    """One line on what the shipped stand-in is and what it learnt from."""
    import json

    from cvlab.train.standin import PROVENANCE_FILE, SHIPPED_DIR

    p = json.loads((SHIPPED_DIR / PROVENANCE_FILE).read_text())
    labels = p["labels"]
    validation = p.get("validation_fold", "").split(" (")[0]
    return (
        f"stand-in: {p['model']}; trained {p['epochs']} epochs on "
        f"{labels['written_frames']} frames of a real camera video (vtest.avi 0-599, labelled "
        f"by SSDLite + BlazeFace; validation: {validation}) and "
        f"{labels['synthetic_daylight_frames']['count']} synthetic frames (bags); frames "
        "600-794 held out"
    )


@dataclass
class RgbSamples:
    """Notebook 01's images, in groups: ``scored`` held-out video frames with eye-checked
    person truth, a ``strip`` of consecutive held-out frames, real ``photos`` (out of domain)
    and ``synthetic`` daylight frames with exact truth (bags)."""

    scored: list[Path]
    truth: list[Any]
    strip: list[Path]
    photos: list[Path]
    synthetic: list[Path]
    synthetic_truth: list[Any] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """Every image once (a frame both scored and in the strip is sent once), in the order the
        groups are listed: what one inference call takes."""
        return list(dict.fromkeys([*self.scored, *self.strip, *self.photos, *self.synthetic]))

    def group(self, name: str, values: list[Any]) -> list[Any]:
        """The entries of ``values`` (one per :attr:`paths` entry) of group ``name``
        (``scored``, ``strip``, ``photos`` or ``synthetic``), in the group's order."""
        position = {p: i for i, p in enumerate(self.paths)}
        return [values[position[p]] for p in getattr(self, name)]


#: Seed of the synthetic daylight frames notebook 01 shows for bags (the stand-in's synthetic
#: training frames use seed 0).
SYNTHETIC_SEED = 1001


def write_synthetic_frames(
    folder: str | os.PathLike[str], count: int, seed: int = SYNTHETIC_SEED
) -> tuple[list[Path], list[Any]]:
    """``count`` synthetic daylight frames the stand-in never saw, at the video's frame size,
    as ``folder/synthetic_rgb_NN.jpg`` with their exact person/bag/face truth."""
    from cvlab.datasets.synthetic import PEOPLENET_CLASSES, SyntheticThermalGenerator
    from cvlab.datasets.video import FRAME_SIZE
    from cvlab.fileio import atomic_write_image

    gen = SyntheticThermalGenerator(FRAME_SIZE, seed, style="rgb", empty_fraction=0.0)
    paths, truth = [], []
    for i in range(max(0, int(count))):
        frame = gen.render(i)
        path = Path(folder) / f"synthetic_rgb_{i:02d}.jpg"
        atomic_write_image(path, frame.image, quality=95)
        gt = frame.to_detections(PEOPLENET_CLASSES)
        gt.image_path = str(path)
        paths.append(path)
        truth.append(gt)
    return paths, truth


def rgb_sample_frames(
    ws: Workspace,
    *,
    strip_start: int = 700,
    strip_length: int = 16,
    synthetic: int = 2,
    video: str | os.PathLike[str] | None = None,
) -> RgbSamples:
    """Notebook 01's frames, written into ``ws.rgb_images``: every eye-checked held-out frame of
    the video (:func:`cvlab.datasets.video.heldout_truth`), ``strip_length`` consecutive
    held-out frames from ``strip_start``, the real photos (``messi5.jpg``, ``basketball1/2.png``
    and matplotlib's ``grace_hopper.jpg``) and ``synthetic`` daylight frames with bags."""
    import shutil

    from cvlab.bench.standin import write_heldout_frames
    from cvlab.datasets.video import HELDOUT_FRAMES, fetch_video, heldout_truth, real_photos
    from cvlab.lab.data import sample_photo

    fetch_video(video)
    folder = ws.rgb_images
    scored_frames = set(heldout_truth())
    strip_frames = set(range(strip_start, strip_start + strip_length)) & set(HELDOUT_FRAMES)
    # one pass over the video: a frame both scored and in the strip is written once
    paths, all_truth = write_heldout_frames(folder / "heldout", scored_frames | strip_frames)
    index = [int(p.stem.split("_")[1]) for p in paths]
    scored = [p for p, i in zip(paths, index, strict=True) if i in scored_frames]
    truth = [t for t, i in zip(all_truth, index, strict=True) if i in scored_frames]
    strip = [p for p, i in zip(paths, index, strict=True) if i in strip_frames]
    photos = []
    for src in real_photos(video):
        target = folder / "photos" / src.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        photos.append(target)
    photos.append(sample_photo(ws))
    synth, synth_truth = write_synthetic_frames(folder / "synthetic", synthetic)
    return RgbSamples(scored, truth, strip, photos, synth, synth_truth)
