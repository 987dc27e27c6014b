"""``cvlab bench train``: train the tiny DetectNet_v2 on the synthetic thermal set, report AP and speed.

The data is the project's synthetic FLIR v1 download (:func:`cvlab.datasets.synthetic.generate_synthetic_flir`)
converted with :func:`cvlab.datasets.prepare.prepare_flir_dataset`, exactly as a real FLIR download
(person only, images written at the model's input size, 20 % held out as fold 0). The tiny
config (:meth:`cvlab.train.trainer.TrainConfig.tiny`) is trained on CPU; person AP (IoU 0.5,
INTEGRATE, lab ``evaluation_box_config``) is measured on the held-out fold after clustering with
the inference post-processor (:func:`cvlab.train.validation.validation_postprocessor`); the median
training images/s is printed.

Transfer learning, as the lab retrains from PeopleNet: by default the IR model is trained twice
from the same seeds, from scratch and from the shipped RGB stand-in's weights
(:data:`cvlab.train.standin.SHIPPED_DIR`, backbone loaded by layer name, heads fresh, as TAO's
``pretrained_model_file``), validating every epoch; each run's final AP and the first epoch at
which it reached :data:`AP_TARGET` are printed side by side.

:func:`train_demo_model` trains a small IR model the same way for demos and notebooks.

Example:
    $ cvlab bench train --epochs 32 --images 240
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

AP_TARGET = 0.85
#: Percent of the frames held out for validation (fold 0).
VAL_PERCENT = 20


def make_flir_person_set(
    output_dir: str | os.PathLike,
    num_images: int = 160,
    input_size: tuple[int, int] | None = None,
    seed: int = 0,
    val_percent: float = VAL_PERCENT,
    progress: bool = False,
) -> tuple[str, Path]:
    """Synthetic FLIR v1 download -> ``prepare_flir_dataset`` (person only, ``val_percent`` held out).

    Images are written at ``input_size`` (default: the tiny config's). Returns
    ``(tfrecords glob pattern, image root)``.

    Example:
        >>> pattern, root = make_flir_person_set("/tmp/flir-set", num_images=20)  # doctest: +SKIP
    """
    from cvlab.datasets.prepare import prepare_flir_dataset
    from cvlab.datasets.synthetic import generate_synthetic_flir
    from cvlab.train.model import TINY_CONFIG

    root = Path(output_dir)
    source = generate_synthetic_flir(root / "flir", "v1", num_images=num_images, seed=seed)
    report = prepare_flir_dataset(
        source,
        root / "prepared",
        classes=("person",),
        output_size=tuple(input_size or TINY_CONFIG.input_size),
        val_split=val_percent,
        num_shards=2,
        progress=progress,
    )
    return str(report.tfrecords_dir / "*"), report.output_dir


def train_demo_model(
    output_dir: str | os.PathLike,
    *,
    epochs: int | None = None,
    num_images: int = 240,
    seed: int = 0,
    progress: bool = True,
    validate_every: int | None = None,
    **config_overrides,
):
    """Train the tiny config on the synthetic thermal set; returns the :class:`TrainResult`.

    ``config_overrides`` go to :meth:`TrainConfig.tiny`. The trained model is at
    ``result.model_path`` (``model.keras``) and ``result.weights_path`` (legacy HDF5);
    ``result.history`` holds the losses and the validation AP (evaluated once, at the end).
    """
    from cvlab.train.config import TrainConfig
    from cvlab.train.trainer import train

    out = Path(output_dir)
    config = TrainConfig.tiny(seed=seed, threads=2, **config_overrides)
    epochs = epochs or config.epochs
    pattern, root = make_flir_person_set(
        out / "data", num_images, config.model.input_size, seed, progress=progress
    )
    return train(
        config,
        pattern,
        root,
        out / "run",
        epochs=epochs,
        validate_every=validate_every or epochs,
        resume=False,
        progress=progress,
    )


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    """``cvlab bench train`` options."""
    parser.add_argument("--output", default=None, help="work directory (default: a temp dir)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the tiny config's")
    parser.add_argument("--images", type=int, default=240, help="frames, 20 %% held out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--start",
        choices=["both", "scratch", "rgb-standin"],
        default="both",
        help="train from scratch, from the shipped RGB stand-in's weights, or both",
    )


def epochs_to_reach(history, target: float = AP_TARGET) -> int | None:
    """The first epoch whose validation person AP is at least ``target`` (None: never).

    >>> import pandas as pd
    >>> epochs_to_reach(pd.DataFrame({"epoch": [1, 2, 3], "ap_person": [0.2, 0.86, 0.9]}))
    2
    """
    if "ap_person" not in history:
        return None
    reached = history[history["ap_person"] >= target]
    return int(reached["epoch"].iloc[0]) if len(reached) else None


def bench(args: argparse.Namespace) -> int:
    """Bench: train the tiny config on CPU from scratch and/or from the RGB stand-in's weights;
    print person AP, the epochs to reach the target and training images/s."""
    import tempfile

    from cvlab.train.standin import SHIPPED_DIR, WEIGHTS_FILE

    out = Path(args.output or tempfile.mkdtemp(prefix="cvlab-bench-train-"))
    starts = ["scratch", "rgb-standin"] if args.start == "both" else [args.start]
    rows, ok = [], True
    for start in starts:
        weights = str(SHIPPED_DIR / WEIGHTS_FILE) if start == "rgb-standin" else None
        t0 = time.perf_counter()
        result = train_demo_model(
            out / start,
            epochs=args.epochs,
            num_images=args.images,
            seed=args.seed,
            progress=False,
            validate_every=1,
            pretrained_weights=weights,
        )
        wall = time.perf_counter() - t0
        h = result.history
        ap = float(h["ap_person"].dropna().iloc[-1]) if "ap_person" in h else float("nan")
        ips = float(h["images_per_s"].median())
        if result.weights_report is not None:
            print(f"train ({start}): {result.weights_report.summary()}")
        print(h.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        reached = epochs_to_reach(h)
        rows.append((start, ap, reached, len(h), wall, ips))
        ok = ok and ap >= AP_TARGET
        print(f"train ({start}): model {result.model_path}")
    for start, ap, reached, epochs, wall, ips in rows:
        when = f"epoch {reached}" if reached else "not reached"
        print(
            f"train: from {start:11s} person AP (IoU 0.5, INTEGRATE) = {ap:.3f} after {epochs} "
            f"epochs (target >= {AP_TARGET} reached: {when}); wall {wall:.1f} s, training "
            f"images/s (median) {ips:.1f}"
        )
    return 0 if ok else 1
