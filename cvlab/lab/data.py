"""Lab data steps: the FLIR source (real or synthetic), its preparation (KITTI, resized images,
TFRecords), ground truth, sample RGB images and dataset statistics.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cvlab.detectnet import PEOPLENET_INPUT_SIZE
from cvlab.fileio import atomic_write_bytes, atomic_write_text, list_images
from cvlab.lab.workspace import Workspace


def ensure_flir_source(
    ws: Workspace,
    flir_root: str | os.PathLike[str] | None = None,
    *,
    layout: str = "v2",
    num_images: int = 120,
    seed: int = 0,
) -> Path:
    """The FLIR dataset root: ``flir_root`` when given (a real download), else a synthetic set.

    The synthetic set is generated once into ``ws.flir_source`` (real FLIR on-disk layout,
    v1 or v2) and reused afterwards.
    """
    if flir_root:
        root = Path(flir_root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"FLIR_ROOT {root} is not a folder")
        return root
    marker = ws.flir_source / ".complete.json"
    wanted = {"layout": layout, "num_images": num_images, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return ws.flir_source
    from cvlab.datasets.synthetic import generate_synthetic_flir

    if ws.flir_source.exists():
        shutil.rmtree(ws.flir_source)
    root = generate_synthetic_flir(ws.flir_source, layout=layout, num_images=num_images, seed=seed)
    atomic_write_text(ws.flir_source / ".complete.json", json.dumps(wanted))
    ws.update_state(flir_source=root, flir_layout=layout)
    return root


@dataclass
class PreparedDataset:
    """Where the prepared dataset lives (from the state file or a fresh preparation)."""

    root: Path
    images: Path
    labels: Path
    tfrecords_pattern: str
    class_names: tuple[str, ...]
    output_size: tuple[int, int]
    report: Any = None


def ensure_prepared_dataset(
    ws: Workspace,
    source: str | os.PathLike[str] | None = None,
    *,
    classes: Sequence[str] = ("person",),
    output_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    val_split: int = 20,
    num_synthetic: int = 120,
    force: bool = False,
) -> PreparedDataset:
    """FLIR -> KITTI labels -> resized images -> TFRecords, in ``ws.dataset`` (done once)."""
    state = ws.state().get("dataset")
    wanted = {"classes": list(classes), "output_size": list(output_size), "val_split": val_split}
    if state and not force and state.get("params") == wanted and Path(state["root"]).exists():
        return PreparedDataset(
            root=Path(state["root"]),
            images=Path(state["images"]),
            labels=Path(state["labels"]),
            tfrecords_pattern=state["tfrecords_pattern"],
            class_names=tuple(state["class_names"]),
            output_size=tuple(state["output_size"]),
        )
    if source is None:
        source = ensure_flir_source(ws, num_images=num_synthetic)
    from cvlab.datasets.prepare import prepare_flir_dataset

    report = prepare_flir_dataset(
        source,
        ws.dataset,
        classes=tuple(classes),
        output_size=tuple(output_size),
        val_split=val_split,
        progress=True,
    )
    images, labels, tf_dir = report.images_dir, report.labels_dir, report.tfrecords_dir
    pattern = str(tf_dir / "*-fold-*")
    prepared = PreparedDataset(
        root=ws.dataset,
        images=images,
        labels=labels,
        tfrecords_pattern=str(pattern),
        class_names=tuple(classes),
        output_size=tuple(output_size),
        report=report,
    )
    ws.update_state(
        dataset={
            "root": str(ws.dataset),
            "images": str(images),
            "labels": str(labels),
            "tfrecords_pattern": str(pattern),
            "class_names": list(classes),
            "output_size": list(output_size),
            "params": wanted,
        }
    )
    return prepared


def read_ground_truth(
    labels_dir: Path, image_paths: Sequence[Path], class_names: Sequence[str]
) -> list[Any]:
    """KITTI training labels of ``image_paths`` (same stem) as Detections, in the same order."""
    from cvlab.formats.kitti import read_kitti
    from cvlab.images import image_size

    truth = []
    for path in image_paths:
        w, h = image_size(path)
        truth.append(
            read_kitti(
                labels_dir / f"{Path(path).stem}.txt",
                image_size=(w, h),
                class_names=tuple(class_names),
            )
        )
    return truth


def sample_photo(ws: Workspace) -> Path:
    """matplotlib's ``grace_hopper.jpg`` (a real RGB photo that ships with matplotlib), copied
    once into ``ws.rgb_images``; the notebooks' real-photo example."""
    from matplotlib import cbook

    out = ws.rgb_images
    out.mkdir(parents=True, exist_ok=True)
    target = out / "grace_hopper.jpg"
    if not target.exists():
        with cbook.get_sample_data("grace_hopper.jpg") as src:
            atomic_write_bytes(target, src.read())
    return target


def input_images(directory: str | os.PathLike[str]) -> list[Path]:
    """The jpg/jpeg/png files of ``directory`` (sorted); a clear error when there are none."""
    found = list_images(directory)
    if not found:
        raise FileNotFoundError(f"{directory}: no .jpg/.jpeg/.png images")
    return found


