"""The RGB stand-in for PeopleNet: a DetectNet_v2 student of the real video's teacher labels.

PeopleNet's outputs (person, bag, face; stride 16) from a ResNet-10 at a quarter of the width
(the IR model's backbone, so notebook 03 can start from these weights as the lab starts from
PeopleNet's), at 384x288, the video's 4:3 at half size. It is trained by cvlab's trainer from a
TAO training spec (:func:`build_standin_spec`, written beside the weights) on
:func:`cvlab.datasets.video_labels.label_video`'s set: teacher-labelled frames 0-599 of
``vtest.avi`` (person, face) and synthetic daylight frames (bag, which the video lacks).

:func:`train_standin` writes, in ``output``: ``rgb_standin.hdf5`` (Keras weights by layer name,
what TAO's ``pretrained_model_file`` takes), ``rgb_standin.onnx`` (checked against Keras),
``training_spec.txt``, ``metrics.csv`` and ``provenance.json``; ``install=True`` copies them
into the package (:data:`SHIPPED_DIR`), which is what ``cvlab video standin --install`` does.

Example:
    >>> spec = build_standin_spec("data/tfrecords/vtest-fold-*", "data")
    >>> (spec.augmentation_config.preprocessing.output_image_width,
    ...  spec.augmentation_config.preprocessing.output_image_height, spec.model_config.num_layers)
    (384, 288, 10)
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvlab.detectnet import PEOPLENET_CLASSES

#: Its name in a Triton model repository.
MODEL_NAME = "peoplenet_rgb_standin"
#: The stand-in's input (width, height): vtest.avi's 768x576 at half size (grid 24x18).
STANDIN_INPUT_SIZE = (384, 288)
#: Its backbone: ResNet-10 at a quarter of the width (as the IR model's tiny config).
STANDIN_LAYERS = 10
STANDIN_WIDTH = 0.25
STANDIN_EPOCHS = 40
#: Where the trained stand-in ships inside the package.
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "resources" / "models" / "rgb_standin"
WEIGHTS_FILE, ONNX_FILE = "rgb_standin.hdf5", "rgb_standin.onnx"
SPEC_FILE, PROVENANCE_FILE, METRICS_FILE = "training_spec.txt", "provenance.json", "metrics.csv"
#: The stand-in's clustering config (its confidence thresholds), shipped beside PeopleNet's.
CLUSTERING_FILE = "clustering_config_rgb_standin.prototxt"
SHIPPED_CLUSTERING = SHIPPED_DIR.parents[1] / "clustering" / CLUSTERING_FILE
#: Per-class cost: small objects (faces, bags) need a larger foreground weight than TAO's
#: default 0.05 to be learnt in a CPU budget; bag (synthetic frames only) counts double.
COVERAGE_FOREGROUND_WEIGHT = {"person": 0.3, "bag": 0.5, "face": 0.5}
CLASS_WEIGHT = {"person": 1.0, "bag": 2.0, "face": 1.0}
#: Coverage ellipse radius (``bbox_rasterizer_config`` ``cov_radius_x/y``, TAO's default 0.4):
#: a narrower person ellipse trains only the central cells of a person, whose boxes agree, so
#: DBSCAN finds one cluster per person. Chosen on the validation fold (docs/clustering.md,
#: "Duplicate boxes on the RGB stand-in"): 0.25 halved the duplicate pairs and raised F1.
COVERAGE_RADIUS = {"person": 0.25, "bag": 0.4, "face": 0.4}


def build_standin_spec(
    tfrecords_pattern: str,
    image_dir: str,
    *,
    epochs: int = STANDIN_EPOCHS,
    batch_size: int = 4,
    random_seed: int = 42,
) -> Any:
    """The stand-in's TAO ``detectnet_v2`` training spec (an ``Experiment`` message): the lab's
    spec (:func:`cvlab.formats.tao_spec.build_lab_spec`) for person/bag/face at
    :data:`STANDIN_INPUT_SIZE` with ResNet-10, no pretrained file, zoom augmentation, the
    per-class cost and coverage radius above and equal cov/bbox weight targets."""
    from cvlab.formats.tao_spec import build_lab_spec

    exp = build_lab_spec(
        tfrecords_pattern,
        image_dir,
        class_names=PEOPLENET_CLASSES,
        pretrained_model_file="",
        num_layers=STANDIN_LAYERS,
        input_size=STANDIN_INPUT_SIZE,
        num_epochs=epochs,
        batch_size=batch_size,
        image_extension="jpg",
        max_learning_rate=5e-3,
        min_learning_rate=1e-4,
        checkpoint_interval=1,
        random_seed=random_seed,
    )
    exp.model_config.ClearField("pretrained_model_file")
    exp.model_config.all_projections = True
    sp = exp.augmentation_config.spatial_augmentation
    sp.zoom_min, sp.zoom_max = 0.8, 1.25
    sp.translate_max_x, sp.translate_max_y = 16.0, 16.0
    exp.augmentation_config.color_augmentation.contrast_center = 0.5
    lr = exp.training_config.learning_rate.soft_start_annealing_schedule
    lr.annealing = 0.6
    exp.training_config.regularizer.type = exp.training_config.regularizer.NO_REG
    exp.training_config.regularizer.weight = 0.0
    for name, rasterizer in exp.bbox_rasterizer_config.target_class_config.items():
        rasterizer.cov_radius_x = rasterizer.cov_radius_y = COVERAGE_RADIUS[name]
    for target in exp.cost_function_config.target_classes:
        target.class_weight = CLASS_WEIGHT[target.name]
        target.coverage_foreground_weight = COVERAGE_FOREGROUND_WEIGHT[target.name]
        for objective in target.objectives:
            objective.weight_target = 1.0
    ev = exp.evaluation_config
    ev.validation_period_during_training = max(1, epochs // 4)
    ev.first_validation_epoch = max(1, epochs // 4)
    return exp


@dataclass
class StandinBuild:
    """What :func:`train_standin` wrote and measured."""

    output: Path
    weights: Path
    onnx: Path
    provenance: dict[str, Any]


def train_standin(
    labels_root: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    epochs: int = STANDIN_EPOCHS,
    install: bool = False,
    progress: bool = True,
) -> StandinBuild:
    """Train the stand-in on a labelled video set (:func:`cvlab.datasets.video_labels.label_video`),
    export and check its ONNX, and write weights, spec, metrics and provenance to ``output``
    (and into the package with ``install``)."""
    import dataclasses as dc
    import warnings

    from cvlab.datasets.video_labels import TFRECORD_PREFIX, read_record
    from cvlab.export.onnx import export_onnx
    from cvlab.fileio import atomic_write_text
    from cvlab.formats.tao_spec import write_training_spec
    from cvlab.train.config import TrainConfig
    from cvlab.train.model import save_legacy_h5_weights
    from cvlab.train.trainer import train

    labels_root = Path(labels_root)
    output = Path(output)
    record = read_record(labels_root)
    pattern = str(labels_root / "tfrecords" / f"{TFRECORD_PREFIX}-fold-*")
    spec = build_standin_spec(pattern, str(labels_root), epochs=epochs)
    write_training_spec(spec, output / SPEC_FILE)
    with warnings.catch_warnings():  # the lab spec's min_bbox_* (no effect in TAO either)
        warnings.filterwarnings("ignore", message=".*min_bbox_.*", category=UserWarning)
        config = TrainConfig.from_spec(
            spec, width_multiplier=STANDIN_WIDTH, pretrained_weights=None
        )
    config = dc.replace(config, threads=2, cache_images=True, seed=0)
    started = time.perf_counter()
    result = train(config, pattern, labels_root, output / "run", resume=True, progress=progress)
    seconds = time.perf_counter() - started
    weights = output / WEIGHTS_FILE
    save_legacy_h5_weights(result.model, weights)
    export = export_onnx(result.model, output / ONNX_FILE, check=True)
    shutil.copyfile(result.metrics_csv, output / METRICS_FILE)
    thresholds = tune_thresholds(labels_root, export.path)
    write_clustering_config(
        {name: t["threshold"] for name, t in thresholds.items()}, output / CLUSTERING_FILE
    )
    last = result.history.iloc[-1]
    from cvlab.formats.tfrecords import read_split

    validation = sorted(read_split(pattern).frame_ids(0))
    provenance = {
        "model": f"DetectNet_v2, ResNet-{STANDIN_LAYERS} x{STANDIN_WIDTH} width, "
        f"{STANDIN_INPUT_SIZE[0]}x{STANDIN_INPUT_SIZE[1]} input, classes {list(PEOPLENET_CLASSES)}",
        "trained_on": {
            "person": "vtest.avi frames 0-599 (every 2nd written), teacher labels; "
            "plus the people of the synthetic daylight frames",
            "face": "vtest.avi frames 0-599, BlazeFace on upscaled head crops; synthetic faces",
            "bag": "synthetic daylight frames only (the video has no labelled bags)",
        },
        "heldout": "vtest.avi frames 600-794: never trained, tuned or thresholded on",
        "validation_fold": f"{len(validation)} frames, {validation[0]} to {validation[-1]} "
        "(TAO's random partition: the first 10 % of the sorted frame names)",
        "labels": record,
        "command": f"cvlab video standin --epochs {epochs} --install",
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
        "validation": {
            str(k): round(float(last[k]), 4)
            for k in result.history.columns
            if str(k).startswith("ap_") or k == "mAP"
        },
        "onnx_max_abs_diff": export.max_abs_diff,
        f"clustering_thresholds (validation fold: F1 within {F1_TOLERANCE:g} of the best, "
        "then fewest duplicate pairs)": {
            name: {k: round(v, 3) for k, v in t.items()} for name, t in thresholds.items()
        },
    }
    atomic_write_text(output / PROVENANCE_FILE, json.dumps(provenance, indent=2, default=str))
    build = StandinBuild(output, weights, export.path, provenance)
    if install:
        install_standin(output)
    return build


#: Confidence thresholds tried per class when the clustering config is chosen (summed coverage).
THRESHOLD_GRID = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0)
THRESHOLD_GRID += (3.25, 3.5, 3.75, 4.0, 4.5, 5.0)
#: A threshold whose validation F1 is this close to the best counts as as good (the fold's
#: F1 curve is flat there); among those, the fewest duplicate pairs win.
F1_TOLERANCE = 0.01


def choose_threshold(scores: list[dict[str, float]], tolerance: float = F1_TOLERANCE) -> dict:
    """The row of ``scores`` (one per threshold: ``threshold``, ``f1``, ``duplicates``, ...)
    whose F1 is within ``tolerance`` of the best, with the fewest duplicate pairs, then the best
    F1, then the lowest threshold.

    Example:
        >>> rows = [{"threshold": 1.5, "f1": 0.903, "duplicates": 2},
        ...         {"threshold": 3.25, "f1": 0.898, "duplicates": 0},
        ...         {"threshold": 4.0, "f1": 0.847, "duplicates": 0}]
        >>> choose_threshold(rows)["threshold"], choose_threshold(rows, tolerance=0.0)["threshold"]
        (3.25, 1.5)
    """
    best = max(row["f1"] for row in scores)
    near = [row for row in scores if row["f1"] >= best - tolerance - 1e-12]
    return min(near, key=lambda row: (row["duplicates"], -row["f1"], row["threshold"]))


def tune_thresholds(
    labels_root: str | os.PathLike[str],
    onnx: str | os.PathLike[str],
    grid: tuple[float, ...] = THRESHOLD_GRID,
) -> dict[str, dict[str, float]]:
    """Per class, the DBSCAN confidence threshold of ``grid`` that :func:`choose_threshold` picks
    on the VALIDATION fold of a labelled video set (fold 0: the first training frames of the
    video in time; never a held-out frame): F1 at IoU 0.5 within :data:`F1_TOLERANCE` of the
    best, then the fewest duplicate pairs (two boxes on one labelled object), with PeopleNet's
    other clustering settings. A class with no object found there at any threshold (the video's
    validation frames have no bags, and faces of a few pixels) keeps PeopleNet's threshold.
    Returns ``{class: {"threshold", "precision", "recall", "f1", "duplicates"}}``."""

    from cvlab.bench.standin import detect_with, duplicate_pairs, onnx_runner
    from cvlab.datasets.video import split_of
    from cvlab.datasets.video_labels import TFRECORD_PREFIX, VIDEO_STEM
    from cvlab.formats.kitti import read_kitti
    from cvlab.formats.tfrecords import read_split
    from cvlab.images import image_size
    from cvlab.inference.clustering_config import PEOPLENET_RGB_CONFIG
    from cvlab.lab.inference import clustering_config, rgb_postprocessing_config
    from cvlab.train.evaluate import evaluate_detections

    root = Path(labels_root)
    ids = read_split(root / "tfrecords" / f"{TFRECORD_PREFIX}-fold-*").frame_ids(0)
    frames = [VIDEO_STEM.match(i) for i in ids]
    if not any(frames):
        raise ValueError(f"{root}: the validation fold holds no video frame")
    for frame_id, match in zip(ids, frames, strict=True):  # training frames only
        if match and split_of(int(match.group(1))) != "train":
            raise ValueError(f"{frame_id}: a held-out frame in the validation fold")
    paths = [root / "images" / f"{i}.jpg" for i in ids]
    truth = [
        read_kitti(root / "labels" / f"{i}.txt", image_size(p), PEOPLENET_CLASSES)
        for i, p in zip(ids, paths, strict=True)
    ]
    base = clustering_config(PEOPLENET_RGB_CONFIG, PEOPLENET_CLASSES)
    low = rgb_postprocessing_config(min(grid), PEOPLENET_RGB_CONFIG).for_classes(PEOPLENET_CLASSES)
    run = onnx_runner(onnx)
    found = detect_with(run, STANDIN_INPUT_SIZE, paths, low)
    best: dict[str, dict[str, float]] = {}
    for name in PEOPLENET_CLASSES:
        scores = []
        for threshold in grid:
            kept = [
                d[(d.class_id != PEOPLENET_CLASSES.index(name)) | (d.confidence >= threshold)]
                for d in found
            ]
            row = evaluate_detections(kept, truth, (name,)).per_class.iloc[0]
            p, r = float(row["precision"]), float(row["recall"])
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            duplicates = duplicate_pairs(kept, truth, name)
            scores.append(
                dict(threshold=threshold, precision=p, recall=r, f1=f1, duplicates=duplicates)
            )
        if max(s["f1"] for s in scores) > 0:
            best[name] = choose_threshold(scores)
        else:  # nothing found: PeopleNet's threshold
            threshold = base.classes[name].dbscan_confidence_threshold
            best[name] = dict(threshold=threshold, precision=0.0, recall=0.0, f1=0.0, duplicates=0)
    return best


def write_clustering_config(thresholds: dict[str, float], path: str | os.PathLike[str]) -> Path:
    """PeopleNet's RGB clustering prototxt with the stand-in's confidence ``thresholds``."""
    import re

    from cvlab.fileio import atomic_write_text
    from cvlab.inference.clustering_config import PEOPLENET_RGB_CONFIG

    text = PEOPLENET_RGB_CONFIG.read_text()
    header = (
        "# The offline RGB stand-in's clustering config (tao-toolkit-triton-apps schema):\n"
        "# PeopleNet's RGB config with the confidence thresholds chosen on the validation fold of\n"
        "# the stand-in's training frames (cvlab.train.standin.tune_thresholds: F1 at IoU 0.5\n"
        f"# within {F1_TOLERANCE:g} of the best, then the fewest duplicate pairs).\n"
    )
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    for name, threshold in thresholds.items():
        pattern = rf'(key: "{name}"[^}}]*?dbscan_confidence_threshold: )[0-9.]+'
        body, n = re.subn(pattern, rf"\g<1>{threshold:g}", body, flags=re.S)
        if n != 1:
            raise ValueError(f"{PEOPLENET_RGB_CONFIG}: no dbscan_confidence_threshold for {name!r}")
    return atomic_write_text(path, header + body.lstrip("\n") + "\n")


def install_standin(output: str | os.PathLike[str]) -> Path:
    """Copy a trained stand-in's files into the package (:data:`SHIPPED_DIR`, and its clustering
    config beside PeopleNet's)."""
    from cvlab.fileio import atomic_write_bytes

    for name in (WEIGHTS_FILE, ONNX_FILE, SPEC_FILE, PROVENANCE_FILE, METRICS_FILE):
        atomic_write_bytes(SHIPPED_DIR / name, (Path(output) / name).read_bytes())
    atomic_write_bytes(SHIPPED_CLUSTERING, (Path(output) / CLUSTERING_FILE).read_bytes())
    return SHIPPED_DIR
