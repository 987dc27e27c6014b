"""CLI for evaluation, ONNX export, the TensorRT build and the TAO commands.

``cvlab.train.commands.register`` calls :func:`register`. Heavy imports happen inside the commands.

    cvlab evaluate --predictions PRED_DIR --labels LABEL_DIR [--mode INTEGRATE|SAMPLE]
    cvlab export-onnx --model model.keras --output model.onnx
    cvlab tensorrt --onnx model.onnx --engine model.plan [--precision int8 --calib-images DIR]
    cvlab tao-commands [--spec SPEC] [--launcher tao5] [--write-spec SPEC --tfrecords ...]
    cvlab tao-log train.log [--csv metrics.csv]
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate``, ``export-onnx``, ``tensorrt``, ``tao-commands`` and ``tao-log``."""
    p = sub.add_parser("evaluate", help="TAO-style AP of KITTI predictions against KITTI labels")
    p.add_argument("--predictions", required=True, help="directory of 16-field KITTI files")
    p.add_argument("--labels", required=True, help="directory of 15-field KITTI label files")
    p.add_argument("--mode", default="INTEGRATE", choices=["INTEGRATE", "SAMPLE"])
    p.add_argument("--iou", type=float, default=0.5, help="minimum IoU for a match")
    p.add_argument("--classes", default=None, help="comma-separated (default: all in labels)")
    p.add_argument("--min-height", type=float, default=4)
    p.add_argument("--min-width", type=float, default=4)
    p.add_argument("--csv", default=None, help="also write the AP table here")
    p.add_argument("--plot", default=None, help="also save the PR curves (PNG) here")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("export-onnx", help="Keras DetectNet_v2 -> ONNX with the Triton names")
    p.add_argument("--model", required=True, help=".keras model file")
    p.add_argument("--output", required=True, help="ONNX file to write")
    p.add_argument("--atol", type=float, default=1e-4, help="max |Keras - ONNX| allowed")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    p.add_argument("--opset", type=int, default=13)
    p.set_defaults(func=_export_onnx)

    p = sub.add_parser("tensorrt", help="build a TensorRT engine (or print the trtexec line)")
    p.add_argument("--onnx", required=True)
    p.add_argument("--engine", required=True)
    p.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "int8"])
    p.add_argument("--calib-images", default=None, help="directory of calibration images")
    p.add_argument("--calib-cache", default=None, help="calibration table (default ENGINE.calib)")
    p.add_argument("--calib-batch-size", type=int, default=8)
    p.add_argument("--calib-batches", type=int, default=10)
    p.add_argument("--workspace-mib", type=int, default=2048)
    p.add_argument("--timing-cache", default=None)
    p.add_argument("--min-batch", type=int, default=1)
    p.add_argument("--opt-batch", type=int, default=8)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--print-command", action="store_true", help="only print the trtexec line")
    p.set_defaults(func=_tensorrt)

    p = sub.add_parser("tao-commands", help="print the lab's TAO commands (and write its spec)")
    p.add_argument("--spec", default="training_config/training_spec.txt")
    p.add_argument("--results", default="experiments")
    p.add_argument("--launcher", default="container", choices=["container", "tao4", "tao5"])
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--write-spec", default=None, help="write the lab's training spec here")
    p.add_argument("--tfrecords", default="/workspace/tao-experiments/data/tfrecords/flir/*")
    p.add_argument("--image-dir", default="/workspace/tao-experiments/data/flir/kitti")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=4)
    p.set_defaults(func=_tao_commands)

    p = sub.add_parser("tao-log", help="parse a detectnet_v2 train log into a metrics table")
    p.add_argument("log")
    p.add_argument("--csv", default=None)
    p.set_defaults(func=_tao_log)


def _evaluate(args: argparse.Namespace) -> int:
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
    )
    print(result.per_class.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"mAP ({args.mode}, IoU >= {args.iou:g}): {result.mean_ap:.4f}")
    if args.csv:
        from cvlab.formats.kitti import atomic_write_text

        atomic_write_text(args.csv, result.per_class.to_csv(index=False))
    if args.plot:
        result.plot_pr_curves().savefig(args.plot, dpi=100, bbox_inches="tight")
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    import keras

    import cvlab.train.model  # noqa: F401  (registers the custom layers for loading)
    from cvlab.export.onnx import export_onnx

    model = keras.models.load_model(args.model, compile=False)
    report = export_onnx(
        model, args.output, check=not args.no_check, atol=args.atol, opset=args.opset
    )
    print(report.to_pandas().to_string(index=False))
    if report.max_abs_diff is not None:
        print(f"max |Keras - ONNX| = {report.max_abs_diff:.3g} (batches {report.checked_batches})")
    print(f"wrote {report.path} ({report.size_bytes / 1e6:.1f} MB) in {report.seconds:.1f} s")
    return 0


def _tensorrt(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cvlab.export.tensorrt import (
        EngineBuildPlan,
        build_engine,
        tensorrt_available,
        trtexec_command,
    )

    images: list[str] = []
    if args.calib_images:
        from cvlab.inference.preprocess import list_images

        images = [str(p) for p in list_images(args.calib_images)]
    cache = args.calib_cache or (
        str(Path(args.engine).with_suffix(".calib")) if args.precision == "int8" else None
    )
    plan = EngineBuildPlan.from_onnx(
        args.onnx,
        args.engine,
        precision=args.precision,
        workspace_mib=args.workspace_mib,
        calibration_cache=cache,
        calibration_images=images,
        calibration_batch_size=args.calib_batch_size,
        calibration_max_batches=args.calib_batches,
        timing_cache=args.timing_cache,
        min_batch=args.min_batch,
        opt_batch=args.opt_batch,
        max_batch=args.max_batch,
    )
    if args.print_command or not tensorrt_available():
        if not args.print_command:
            print(
                "TensorRT is not importable here: run this on the GPU machine instead:",
                file=sys.stderr,
            )
        print(trtexec_command(plan).shell)
        return 0
    path = build_engine(plan)
    print(f"wrote {path}")
    return 0


def _tao_commands(args: argparse.Namespace) -> int:
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


def _tao_log(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cvlab.train.tao import parse_tao_log

    df = parse_tao_log(Path(args.log))
    print(df.to_string(index=False))
    if args.csv:
        from cvlab.formats.kitti import atomic_write_text

        atomic_write_text(args.csv, df.to_csv(index=False))
    return 0
