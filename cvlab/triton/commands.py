"""``cvlab infer``, ``cvlab triton serve``, ``cvlab triton check`` (rows of :data:`cvlab.cli.VERBS`).

``cvlab infer`` takes the flags of the lab's tao client (``-m -x -b --mode -i -u --async
--output_path --postprocessing_config --class_list``). Heavy imports happen inside the commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cvlab.cli import parse_size, positive_float, positive_int
from cvlab.triton.outputs import DONE_LIST, OVERLAY_QUALITY, OVERLAY_SIZE

#: Where ``cvlab infer`` looks without ``-u`` when no ``cvlab triton serve`` is running.
DEFAULT_URL = "127.0.0.1:8000"


def _quality(text: str) -> int:
    """A JPEG quality, 1-100."""
    value = positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"JPEG quality is 1-100, got {value}")
    return value


def _overlay_size(text: str) -> tuple[int, int] | str:
    """``--overlay-size``: ``WxH``, ``model`` or ``full``.

    >>> _overlay_size("Model"), _overlay_size("full"), _overlay_size("640x360")
    ('model', 'full', (640, 360))
    """
    word = str(text).strip().lower()
    return word if word in ("model", "full") else parse_size(text)


def _env_pair(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name, value


#: The lab client's ``--mode`` values (tao-toolkit-triton-apps ``SUPPORTED_MODELS``);
#: cvlab infer runs DetectNet_v2 only.
LAB_MODES = (
    "Classification", "DetectNet_v2", "LPRNet", "YOLOv3", "Peoplesegnet", "Retinanet",
    "Multitask_classification", "Pose_classification", "Re_identification", "VisualChangeNet",
    "CenterPose", "Foundationpose",
)  # fmt: skip
#: Options the lab client takes for its other modes: option -> (dest, the modes using it).
OTHER_MODE_OPTIONS = {
    "--img_dirs": ("img_dirs", "VisualChangeNet and Foundationpose"),
    "--dataset_convert_config": ("dataset_convert_config", "Pose_classification"),
    "--test_dir": ("test_dir", "Re_identification"),
    "--obj_file": ("obj_file", "Foundationpose"),
    "--intrinsic_file": ("intrinsic_file", "Foundationpose"),
    "--bbox": ("bbox", "Foundationpose"),
}
#: TLS options: option -> (dest, the client's TLS key, help).
TLS_OPTIONS = {
    "--ssl-ca-file": (
        "ssl_ca_file", "ca_file",
        "PEM CA bundle that signed the server's certificate (default: the system's)",
    ),
    "--ssl-cert-file": (
        "ssl_cert_file", "cert_file",
        "PEM client certificate (chain) for mutual TLS",
    ),
    "--ssl-key-file": (
        "ssl_key_file", "key_file", "PEM private key of --ssl-cert-file",
    ),
}  # fmt: skip
_TLS_ALIASES = {
    "--ssl-ca-file": "--root-certificates",
    "--ssl-cert-file": "--certificate-chain",
    "--ssl-key-file": "--private-key",
}


def _spellings(*names: str) -> list[str]:
    """Each long option in its hyphen and underscore spelling (short options as they are)."""
    out: list[str] = []
    for name in names:
        if not name.startswith("--"):
            out.append(name)
            continue
        for spelled in (name, "--" + name[2:].replace("_", "-"), "--" + name[2:].replace("-", "_")):
            if spelled not in out:
                out.append(spelled)
    return out


def infer_arguments(p: argparse.ArgumentParser) -> None:
    """The lab client's flags (``tao_client.py``), each long one also with ``-``/``_`` swapped."""
    p.description = (
        "Run the lab's tao_client.py command with `cvlab infer` in its place: every option that "
        "client takes for DetectNet_v2 works here, in hyphen and underscore spellings."
    )
    p.epilog = (
        "exit status:\n"
        "  0    every image was written\n"
        "  1    some requests failed (each one listed)\n"
        "  2    a usage or input error, in one line (also an unreadable image with\n"
        "       --on-error raise)\n"
        "  3    every request succeeded but unreadable images were skipped (each one listed\n"
        "       with its reason)\n"
        "  130  interrupted: the frames done so far are listed in OUT/infer_done.txt;\n"
        "       rerun with --resume to finish the others"
    )
    add = p.add_argument
    add("images", help="image directory or file")
    add(
        *_spellings("-m", "--model-name"),
        dest="model_name",
        required=True,
        help="model name on the server",
    )
    add(
        *_spellings("-x", "--model-version"),
        dest="model_version",
        default="",
        help="model version (empty: the latest)",
    )
    add(
        *_spellings("-b", "--batch-size"),
        dest="batch_size",
        type=positive_int,
        default=1,
        help="images per request",
    )
    add(
        "--mode",
        default="DetectNet_v2",
        help="the lab client's mode, any case; cvlab runs DetectNet_v2 only",
    )
    add(
        *_spellings("-i", "--protocol"),
        dest="protocol",
        default="HTTP",
        help="HTTP or gRPC, any case. HTTPS means plain HTTP, as in the lab client (it only "
        "checks for gRPC), so the lab's `-i https -u <ip>:80` works; TLS needs --ssl",
    )
    add(
        *_spellings("-u", "--url"),
        dest="url",
        default=None,
        help="server HOST:PORT (default: the running `cvlab triton serve`, else 127.0.0.1:8000)",
    )
    add("-a", "--async", dest="async_mode", action="store_true", help="async requests")
    add(
        "--streaming",
        action="store_true",
        help="gRPC only, as in the lab client; requests are kept in flight as with --async",
    )
    add(
        "-v",
        "--verbose",
        action="store_true",
        help="print the resolved settings (protocol, TLS, model, batch) first",
    )
    add(
        *_spellings("--output_path"),
        dest="output_path",
        default="infer_output",
        help="output directory",
    )
    add(
        *_spellings("--postprocessing_config"),
        dest="postprocessing_config",
        help="clustering config prototxt",
    )
    add(
        *_spellings("--class_list"),
        dest="class_list",
        help="comma-separated class names, e.g. person,bag,face (none: the config's classes)",
    )
    add(
        "--clustering",
        choices=["dbscan", "dbscan_legacy", "nms", "hybrid"],
        default="dbscan",
        help="how grid cells become boxes, for every class. dbscan (default): TAO "
        "DetectNet_v2's DBSCAN (1 - IoU distance, integer min_samples: the prototxt's 0.05 "
        "becomes 1, with a warning). dbscan_legacy: the lab's tao_client.py box for box (it "
        "feeds rows of the 1 - IoU matrix to a Euclidean DBSCAN and keeps the float "
        "min_samples, so a lone weak cell is a box); not the default because those are not "
        "TAO's rules. nms, hybrid: TAO's. The prototxt has no field for it: the lab client's "
        "parser refuses unknown fields (docs/clustering.md)",
    )
    add("--concurrency", type=positive_int, default=4, help="requests in flight (--async)")
    add(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="client processes sharing the images, the done-list and the failed list (same "
        "outputs as one). More help when the server is remote (a GPU Triton answers faster than "
        "one process reads, decodes and clusters frames): up to one per free core. Against a "
        "server on this machine they compete with it for the same cores",
    )
    add(
        "--timeout",
        type=positive_float,
        default=30.0,
        help="seconds any call to the server may take; a server silent that long is taken as "
        "stalled and the frames left are listed as failed",
    )
    add("--no-progress", action="store_true", help="no progress bar")
    add(
        "--on-error",
        dest="on_error",
        choices=["skip", "raise"],
        default="skip",
        help="an unreadable image: skip it (every one is listed with its reason at the end and "
        "the exit status is 3) or stop the run at the first (exit status 2)",
    )
    out = p.add_argument_group(
        "outputs",
        "OUT/infer_labels/<stem>.txt and OUT/infer_images/<stem>.jpg per image, as the lab\n"
        "client; images whose stems collide (a.jpg, a.JPG, a.png) keep their suffix instead\n"
        "(a.jpg.txt, a.JPG.txt, a.png.txt). Each frame's overlay is written first, then its\n"
        "label (both atomically), then the frame is appended to OUT/infer_done.txt: a label\n"
        "file means its frame is complete.",
    )
    out.add_argument(
        "--no-images", action="store_true", help="write labels only, no overlays (fastest)"
    )
    out.add_argument(
        "--overlay-size",
        type=_overlay_size,
        default=OVERLAY_SIZE,
        metavar="WxH|model|full",
        help="'model': fit overlays inside the model input (960x540 for a 720p or 1080p frame "
        "and PeopleNet; the labels are those of a full-size run, byte for byte); 'full': the "
        "image's size, as the lab client writes them (its JPEG encode costs as much as a "
        "decode: cvlab bench client); WxH: fit inside WIDTHxHEIGHT, e.g. 640x360 (a large "
        "JPEG is then decoded once at 1/2-1/8 scale for the model and the overlay, so its "
        "labels may differ slightly)",
    )
    out.add_argument(
        "--overlay-quality",
        type=_quality,
        default=OVERLAY_QUALITY,
        metavar="1-100",
        help="JPEG quality of the overlays (PIL's default, as the lab client)",
    )
    out.add_argument(
        "--resume",
        action="store_true",
        help="skip the images OUT/infer_done.txt lists as done (an interrupted run) and append",
    )
    out.add_argument(
        "--writers",
        type=positive_int,
        default=2,
        help="threads drawing and writing overlays and labels",
    )
    add(
        "--shared-memory",
        default="auto",
        choices=["auto", "system", "none"],
        help="tensors through system shared memory (auto: when the server is on this machine)",
    )
    tls = p.add_argument_group(
        "TLS", "Off unless --ssl is given (-i https alone is plain HTTP, as in the lab client)."
    )
    tls.add_argument(
        *_spellings("--ssl"),
        dest="ssl",
        action="store_true",
        help="use TLS: HTTPS, or secure gRPC with -i grpc",
    )
    for option, (dest, _key, text) in TLS_OPTIONS.items():
        tls.add_argument(
            *_spellings(option, _TLS_ALIASES[option]), dest=dest, metavar="FILE", help=text
        )
    tls.add_argument(
        *_spellings("--ssl-insecure"),
        dest="ssl_insecure",
        action="store_true",
        help="HTTP only: do not match the server's host name against its certificate",
    )
    other = p.add_argument_group(
        "options of the lab client's other modes",
        "Refused with an error: cvlab infer runs DetectNet_v2 only.",
    )
    for option, (dest, modes) in OTHER_MODE_OPTIONS.items():
        other.add_argument(
            *_spellings(option),
            dest=dest,
            metavar="VALUE",
            action="append" if dest == "img_dirs" else "store",
            help=f"lab client's {modes} mode",
        )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port number, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 1..65535, got {port}")
    return port


