"""``cvlab export onnx|tensorrt|demo-model`` (rows of :data:`cvlab.cli.VERBS`).

    cvlab export onnx --model model.keras --output model.onnx
    cvlab export tensorrt --onnx model.onnx --engine model.plan [--precision int8 --calib-images DIR]
    cvlab export demo-model --output REPOSITORY

Heavy imports happen inside the commands.
"""

from __future__ import annotations

import argparse
import sys

from cvlab.cli import parse_size
from cvlab.detectnet import PEOPLENET_INPUT_SIZE


def onnx_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab export onnx`` options."""
    p.add_argument("--model", required=True, help=".keras model file")
    p.add_argument("--output", required=True, help="ONNX file to write")
    p.add_argument("--atol", type=float, default=1e-4, help="max |Keras - ONNX| allowed")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    p.add_argument("--opset", type=int, default=13)


def tensorrt_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab export tensorrt`` options."""
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


def onnx(args: argparse.Namespace) -> int:
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


def tensorrt(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cvlab.export.tensorrt import (
        EngineBuildPlan,
        build_engine,
        tensorrt_available,
        trtexec_command,
    )

    images: list[str] = []
    if args.calib_images:
        from cvlab.fileio import list_images

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


def demo_model_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab export demo-model`` options."""
    p.add_argument("--output", required=True, help="model repository directory")
    p.add_argument("--name", default="peoplenet_demo")
    p.add_argument("--num-classes", type=int, default=3)
    p.add_argument(
        "--input-size", type=parse_size, default=PEOPLENET_INPUT_SIZE, help="WIDTHxHEIGHT"
    )
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument(
        "--target", default="python", choices=["python", "onnxruntime_onnx"], help="backend"
    )


def demo_model(args: argparse.Namespace) -> int:
    from cvlab.export.demo_model import write_demo_repository

    model_dir = write_demo_repository(
        args.output,
        args.name,
        args.num_classes,
        args.input_size,
        args.max_batch_size,
        args.target,
    )
    print(f"wrote {model_dir} (serve with: cvlab triton serve --model-repository {args.output})")
    return 0


def rgb_standin_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab export rgb-standin`` options."""
    p.add_argument("--output", required=True, help="model repository directory")
    p.add_argument("--max-batch-size", type=int, default=16)


def rgb_standin(args: argparse.Namespace) -> int:
    """Write a Triton repository serving the shipped RGB stand-in and print how to query it."""
    from cvlab.export.rgb_standin import STANDIN_CLUSTERING_CONFIG, write_standin_repository
    from cvlab.shell import shell_quote as quote

    model_dir = write_standin_repository(args.output, max_batch_size=args.max_batch_size)
    print(f"wrote {model_dir}")
    print(f"serve it:  cvlab triton serve --model-repository {quote(args.output)}")
    print(
        f"query it:  cvlab infer IMAGE_DIR -m {model_dir.name} -u 127.0.0.1:PORT "
        f"--postprocessing_config {quote(str(STANDIN_CLUSTERING_CONFIG))} --output_path out"
    )
    return 0
