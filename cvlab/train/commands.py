"""``cvlab train``: train DetectNet_v2 on TAO TFRecords with the in-package Keras trainer."""

from __future__ import annotations

import argparse
import importlib

from cvlab.detectnet import PEOPLENET_INPUT_SIZE

CONFIGS = ("tiny", "resnet10", "resnet18", "resnet34")


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from cvlab.train.model import TINY_CONFIG, ModelConfig
    from cvlab.train.trainer import TrainConfig, train

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    if args.config == "tiny":
        config = TrainConfig.tiny(class_names=classes)
        model = TINY_CONFIG
    else:
        model = ModelConfig(input_size=PEOPLENET_INPUT_SIZE, num_layers=int(args.config[len("resnet") :]))
        config = TrainConfig(class_names=classes, model=model)
    if args.input_size:
        w, h = (int(v) for v in args.input_size.lower().split("x"))
        model = dataclasses.replace(model, input_size=(w, h))
    if args.width_multiplier:
        model = dataclasses.replace(model, width_multiplier=args.width_multiplier)
    config = dataclasses.replace(
        config,
        model=model,
        pretrained_weights=args.pretrained,
        threads=args.threads,
        validation_fold=None if args.validation_fold < 0 else args.validation_fold,
    )
    result = train(
        config,
        args.tfrecords,
        args.images,
        args.output,
        epochs=args.epochs,
        batch_size=args.batch_size,
        resume=args.resume,
        progress=not args.quiet,
        validate_every=args.validate_every,
        max_steps_per_epoch=args.max_steps,
    )
    cols = [c for c in ("epoch", "loss", "lr", "images_per_s", "mAP") if c in result.history]
    print(result.history[cols].to_string(index=False))
    print(
        f"model: {result.model_path}\nweights: {result.weights_path}\nmetrics: {result.metrics_csv}"
    )
    return 0


def register(subparsers) -> None:
    """Add ``cvlab train`` (and D2's ``evaluate``/``export``/``tao`` when present)."""
    p = subparsers.add_parser("train", help="train DetectNet_v2 (Keras) on TAO TFRecords")
    p.add_argument("--tfrecords", required=True, help="glob of the TFRecord files")
    p.add_argument("--images", required=True, help="image root the frame/id paths are under")
    p.add_argument("--output", required=True, help="run directory (checkpoints, metrics, model)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--config", choices=CONFIGS, default="tiny")
    p.add_argument("--classes", default="person", help="comma-separated target classes")
    p.add_argument("--input-size", default=None, help="WxH, multiples of 16 (e.g. 480x272)")
    p.add_argument("--width-multiplier", type=float, default=None)
    p.add_argument("--pretrained", default=None, help="legacy .h5 weights loaded by layer name")
    p.add_argument("--validate-every", type=int, default=None)
    p.add_argument("--validation-fold", type=int, default=0, help="-1: no validation")
    p.add_argument("--max-steps", type=int, default=None, help="cap on steps per epoch")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_train)
    try:
        tools = importlib.import_module("cvlab.export.commands")
    except ModuleNotFoundError as exc:
        if exc.name != "cvlab.export.commands":
            raise
    else:
        tools.register(subparsers)