def prepare_summary(prepared: PreparedDataset) -> pd.DataFrame:
    """The preparation in plain words, two text columns (``what``, ``result``): frames per
    split, boxes kept and dropped (with the dropped classes), then only the problems that
    happened (clipped boxes, unreadable images...). When the dataset was reused, counts read
    from the folders."""
    report = prepared.report
    if report is None:
        images = list_images(prepared.images, (".jpg",))
        labels = list(prepared.labels.glob("*.txt"))
        return pd.DataFrame(
            [("frames", f"{len(images)} (reused from an earlier run)"), ("labels", len(labels))],
            columns=["what", "result"],
        ).astype(str)
    folds = report.frames_per_fold
    val = folds.get(0, 0)
    rows = [
        ("frames", f"{report.images}: {val} validation / {sum(folds.values()) - val} training"),
        (
            "boxes kept",
            ", ".join(f"{v} {k}" for k, v in sorted(report.objects.items())) or "none",
        ),
    ]
    dropped = report.dropped_class_boxes
    if dropped:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items(), key=lambda kv: -kv[1]))
        rows.append(("boxes dropped", f"{sum(dropped.values())} of other classes ({kinds})"))
    problems = [
        ("boxes clipped to the frame", report.clipped_boxes),
        ("boxes outside the frame, dropped", report.outside_boxes),
        ("boxes with no area, dropped", report.degenerate_boxes),
        ("boxes TFRecords could not take", report.tfrecord_skipped_boxes),
        ("unreadable images, skipped", len(report.unreadable_images)),
        ("images skipped (bad file names, duplicates)", len(report.skipped_images)),
        ("frames without annotations", len(report.images_without_annotations)),
        ("annotations without an image, ignored", len(report.annotations_without_images)),
        ("images reused from an earlier run", report.images_resumed),
    ]
    rows += [(what, str(n)) for what, n in problems if n]
    return pd.DataFrame(rows, columns=["what", "result"]).astype(str)


def tfrecords_dir(prepared: PreparedDataset) -> Path:
    """Folder holding the TFRecords."""
    return Path(prepared.tfrecords_pattern).parent


def dataset_statistics(prepared: PreparedDataset) -> tuple[pd.DataFrame, Any]:
    """Per-class counts, boxes per image and box sizes read back from the TFRecords, plus a
    Figure (box count per class, boxes per image, box height histogram)."""
    from cvlab.formats.tfrecords import read_tfrecords
    from cvlab.viz.plots import plot_dataset_stats

    df = read_tfrecords(prepared.tfrecords_pattern)
    fig = plot_dataset_stats(df)
    objects = df[df["object_class"].notna()]
    per_class = objects.groupby("object_class").agg(
        boxes=("x1", "size"),
        images=("frame_id", "nunique"),
        median_height=("y2", lambda s: float((s - objects.loc[s.index, "y1"]).median())),
    )
    per_class["frames_total"] = df["frame_id"].nunique()
    names = {
        "object_class": "class",
        "boxes": "boxes",
        "images": "frames with boxes",
        "median_height": "median box height (px)",
        "frames_total": "frames",
    }
    return per_class.reset_index().rename(columns=names), fig


def training_images(prepared: PreparedDataset) -> list[Path]:
    """Prepared images of the training folds (sorted); the split is read from the TFRecords'
    split manifest (:func:`cvlab.formats.tfrecords.read_split`; the records if there is none)."""
    from cvlab.formats.tfrecords import read_split

    val = set(read_split(prepared.tfrecords_pattern).frame_ids(0))
    return [p for p in list_images(prepared.images, (".jpg",)) if p.stem not in val]


def validation_images(prepared: PreparedDataset) -> list[Path]:
    """Prepared images of the validation fold 0 (held out from training), sorted; the split is
    read from the TFRecords' split manifest (:func:`cvlab.formats.tfrecords.read_split`)."""
    from cvlab.formats.tfrecords import read_split

    val = set(read_split(prepared.tfrecords_pattern).frame_ids(0))
    return [p for p in list_images(prepared.images, (".jpg",)) if p.stem in val]


def evaluation_set(
    ws: Workspace,
    images_dir: str | os.PathLike[str] | None = None,
    labels_dir: str | os.PathLike[str] | None = None,
    class_names: Sequence[str] = ("person",),
) -> tuple[list[Path], list[Any]]:
    """Held-out thermal images and their ground truth: the validation fold of the prepared
    dataset by default, or ``images_dir`` + ``labels_dir`` (KITTI)."""
    if images_dir is not None:
        if labels_dir is None:
            raise ValueError("IMAGES_DIR needs LABELS_DIR (KITTI ground truth) for evaluation")
        images = input_images(images_dir)
        return images, read_ground_truth(Path(labels_dir), images, class_names)
    prepared = ensure_prepared_dataset(ws)
    images = validation_images(prepared)
    return images, read_ground_truth(prepared.labels, images, class_names)
