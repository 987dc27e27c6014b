"""``cvlab train run|evaluate|tao-commands|tao-log`` (rows of :data:`cvlab.cli.VERBS`).

    cvlab train run --tfrecords 'prepared/tfrecords/*' --images prepared --output runs/train
    cvlab train evaluate --predictions PRED_DIR --labels LABEL_DIR [--mode INTEGRATE|SAMPLE]
    cvlab train tao-commands [--spec SPEC] [--launcher tao5] [--write-spec SPEC --tfrecords ...]
    cvlab train tao-log train.log [--csv metrics.csv]

Heavy imports (TensorFlow) happen inside the commands.
"""

from __future__ import annotations

import argparse

from cvlab.cli import parse_size, unit_interval
from cvlab.detectnet import PEOPLENET_INPUT_SIZE

CONFIGS = ("tiny", "resnet10", "resnet18", "resnet34")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from cvlab.train.config import TrainConfig
    from cvlab.train.model import TINY_CONFIG, ModelConfig
    from cvlab.train.trainer import train

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    if args.config == "tiny":
        config = TrainConfig.tiny(class_names=classes)
        model = TINY_CONFIG
    else:
        model = ModelConfig(
            input_size=PEOPLENET_INPUT_SIZE, num_layers=int(args.config[len("resnet") :])
        )
        config = TrainConfig(class_names=classes, model=model)
    if args.input_size:
        model = dataclasses.replace(model, input_size=args.input_size)
    if args.width_multiplier:
        model = dataclasses.replace(model, width_multiplier=args.width_multiplier)
    config = dataclasses.replace(
        config,
        model=model,
        pretrained_weights=args.pretrained,
        load_graph=args.load_graph,
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
    cols = ("epoch", "loss", "lr", "images_per_s", "mAP", "mAP_tao")
    cols = [c for c in cols if c in result.history]
    print(result.history[cols].to_string(index=False))
    print(
        f"model: {result.model_path}\nweights: {result.weights_path}\nmetrics: {result.metrics_csv}"
    )
    return 0


def run_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab train run`` options."""
    p.add_argument("--tfrecords", required=True, help="glob of the TFRecord files")
    p.add_argument("--images", required=True, help="image root the frame/id paths are under")
    p.add_argument("--output", required=True, help="run directory (checkpoints, metrics, model)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--config", choices=CONFIGS, default="tiny")
    p.add_argument("--classes", default="person", help="comma-separated target classes")
    p.add_argument(
        "--input-size", type=parse_size, default=None, help="WxH, multiples of 16 (e.g. 480x272)"
    )
    p.add_argument("--width-multiplier", type=float, default=None)
    p.add_argument(
        "--pretrained",
        default=None,
        help="Keras .hdf5/.h5 weights (TAO layer names) loaded by name: the backbone, as TAO",
    )
    p.add_argument(
        "--load-graph",
        action="store_true",
        help="also load the heads from --pretrained (TAO model_config.load_graph)",
    )
    p.add_argument("--validate-every", type=int, default=None)
    p.add_argument("--validation-fold", type=int, default=0, help="-1: no validation")
    p.add_argument("--max-steps", type=int, default=None, help="cap on steps per epoch")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--quiet", action="store_true")


def evaluate_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab train evaluate`` options."""
    p.add_argument("--predictions", required=True, help="directory of 16-field KITTI files")
    p.add_argument("--labels", required=True, help="directory of 15-field KITTI label files")
    p.add_argument("--mode", default="INTEGRATE", choices=["INTEGRATE", "SAMPLE"])
    p.add_argument("--iou", type=unit_interval, default=0.5, help="minimum IoU for a match")
    p.add_argument("--classes", default=None, help="comma-separated (default: all in labels)")
    p.add_argument("--min-height", type=float, default=4)
    p.add_argument("--min-width", type=float, default=4)
    p.add_argument(
        "--convention",
        default="exact",
        choices=["exact", "tao"],
        help="exact: continuous box IoU; tao: TAO's evaluation to the letter (+1 pixel box "
        "sizes, its ordering of tied confidences), to compare with a TAO log's AP",
    )
    p.add_argument("--csv", default=None, help="also write the AP table here")
    p.add_argument("--plot", default=None, help="also save the PR curves (PNG) here")


def tao_commands_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab train tao-commands`` options."""
    p.add_argument("--spec", default="training_config/training_spec.txt")
    p.add_argument("--results", default="experiments")
    p.add_argument("--launcher", default="container", choices=["container", "tao4", "tao5"])
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--write-spec", default=None, help="write the lab's training spec here")
    p.add_argument("--tfrecords", default="/workspace/tao-experiments/data/tfrecords/flir/*")
    p.add_argument("--image-dir", default="/workspace/tao-experiments/data/flir/kitti")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=4)


def tao_log_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab train tao-log`` options."""
    p.add_argument("log")
    p.add_argument("--csv", default=None)


def evaluate(args: argparse.Namespace) -> int:
    from cvlab.train.evaluate import evaluate_kitti_dirs

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    result = evaluate_kitti_dirs(
        args.predictions,
        args.labels,
        classes,
        iou_threshold=args.iou,
        mode=args.mode,
        min_height=args.min_height,
        min_width=args.min_width,
        convention=args.convention,
    )
    print(result.per_class.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    convention = ", TAO convention" if args.convention == "tao" else ""
    print(f"mAP ({args.mode}, IoU >= {args.iou:g}{convention}): {result.mean_ap:.4f}")
    if args.csv:
        from cvlab.fileio import atomic_write_text

        atomic_write_text(args.csv, result.per_class.to_csv(index=False))
    if args.plot:
        result.plot_pr_curves().savefig(args.plot, dpi=100, bbox_inches="tight")
    return 0


def tao_commands(args: argparse.Namespace) -> int:
    from cvlab.train.tao import lab_commands

    if args.write_spec:
        from cvlab.formats.tao_spec import build_lab_spec, write_training_spec

        exp = build_lab_spec(
            args.tfrecords, args.image_dir, num_epochs=args.epochs, batch_size=args.batch_size
        )
        print(f"# wrote {write_training_spec(exp, args.write_spec)}")
    spec = args.write_spec or args.spec
    for step, cmd in lab_commands(spec, args.results, args.launcher, args.gpus).items():
        print(f"# {step}\n{cmd.shell}")
    return 0


def tao_log(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cvlab.train.tao import parse_tao_log

    df = parse_tao_log(Path(args.log))
    print(df.to_string(index=False))
    if args.csv:
        from cvlab.fileio import atomic_write_text

        atomic_write_text(args.csv, df.to_csv(index=False))
    return 0