def serve_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab triton serve`` options."""
    p.description = (
        "Run a local tritonserver (the one bundled in nvidia-pytriton) until Ctrl-C or SIGTERM. "
        "It prints the `cvlab infer` commands for its ports and records them in a file "
        "(cvlab.triton.server.serve_file)."
    )
    p.add_argument(
        "--model-repository",
        required=True,
        help="model repository: a directory or gs://bucket/path",
    )
    p.add_argument("--host", default="127.0.0.1", help="address every endpoint binds")
    p.add_argument("--http-port", type=_port, help="HTTP port (default: a free one)")
    p.add_argument("--grpc-port", type=_port, help="gRPC port (default: a free one)")
    p.add_argument("--metrics-port", type=_port, help="metrics port (default: a free one)")
    p.add_argument("--log-verbose", type=int, default=0, help="tritonserver --log-verbose level")
    p.add_argument(
        "--log-file",
        help="keep the server log in this file (default: a temporary file, removed at stop; "
        "its relevant lines are printed when the start fails)",
    )
    p.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the server and its models",
    )
    p.add_argument(
        "--env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment variable for the server (repeatable)",
    )


def check_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab triton check REPOSITORY`` (or one ``.onnx`` file: its padding only)."""
    p.add_argument(
        "repository",
        help="a model repository, or a DetectNet_v2 .onnx file. Every ONNX model's padding is "
        "reported: symmetric (what TAO trained) or TF-SAME (TAO's keras2onnx export: a "
        "shifted function of the trained network)",
    )


