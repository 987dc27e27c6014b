"""Teacher labels for the real video: tiled SSDLite people, cleaned with time, BlazeFace faces -> KITTI + TFRecords.

:func:`label_frames` labels any frames of ``vtest.avi`` (the teachers, then
:func:`cvlab.datasets.tracks.clean_tracks`, then faces on the cleaned person boxes);
:func:`label_video` writes the training set of the RGB stand-in from training frames only
(:func:`cvlab.datasets.video.training_indices` refuses a held-out one), optionally with
synthetic daylight frames for the class the video lacks (bag):

* ``OUT/images/vtest_NNNNNN.jpg`` (768x576) and ``OUT/images/vtest_synthetic_NNNNN.jpg``
  (synthetic): named so that TAO's random partition, which puts the first ``val_split`` percent
  of the sorted frame names in the validation fold, validates on the video's first frames (a
  stretch of time, not frames between training frames) and never on synthetic ones,
* ``OUT/labels/*.txt`` (KITTI: person, face; bag and person on synthetic frames),
* ``OUT/tfrecords/vtest-fold-*`` (TAO ``dataset_convert`` schema, fold 0 validates),
* ``OUT/labels_record.json``: the teachers, every setting, the frames and the counts, and
* ``OUT/teacher_raw.npz``: the teachers' raw boxes per frame (reused while the settings stay).

Example:
    $ cvlab video label --output runs/vtest_labels
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cvlab.datasets.teachers import FaceSettings, TileSettings
from cvlab.datasets.tracks import TrackSettings, clean_tracks
from cvlab.datasets.video import FRAME_SIZE, TRAIN_FRAMES, frame_name, read_frames

#: The labelling settings of the shipped stand-in, chosen by looking at training frames only.
TILES = TileSettings(grid=(3, 3), tile_size=(352, 264))
TRACKS = TrackSettings()
FACES = FaceSettings()
RECORD_FILE = "labels_record.json"
RAW_FILE = "teacher_raw.npz"
TFRECORD_PREFIX = "vtest"
#: Name prefix of the synthetic frames of the set (sorted after every video frame).
SYNTHETIC_PREFIX = "vtest_synthetic"
#: A video frame's file stem (``vtest_000123``), as :func:`cvlab.datasets.video.frame_name`.
VIDEO_STEM = re.compile(r"^vtest_(\d{6})$")


@dataclass
class FrameLabels:
    """Cleaned labels of some frames: per frame index, person boxes and face boxes (xyxy px)."""

    indices: list[int]
    people: list[np.ndarray]
    faces: list[np.ndarray]
    raw_people: list[np.ndarray]  # the tiled teacher before cleaning
    counts: dict[str, int] = field(default_factory=dict)

    def frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        i = self.indices.index(index)
        return self.people[i], self.faces[i]


def _settings_key(tiles: TileSettings) -> str:
    return hashlib.sha256(json.dumps(asdict(tiles), sort_keys=True).encode()).hexdigest()[:16]


def _raw_people(
    video: Path,
    indices: list[int],
    tiles: TileSettings,
    cache: Path | None,
    progress: bool,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The tiled person teacher on every frame of ``indices`` (cached in ``cache``)."""
    key = _settings_key(tiles)
    stored: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            if str(data["key"]) == key:
                for i, b, s in zip(data["index"], data["boxes"], data["scores"], strict=True):
                    stored[int(i)] = (b[s > 0].reshape(-1, 4), s[s > 0])
    missing = [i for i in indices if i not in stored]
    if missing:
        from cvlab.datasets.teachers import PersonTeacher

        teacher = PersonTeacher()
        bar = tqdm(total=len(missing), desc="teacher (people)", unit="frame", disable=not progress)
        for index, rgb in read_frames(video, missing):
            stored[index] = teacher.detect_tiled(rgb, tiles)
            bar.update()
        bar.close()
        if cache is not None:
            _save_raw(cache, key, stored)
    return [stored[i][0] for i in indices], [stored[i][1] for i in indices]


def _save_raw(path: Path, key: str, stored: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    from cvlab.fileio import atomic_path

    order = sorted(stored)
    width = max([len(stored[i][1]) for i in order] + [1])
    boxes = np.zeros((len(order), width, 4))
    scores = np.zeros((len(order), width))
    for row, i in enumerate(order):
        b, s = stored[i]
        boxes[row, : len(s)] = b
        scores[row, : len(s)] = s
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, key=key, index=np.array(order), boxes=boxes, scores=scores)


