"""``cvlab bench train``: train the tiny DetectNet_v2 on the synthetic thermal set, report AP and speed.

The data is the project's synthetic FLIR v1 download (:func:`cvlab.datasets.synthetic.generate_synthetic_flir`)
converted with :func:`cvlab.datasets.prepare.prepare_flir_dataset`, exactly as a real FLIR download
(person only, images written at the model's input size, 20 % held out as fold 0). The tiny
config (:meth:`cvlab.train.trainer.TrainConfig.tiny`) is trained on CPU; person AP (IoU 0.5,
INTEGRATE, lab ``evaluation_box_config``) is measured on the held-out fold after clustering with
the inference post-processor (:func:`cvlab.train.validation.validation_postprocessor`); the median
training images/s is printed.

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
        validate_every=epochs,
        resume=False,
        progress=progress,
    )


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    """``cvlab bench train`` options."""
    parser.add_argument("--output", default=None, help="work directory (default: a temp dir)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the tiny config's")
    parser.add_argument("--images", type=int, default=240, help="frames, 20 %% held out")
    parser.add_argument("--seed", type=int, default=0)


def bench(args: argparse.Namespace) -> int:
    """Bench: train the tiny config on CPU, print person AP and training images/s."""
    import tempfile

    out = Path(args.output or tempfile.mkdtemp(prefix="cvlab-bench-train-"))
    t0 = time.perf_counter()
    result = train_demo_model(
        out, epochs=args.epochs, num_images=args.images, seed=args.seed, progress=False
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