def _lab_options(args: argparse.Namespace) -> tuple[str, str, bool | dict[str, object]]:
    """``(mode, protocol, ssl)`` from the lab-client options; ValueError names a bad option."""
    from pathlib import Path

    for option, (dest, modes) in OTHER_MODE_OPTIONS.items():
        if getattr(args, dest, None) is not None:
            raise ValueError(
                f"{option} belongs to the lab client's {modes} mode; cvlab infer runs "
                "DetectNet_v2 only"
            )
    modes = {m.lower(): m for m in LAB_MODES}
    mode = modes.get(args.mode.lower())
    if mode != "DetectNet_v2":
        where = "another mode of the lab client" if mode else "not a mode of the lab client"
        raise ValueError(
            f"--mode {args.mode!r} is not supported: {where}; cvlab infer runs DetectNet_v2 only"
        )
    protocol = args.protocol.lower()
    if protocol not in ("http", "https", "grpc"):
        raise ValueError(f"-i/--protocol {args.protocol!r}: expected HTTP or gRPC (any case)")
    protocol = "grpc" if protocol == "grpc" else "http"  # -i https: plain HTTP, as in the lab
    if args.streaming and protocol != "grpc":
        raise ValueError("--streaming is only available with gRPC (-i grpc), as in the lab client")
    given = {key: getattr(args, dest) for _, (dest, key, _) in TLS_OPTIONS.items()}
    given = {k: v for k, v in given.items() if v}
    if args.ssl_insecure:
        given["insecure"] = True
    if not args.ssl:
        if given:
            raise ValueError(
                "--ssl-ca-file/--ssl-cert-file/--ssl-key-file/--ssl-insecure need --ssl "
                "(TLS is off: -i https means plain HTTP, as in the lab client)"
            )
        return mode, protocol, False
    if given.get("insecure") and protocol == "grpc":
        raise ValueError("--ssl-insecure is HTTP-only (gRPC always checks the host name)")
    if bool(given.get("cert_file")) != bool(given.get("key_file")):
        raise ValueError("--ssl-cert-file and --ssl-key-file go together (mutual TLS)")
    for option, (_, key, _) in TLS_OPTIONS.items():
        if key in given and not Path(given[key]).is_file():
            raise FileNotFoundError(f"{option} {given[key]}: no such file")
    return mode, protocol, given or True