def label_frames(
    video: str | os.PathLike[str],
    indices: Iterable[int],
    *,
    tiles: TileSettings = TILES,
    tracks: TrackSettings = TRACKS,
    faces: FaceSettings | None = FACES,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> FrameLabels:
    """Person (and face) labels of consecutive ``indices``: the tiled teacher, cleaned with time
    (gaps are filled only between frames of ``indices``), then BlazeFace on each person."""
    indices = sorted(int(i) for i in indices)
    raw_boxes, raw_scores = _raw_people(
        Path(video), indices, tiles, Path(cache) if cache else None, progress
    )
    clean = clean_tracks(raw_boxes, raw_scores, tracks)
    people = [np.clip(b, 0, [*FRAME_SIZE, *FRAME_SIZE]) for b in clean.boxes]
    face_boxes = [np.zeros((0, 4)) for _ in indices]
    if faces is not None:
        from cvlab.datasets.teachers import FaceTeacher

        face_teacher = FaceTeacher()
        bar = tqdm(total=len(indices), desc="teacher (faces)", unit="frame", disable=not progress)
        for (index, rgb), row in zip(read_frames(video, indices), range(len(indices)), strict=True):
            assert index == indices[row]
            face_boxes[row] = face_teacher.detect(rgb, people[row], faces)[0]
            bar.update()
        bar.close()
    counts = {
        "frames": len(indices),
        "teacher_boxes": int(sum(len(b) for b in raw_boxes)),
        "person_boxes": int(sum(len(b) for b in people)),
        "face_boxes": int(sum(len(b) for b in face_boxes)),
        "tracks": clean.tracks,
        "dropped_flicker_boxes": clean.dropped,
        "filled_gap_boxes": clean.filled,
    }
    return FrameLabels(indices, people, face_boxes, raw_boxes, counts)


def kitti_text(people: np.ndarray, faces: np.ndarray) -> str:
    """A frame's KITTI label file: person lines, then face lines (15 fields).

    >>> kitti_text(np.array([[1, 2, 30, 80.0]]), np.zeros((0, 4))).split()[:8]
    ['person', '0.00', '0', '0.00', '1.00', '2.00', '30.00', '80.00']
    """
    from cvlab.formats.kitti import format_kitti_line, tao_keeps_box

    lines = [
        format_kitti_line(name, box)
        for name, boxes in (("person", people), ("face", faces))
        for box in np.asarray(boxes).reshape(-1, 4)
        if tao_keeps_box(box)
    ]
    return "".join(line + "\n" for line in lines)


@dataclass
class VideoLabelReport:
    """What :func:`label_video` wrote: the dataset folder, frame and object counts, seconds."""

    root: Path
    frames: int
    synthetic_frames: int
    objects: dict[str, int]
    counts: dict[str, int]
    seconds: float

    @property
    def tfrecords_pattern(self) -> str:
        return str(self.root / "tfrecords" / f"{TFRECORD_PREFIX}-fold-*")


def label_video(
    output: str | os.PathLike[str],
    video: str | os.PathLike[str] | None = None,
    *,
    frames: Sequence[int] = TRAIN_FRAMES,
    every: int = 2,
    synthetic_frames: int = 120,
    synthetic_seed: int = 0,
    val_split: float = 10,
    num_shards: int = 4,
    tiles: TileSettings = TILES,
    tracks: TrackSettings = TRACKS,
    faces: FaceSettings = FACES,
    progress: bool = True,
) -> VideoLabelReport:
    """Label the training ``frames`` (all of them, for the time cleaning), write every
    ``every``-th one with ``synthetic_frames`` synthetic daylight frames (for bags) as KITTI and
    TFRecords in ``output``, with a record of the teachers, settings and counts."""
    from cvlab.datasets.synthetic import write_synthetic_rgb_frames
    from cvlab.datasets.teachers import FaceTeacher, PersonTeacher
    from cvlab.datasets.video import fetch_video, training_indices
    from cvlab.fileio import atomic_write_image, atomic_write_text
    from cvlab.formats.tfrecords import write_tfrecords

    started = time.perf_counter()
    indices = training_indices(frames)
    root = Path(output)
    video_path = fetch_video(video)
    labels = label_frames(
        video_path,
        indices,
        tiles=tiles,
        tracks=tracks,
        faces=faces,
        cache=root / RAW_FILE,
        progress=progress,
    )
    written = set(indices[:: max(1, int(every))])
    objects: Counter = Counter()
    for index, rgb in read_frames(video_path, sorted(written)):
        people, face_boxes = labels.frame(index)
        stem = frame_name(index)
        atomic_write_image(root / "images" / f"{stem}.jpg", rgb, quality=95)
        text = kitti_text(people, face_boxes)
        atomic_write_text(root / "labels" / f"{stem}.txt", text)
        objects.update(line.split()[0] for line in text.splitlines())
    for folder in ("images", "labels"):  # frames of an earlier run with other settings
        for path in (root / folder).glob("vtest_*"):
            match = VIDEO_STEM.match(path.stem)
            if match and int(match.group(1)) not in written:
                path.unlink()
    objects.update(
        write_synthetic_rgb_frames(
            root,
            synthetic_frames,
            synthetic_seed,
            FRAME_SIZE,
            progress=progress,
            prefix=SYNTHETIC_PREFIX,
        )
    )
    result = write_tfrecords(
        root,
        root / "tfrecords" / TFRECORD_PREFIX,
        val_split=val_split,
        num_shards=num_shards,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    record = {
        "video": {"file": video_path.name, "frames": [indices[0], indices[-1]], "every": every},
        "heldout_frames_excluded": "600-794 (never labelled for training)",
        "teachers": {
            "person": {"model": PersonTeacher.__doc__.strip(), **asdict(tiles)},
            "face": {"model": FaceTeacher.__doc__.strip(), **asdict(faces)},
            "tracks": asdict(tracks),
        },
        "synthetic_daylight_frames": {"count": synthetic_frames, "seed": synthetic_seed},
        "counts": labels.counts,
        "written_frames": len(written),
        "objects": dict(sorted(objects.items())),
        "frames_per_fold": result.frames_per_fold,
        "seconds": round(seconds, 1),
    }
    atomic_write_text(root / RECORD_FILE, json.dumps(record, indent=2, default=str))
    return VideoLabelReport(
        root, len(written), synthetic_frames, dict(objects), labels.counts, seconds
    )


def read_record(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``labels_record.json`` of a labelled set."""
    return json.loads((Path(root) / RECORD_FILE).read_text())
