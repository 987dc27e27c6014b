"""``cvlab bench train``: train the tiny DetectNet_v2 on synthetic thermal data, report AP and speed.

Data (``--data``): ``simple`` = :func:`make_synthetic_person_set` (warm people-shaped
silhouettes and warm clutter on noisy dark thermal backgrounds, PNG + TAO TFRecords), or
``flir`` = the FLIR engineer's synthetic FLIR v1 download converted with
:func:`cvlab.flir.convert.prepare_flir_dataset`, exactly as a real download. The tiny config is
trained on CPU and person AP (IoU 0.5, INTEGRATE, :func:`cvlab.train.evaluate.evaluate_detections`)
is measured on the held-out fold; the median training images/s is printed.

:func:`train_demo_model` is what the demo and notebooks call to get a small trained IR model.

Example:
    $ cvlab bench train --epochs 40 --data simple
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from cvlab.train.dataset import Record, write_tfrecord_examples

AP_TARGET = 0.85


def _draw_person(image: np.ndarray, box: tuple[float, float, float, float], heat: float) -> None:
    """A warm silhouette (head, torso, legs) filling ``box`` (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    head_r = max(1, int(0.12 * h))
    cv2.circle(image, (int(cx), int(y1 + head_r)), head_r, heat, -1, cv2.LINE_AA)
    cv2.ellipse(
        image,
        (int(cx), int(y1 + 0.45 * h)),
        (max(1, int(0.5 * w)), max(1, int(0.22 * h))),
        0,
        0,
        360,
        heat,
        -1,
        cv2.LINE_AA,
    )
    leg_w = max(1, int(0.18 * w))
    for dx in (-0.22 * w, 0.22 * w):
        cv2.rectangle(
            image,
            (int(cx + dx - leg_w / 2), int(y1 + 0.6 * h)),
            (int(cx + dx + leg_w / 2), int(y2) - 1),
            heat,
            -1,
        )


def make_synthetic_person_set(
    output_dir: str | os.PathLike,
    num_train: int = 96,
    num_val: int = 24,
    image_size: tuple[int, int] = (320, 256),
    seed: int = 0,
    max_people: int = 4,
    shards: int = 2,
) -> tuple[str, Path]:
    """Synthetic thermal frames with people, as PNG + TAO TFRecords (fold 0 = validation).

    Returns ``(tfrecords glob pattern, image root)``. Images go to
    ``<output>/images/<id>.png``; ``frame/id`` is ``"images/<id>"``.
    """
    rng = np.random.default_rng(seed)
    root = Path(output_dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "tfrecords").mkdir(parents=True, exist_ok=True)
    width, height = image_size
    folds: dict[int, list[Record]] = {0: [], 1: []}
    for i in range(num_train + num_val):
        base = rng.uniform(30, 90)
        image = np.full((height, width), base, np.float32)
        # Warm-ish clutter (cars, lamps) so the detector has to learn shape, not brightness.
        for _ in range(rng.integers(0, 4)):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            axes = (int(rng.uniform(8, 40)), int(rng.uniform(4, 14)))
            cv2.ellipse(image, (int(cx), int(cy)), axes, 0, 0, 360, float(rng.uniform(80, 200)), -1)
        boxes, classes = [], []
        for _ in range(rng.integers(1, max_people + 1)):
            h = rng.uniform(0.18, 0.6) * height
            w = h * rng.uniform(0.3, 0.45)
            x1 = rng.uniform(0, width - w)
            y1 = rng.uniform(0, height - h)
            box = (x1, y1, x1 + w, y1 + h)
            _draw_person(image, box, float(rng.uniform(170, 250)))
            boxes.append(box)
            classes.append("person")
        image = cv2.GaussianBlur(image, (0, 0), 1.2)
        image += rng.normal(0, 6, image.shape)
        frame = f"frame_{i:05d}"
        cv2.imwrite(str(root / "images" / f"{frame}.png"), np.clip(image, 0, 255).astype(np.uint8))
        fold = 0 if i >= num_train else 1
        folds[fold].append(
            Record(f"images/{frame}", width, height, classes, np.asarray(boxes, np.float32))
        )
    for fold, records in folds.items():
        for s in range(shards):
            name = f"synthetic-fold-{fold:03d}-of-002-shard-{s:05d}-of-{shards:05d}"
            write_tfrecord_examples(root / "tfrecords" / name, records[s::shards])
    return str(root / "tfrecords" / "*"), root


def make_flir_person_set(
    output_dir: str | os.PathLike,
    num_images: int = 160,
    input_size: tuple[int, int] = (320, 192),
    seed: int = 0,
    progress: bool = False,
) -> tuple[str, Path]:
    """Synthetic FLIR v1 download -> ``prepare_flir_dataset`` (person only, 10 % validation).

    Uses the FLIR engineer's generator and converter, exactly as on a real download.
    Returns ``(tfrecords glob pattern, image root)``.
    """
    from cvlab.flir.convert import prepare_flir_dataset
    from cvlab.flir.synthetic import generate_synthetic_flir

    root = Path(output_dir)
    source = generate_synthetic_flir(root / "flir", "v1", num_images=num_images, seed=seed)
    report = prepare_flir_dataset(
        source,
        root / "prepared",
        classes=("person",),
        output_size=input_size,
        val_split=20,
        num_shards=2,
        progress=progress,
    )
    return str(report.tfrecords_dir / "*"), report.output_dir


def make_bench_data(
    output_dir: str | os.PathLike,
    source: str = "simple",
    num_train: int = 128,
    num_val: int = 32,
    seed: int = 0,
) -> tuple[str, Path]:
    """Bench data: ``"simple"`` (:func:`make_synthetic_person_set`) or ``"flir"``
    (:func:`make_flir_person_set`, the FLIR generator + converter)."""
    if source == "flir":
        return make_flir_person_set(output_dir, num_images=num_train + num_val, seed=seed)
    if source != "simple":
        raise ValueError(f"unknown bench data source {source!r}; use 'simple' or 'flir'")
    return make_synthetic_person_set(output_dir, num_train=num_train, num_val=num_val, seed=seed)


def train_demo_model(
    output_dir: str | os.PathLike,
    *,
    epochs: int = 25,
    num_train: int = 128,
    num_val: int = 32,
    seed: int = 0,
    source: str = "simple",
    progress: bool = True,
):
    """Train the tiny config on synthetic thermal data; returns the :class:`TrainResult`.

    The trained model is at ``result.model_path`` (``model.keras``) and ``result.weights_path``
    (legacy HDF5); ``result.history`` holds the losses and the validation AP.
    """
    from cvlab.train.trainer import TrainConfig, train

    out = Path(output_dir)
    pattern, root = make_bench_data(out / "data", source, num_train, num_val, seed)
    config = TrainConfig.tiny(epochs=epochs, validate_every=epochs, seed=seed, threads=2)
    return train(config, pattern, root, out / "run", resume=False, progress=progress)


def main(argv: list[str]) -> int:
    """Bench: train the tiny config on CPU, print person AP and training images/s."""
    parser = argparse.ArgumentParser(prog="cvlab bench train")
    parser.add_argument("--output", default=None, help="work directory (default: a temp dir)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--data", choices=("simple", "flir"), default="simple")
    parser.add_argument("--train-images", type=int, default=128)
    parser.add_argument("--val-images", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import tempfile

    out = Path(args.output or tempfile.mkdtemp(prefix="cvlab-bench-train-"))
    t0 = time.perf_counter()
    result = train_demo_model(
        out,
        epochs=args.epochs,
        num_train=args.train_images,
        num_val=args.val_images,
        seed=args.seed,
        source=args.data,
    )
    wall = time.perf_counter() - t0
    h = result.history
    ap = float(h["ap_person"].dropna().iloc[-1]) if "ap_person" in h else float("nan")
    ips = float(h["images_per_s"].median())
    print(h.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"train: epochs {len(h)}, wall {wall:.1f} s, training images/s (median) {ips:.1f}")
    print(f"train: person AP (IoU 0.5, INTEGRATE) = {ap:.3f} (target >= {AP_TARGET})")
    print(f"train: model {result.model_path}")
    return 0 if ap >= AP_TARGET else 1