def _clustering_config(args: argparse.Namespace, classes):
    """``--postprocessing_config`` as the pipeline takes it, with ``--clustering`` applied
    (the prototxt's, or the defaults for the classes, when not ``dbscan``)."""
    if args.clustering == "dbscan":
        return args.postprocessing_config
    from cvlab.detectnet import PEOPLENET_CLASSES
    from cvlab.inference.clustering_config import default_config, load_clustering_config

    if args.postprocessing_config:
        return load_clustering_config(args.postprocessing_config, algorithm=args.clustering)
    return default_config(classes or PEOPLENET_CLASSES, algorithm=args.clustering)


def infer(args: argparse.Namespace) -> int:
    """``cvlab infer``: the exit status is :attr:`~cvlab.triton.pipeline.InferSummary.exit_status`
    (see the epilog of ``cvlab infer --help``)."""
    from cvlab.triton.pipeline import parse_class_list

    mode, protocol, ssl = _lab_options(args)
    if args.url is None:
        from cvlab.triton.server import last_served_url

        args.url = last_served_url(protocol) or DEFAULT_URL
    classes = parse_class_list(args.class_list) if args.class_list is not None else None
    if args.verbose:
        tls = "off" if not ssl else "on" if ssl is True else f"on ({', '.join(map(str, ssl))})"
        print(
            f"cvlab infer: {protocol} {args.url}, TLS {tls}, model {args.model_name!r} "
            f"version {args.model_version or 'latest'}, batch {args.batch_size}, "
            f"{'async' if args.async_mode or args.streaming else 'sync'}",
            file=sys.stderr,
        )

    from cvlab.triton.client import sigterm_as_interrupt
    from cvlab.triton.workers import run_inference_workers

    try:
        with sigterm_as_interrupt():  # SIGTERM and SIGHUP stop the run as Ctrl-C does
            summary = run_inference_workers(
                args.images,
                args.model_name,
                args.url,
                workers=args.workers,
                version=args.model_version,
                batch_size=args.batch_size,
                mode=mode,
                protocol=protocol,
                async_mode=args.async_mode or args.streaming,
                output_path=args.output_path,
                postprocessing_config=_clustering_config(args, classes),
                class_list=classes,
                ssl=ssl,
                concurrency=args.concurrency,
                timeout_s=args.timeout,
                progress=not args.no_progress,
                shared_memory=args.shared_memory,
                unreadable=args.on_error,
                write_images=not args.no_images,
                overlay_size=args.overlay_size,
                overlay_quality=args.overlay_quality,
                writers=args.writers,
                resume=args.resume,
            )
    except KeyboardInterrupt:
        from cvlab.triton.outputs import FAILED_LIST, count_done

        done = Path(args.output_path) / DONE_LIST
        failed = Path(args.output_path) / FAILED_LIST
        if done.is_file():
            print(
                f"cvlab infer: {count_done(args.output_path)} frame(s) done, listed in {done}; "
                "rerun with --resume to finish the others",
                file=sys.stderr,
            )
        if failed.is_file():
            with open(failed, encoding="utf-8") as handle:
                left = sum(1 for _ in handle)
            print(f"cvlab infer: {left} frame(s) not done, listed in {failed}", file=sys.stderr)
        raise
    _print_summary(summary)
    return summary.exit_status


