"""``cvlab serve``, ``cvlab infer``, ``cvlab make-demo-model``, ``cvlab check-repository``.

``cvlab infer`` takes the flags of the lab's tao client (``-m -x -b --mode -i -u --async
--output_path --postprocessing_config --class_list``). Heavy imports happen inside the commands.
"""

from __future__ import annotations

import argparse
import sys

from cvlab.detectnet import PEOPLENET_INPUT_SIZE


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def _env_pair(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name, value


def register(subparsers) -> None:
    """Add the Triton sub-commands."""
    p = subparsers.add_parser("infer", help="run a model on Triton over images (lab's tao client)")
    p.add_argument("images", help="image directory or file")
    p.add_argument("-m", "--model_name", required=True, help="model name on the server")
    p.add_argument("-x", "--model_version", default="", help="model version (default: latest)")
    p.add_argument("-b", "--batch_size", type=int, default=1, help="images per request")
    p.add_argument("--mode", default="DetectNet_v2", help="post-processing mode (DetectNet_v2)")
    p.add_argument(
        "-i", "--protocol", default="http", choices=["http", "https", "grpc"], help="protocol"
    )
    p.add_argument("-u", "--url", default="127.0.0.1:8000", help="server HOST:PORT")
    p.add_argument("-a", "--async", dest="async_mode", action="store_true", help="async requests")
    p.add_argument("--ssl", action="store_true", help="use TLS (also implied by -i https)")
    p.add_argument("--output_path", default="infer_output", help="output directory")
    p.add_argument("--postprocessing_config", help="clustering config prototxt")
    p.add_argument("--class_list", help="comma-separated class names, e.g. person,bag,face")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (--async)")
    p.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--shared-memory",
        default="auto",
        choices=["auto", "system", "none"],
        help="tensors through system shared memory (auto: when the server is on this machine)",
    )
    p.set_defaults(func=_infer)

    s = subparsers.add_parser("serve", help="run a local Triton server until Ctrl-C")
    s.add_argument("--model-repository", required=True, help="directory or gs://bucket/path")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    s.add_argument("--http-port", type=int)
    s.add_argument("--grpc-port", type=int)
    s.add_argument("--metrics-port", type=int)
    s.add_argument("--log-verbose", type=int, default=0)
    s.add_argument("--startup-timeout", type=float, default=120.0)
    s.add_argument("--env", type=_env_pair, action="append", default=[], help="NAME=VALUE")
    s.set_defaults(func=_serve)

    d = subparsers.add_parser("make-demo-model", help="write a repository with the demo model")
    d.add_argument("--output", required=True, help="model repository directory")
    d.add_argument("--name", default="peoplenet_demo")
    d.add_argument("--num-classes", type=int, default=3)
    d.add_argument("--input-size", type=_size, default=PEOPLENET_INPUT_SIZE, help="WIDTHxHEIGHT")
    d.add_argument("--max-batch-size", type=int, default=16)
    d.add_argument(
        "--target", default="python", choices=["python", "onnxruntime_onnx"], help="backend"
    )
    d.set_defaults(func=_make_demo)

    c = subparsers.add_parser("check-repository", help="validate a local model repository")
    c.add_argument("repository")
    c.set_defaults(func=_check)


def _infer(args: argparse.Namespace) -> int:
    from cvlab.triton.client import TritonClientError
    from cvlab.triton.pipeline import run_inference

    protocol, ssl = args.protocol, args.ssl
    if protocol == "https":
        protocol, ssl = "http", True
    classes = [c.strip() for c in args.class_list.split(",")] if args.class_list else None
    try:
        summary = run_inference(
            args.images,
            args.model_name,
            args.url,
            version=args.model_version,
            batch_size=args.batch_size,
            mode=args.mode,
            protocol=protocol,
            async_mode=args.async_mode,
            output_path=args.output_path,
            postprocessing_config=args.postprocessing_config,
            class_list=classes,
            ssl=ssl,
            concurrency=args.concurrency,
            timeout_s=args.timeout,
            progress=not args.no_progress,
            shared_memory=args.shared_memory,
        )
    except (ValueError, FileNotFoundError, TritonClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    boxes = sum(len(d) for d in summary.detections)
    print(
        f"{len(summary.detections)} image(s), {boxes} box(es); labels in {summary.labels_dir}, "
        f"overlays in {summary.images_dir}"
    )
    for err in summary.errors:
        print(f"error: {err}", file=sys.stderr)
    return 1 if summary.errors else 0


def _serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from cvlab.triton.server import TritonServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with TritonServer(
        args.model_repository,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        env=dict(args.env),
        log_verbose=args.log_verbose,
        startup_timeout=args.startup_timeout,
    ) as server:
        print(
            f"Triton ready: http {server.http_url}  grpc {server.grpc_url}  "
            f"metrics {server.metrics_url}  (log {server.log_path}); Ctrl-C to stop",
            flush=True,
        )
        try:
            while not stop.wait(0.2):
                if server.process is None or server.process.poll() is not None:
                    if stop.is_set():  # stopped by the SIGTERM handler
                        break
                    print("tritonserver exited; last log lines:", file=sys.stderr)
                    print("\n".join(server.log_text().splitlines()[-20:]), file=sys.stderr)
                    return 1
        except KeyboardInterrupt:
            pass
    print("Triton stopped")
    return 0


def _make_demo(args: argparse.Namespace) -> int:
    from cvlab.export.demo_model import write_demo_repository

    model_dir = write_demo_repository(
        args.output,
        args.name,
        args.num_classes,
        args.input_size,
        args.max_batch_size,
        args.target,
    )
    print(f"wrote {model_dir} (serve with: cvlab serve --model-repository {args.output})")
    return 0


def _check(args: argparse.Namespace) -> int:
    from cvlab.triton.model_repository import validate_model_repository

    problems = validate_model_repository(args.repository)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{args.repository}: OK")
    return 1 if problems else 0