def _print_summary(summary) -> None:
    """What ``cvlab infer`` did: counts, speed and folders on stdout; skipped images and failed
    requests on stderr, every one named."""
    boxes = sum(len(d) for d in summary.detections)
    where = f"labels in {summary.labels_dir}" if summary.labels_dir else "no outputs written"
    if summary.labels_dir:
        where += f", overlays in {summary.images_dir}" if summary.images_dir else ", no overlays"
    print(
        f"{len(summary.detections)} image(s), {boxes} box(es) in {summary.seconds:.1f} s "
        f"({summary.images_per_s:.1f} img/s); {where}"
    )
    if summary.done_list is not None:
        resumed = f" (+{summary.resumed} done earlier)" if summary.resumed else ""
        print(f"{summary.written} frame(s) done{resumed}, listed in {summary.done_list}")
    if summary.renamed:
        shown = ", ".join(
            f"{Path(p).name} -> {n}.txt" for p, n in list(summary.renamed.items())[:5]
        )
        more = f" and {len(summary.renamed) - 5} more" if len(summary.renamed) > 5 else ""
        print(
            f"{len(summary.renamed)} image(s) share a file stem with another: their outputs keep "
            f"the suffix ({shown}{more})"
        )
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} unreadable image(s):", file=sys.stderr)
        for path, reason in summary.skipped:
            print(f"  {path}: {reason}", file=sys.stderr)
    for err in summary.errors:
        print(f"error: {err}", file=sys.stderr)
    if summary.failed_list is not None:
        print(
            f"{len(summary.without_outputs)} frame(s) without outputs, listed in "
            f"{summary.failed_list}"
            + ("; rerun with --resume to retry them" if summary.errors else ""),
            file=sys.stderr,
        )


def _infer_commands(server, models: list[str]) -> list[str]:
    """The ``cvlab infer`` lines for ``server``'s HTTP and gRPC ports."""
    from cvlab.shell import shell_join

    host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    model = models[0] if models else "MODEL"
    http = ["cvlab", "infer", "IMAGE_DIR", "-m", model, "-u", f"{host}:{server.http_port}"]
    grpc = [*http[:5], "-i", "grpc", "-u", f"{host}:{server.grpc_port}"]
    return [f"  HTTP: {shell_join(http)}", f"  gRPC: {shell_join(grpc)}"]


def serve(args: argparse.Namespace) -> int:
    """Start tritonserver, print how to infer against it, run until Ctrl-C / SIGTERM."""
    import time

    from cvlab.errors import CvlabError
    from cvlab.triton.client import sigterm_as_interrupt
    from cvlab.triton.server import (
        TritonServer,
        TritonStartError,
        remove_serve_file,
        write_serve_file,
    )

    server = TritonServer(
        args.model_repository,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        env=dict(args.env),
        log_verbose=args.log_verbose,
        startup_timeout=args.startup_timeout,
        log_path=args.log_file,
    )
    if not args.model_repository.startswith("gs://"):
        from cvlab.triton.model_repository import validate_model_repository

        # Triton reports a python-backend model ready whatever its config.pbtxt says, and then
        # every request fails: refuse as `cvlab triton check` would.
        problems = validate_model_repository(args.model_repository, tensors_only=True)
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            raise CvlabError(f"{problems[0]}{more}; `cvlab triton check` lists every problem")
    with sigterm_as_interrupt():  # SIGTERM and SIGHUP: the same clean stop as Ctrl-C
        try:
            server.start()
        except TritonStartError as exc:
            if exc.log_lines:
                print("tritonserver log:", file=sys.stderr)
                print("\n".join(f"  {line}" for line in exc.log_lines), file=sys.stderr)
            raise CvlabError(exc.headline) from None
        except KeyboardInterrupt:
            print("cvlab triton serve: stopped during startup", file=sys.stderr)
            return 130
        try:
            models = [m["name"] for m in server.models() if m.get("state") == "READY"]
            record = write_serve_file(server, models)
            log = f"  log {server.log_path}" if args.log_file else ""
            print(
                f"Triton ready: http {server.http_url}  grpc {server.grpc_url}  "
                f"metrics {server.metrics_url}  models {', '.join(models)}{log}; Ctrl-C to stop",
                *_infer_commands(server, models),
                f"  (URLs recorded in {record})",
                sep="\n",
                flush=True,
            )
            while True:
                time.sleep(0.2)
                process = server.process
                if process is None or process.poll() is not None:
                    print("tritonserver exited; last log lines:", file=sys.stderr)
                    print("\n".join(server.log_text().splitlines()[-20:]), file=sys.stderr)
                    return 1
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
            remove_serve_file()
    print("Triton stopped")
    return 0


def check(args: argparse.Namespace) -> int:
    import contextlib

    from cvlab.errors import CvlabError
    from cvlab.export.padding import check_onnx_padding
    from cvlab.triton.model_repository import validate_model_repository

    target = Path(args.repository)
    if target.suffix.lower() == ".onnx":
        print(check_onnx_padding(target).summary())
        return 0
    problems = validate_model_repository(target)
    for problem in problems:
        print(problem)
    if target.is_dir():
        for onnx_path in sorted(target.glob("*/[0-9]*/model.onnx")):
            with contextlib.suppress(CvlabError):  # already a problem of the repository check
                print(check_onnx_padding(onnx_path).summary())
    if not problems:
        print(f"{args.repository}: OK")
    return 1 if problems else 0
