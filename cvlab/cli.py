"""The ``cvlab`` command line: ``cvlab <area> <verb> [options]``, from ONE verb table.

Every command is a row of :data:`VERBS`: its area, its verb and ``module:name``. The module
defines ``name_arguments(parser)`` (adds the options) and ``name(args) -> int`` (runs it);
modules import their heavy dependencies (TensorFlow, tritonclient) inside ``name`` only, so
``cvlab --help`` stays fast. ``cvlab infer`` is the one command without an area: it takes the
exact flags of the lab's ``tao_client.py``.

One error policy (:func:`main`): a user error (any :class:`cvlab.errors.CvlabError`, a missing
or unreadable file, a bad value) prints ONE line ``cvlab AREA VERB: error: ...`` on stderr and
exits 2, without a traceback; Ctrl-C exits 130; anything else is a bug and shows its traceback.

Example:
    >>> parse_size("960x544")
    (960, 544)
    >>> [v.command for v in VERBS if v.area == "triton"]
    ['triton serve', 'triton check']
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cvlab.errors import CvlabError

# Exit statuses of every command (one home; ``cvlab infer`` and ``cvlab flir prepare`` say them
# in their ``--help``).
EXIT_OK = 0  #: done
EXIT_FAILED_REQUESTS = 1  #: some requests failed (``cvlab infer``), each one listed
EXIT_USER_ERROR = 2  #: a user error, printed as one line by :func:`main`
EXIT_SKIPPED_IMAGES = 3  #: done, but some input images were skipped, each one listed
EXIT_INTERRUPTED = 130  #: Ctrl-C


@dataclass(frozen=True)
class Verb:
    """One command: ``cvlab AREA VERB`` runs ``module.name(args)``."""

    area: str
    verb: str
    target: str  # "module:name"
    help: str
    #: the command always loads TensorFlow: it is imported first, without its start-up log lines
    #: (a command that loads it only for some options calls cvlab.quiet.quiet_tensorflow itself)
    tensorflow: bool = False

    @property
    def command(self) -> str:
        return f"{self.area} {self.verb}".strip()

    def load(self) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[..., int]]:
        module_name, name = self.target.split(":")
        module = importlib.import_module(module_name)
        return getattr(module, f"{name}_arguments"), getattr(module, name)


#: area -> one-line description (areas follow the data's way through the lab).
AREAS: dict[str, str] = {
    "video": "real RGB data: the vtest.avi camera video, teacher labels, the RGB stand-in",
    "flir": "thermal data: synthetic FLIR set, FLIR -> KITTI -> TFRecords, statistics",
    "train": "retrain DetectNet_v2, evaluate AP, the TAO commands and logs",
    "export": "ONNX, TensorRT engines, the demo model",
    "triton": "a local Triton server and model repositories",
    "cloud": "GCS model repositories, GKE scripts and manifests, deployment",
    "lab": "the lab notebooks, headless",
    "bench": "benchmarks (figures printed; speed targets live here, never in tests)",
}

# fmt: off
VERBS: tuple[Verb, ...] = (
    Verb("", "infer", "cvlab.triton.commands:infer", "images -> Triton -> labels + overlays"),
    Verb("video", "label", "cvlab.datasets.video_commands:label",
         "teacher labels of vtest.avi -> KITTI, TFRecords", True),
    Verb("video", "standin", "cvlab.datasets.video_commands:standin",
         "train the RGB stand-in on them", True),
    Verb("flir", "synth", "cvlab.datasets.commands:synth", "write a synthetic FLIR dataset"),
    Verb("flir", "prepare", "cvlab.datasets.commands:prepare",
         "FLIR -> KITTI, images, TFRecords", True),
    Verb("flir", "stats", "cvlab.datasets.commands:stats", "class counts and box sizes"),
    Verb("train", "run", "cvlab.train.commands:run", "train DetectNet_v2 on TAO TFRecords", True),
    Verb("train", "evaluate", "cvlab.train.commands:evaluate", "TAO AP of KITTI predictions"),
    Verb("train", "tao-commands", "cvlab.train.commands:tao_commands", "the lab's TAO commands"),
    Verb("train", "tao-log", "cvlab.train.commands:tao_log", "a TAO train log as a table"),
    Verb("export", "onnx", "cvlab.export.commands:onnx", "Keras DetectNet_v2 -> ONNX", True),
    Verb("export", "tensorrt", "cvlab.export.commands:tensorrt", "ONNX -> TensorRT engine"),
    Verb("export", "rgb-standin", "cvlab.export.commands:rgb_standin",
         "a repository with the shipped RGB stand-in"),
    Verb("export", "demo-model", "cvlab.export.commands:demo_model",
         "a repository + demo model", True),
    Verb("triton", "serve", "cvlab.triton.commands:serve", "run a local Triton until Ctrl-C"),
    Verb("triton", "check", "cvlab.triton.commands:check", "validate a model repository"),
    Verb("cloud", "upload", "cvlab.cloud.commands:upload", "upload a folder to gs://"),
    Verb("cloud", "download", "cvlab.cloud.commands:download", "download a gs:// prefix"),
    Verb("cloud", "ls", "cvlab.cloud.commands:ls", "list objects below a gs:// prefix"),
    Verb("cloud", "verify", "cvlab.cloud.commands:verify", "compare a folder with gs://"),
    Verb("cloud", "gke-script", "cvlab.cloud.commands:gke_script", "the GKE setup script"),
    Verb("cloud", "manifests", "cvlab.cloud.commands:manifests", "Triton Kubernetes manifests"),
    Verb("cloud", "deploy", "cvlab.cloud.commands:deploy", "validate, upload, apply, smoke"),
    Verb("lab", "demo", "cvlab.lab.demo:demo", "run the six notebooks, write the report"),
    Verb("bench", "core", "cvlab.bench.core:bench", "decode + clustering, preprocessing"),
    Verb("bench", "triton", "cvlab.bench.triton:bench", "client vs perf_analyzer", True),
    Verb("bench", "client", "cvlab.bench.client:bench", "client CPU per frame vs JPEG decode"),
    Verb("bench", "datasets", "cvlab.bench.datasets:bench", "synthetic FLIR -> TFRecords", True),
    Verb("bench", "train", "cvlab.bench.train:bench", "retraining quality (AP)", True),
    Verb("bench", "gpu", "cvlab.bench.gpu:bench", "TensorRT FP32/FP16/INT8 vs ONNX Runtime", True),
    Verb("bench", "standin", "cvlab.bench.standin:bench", "RGB stand-in per-class AP", True),
    Verb("bench", "all", "cvlab.cli:bench_all", "every benchmark with its defaults", True),
)
# fmt: on


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` -> ``(width, height)``: the one size parser of the command line."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT such as 960x544, got {text!r}"
        ) from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return w, h


def positive_int(text: str) -> int:
    """An integer >= 1 (batch sizes, counts): 0 or less is refused, never reinterpreted."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (timeouts, seconds): nan, inf and 0 are refused.

    >>> positive_float("2.5")
    2.5
    >>> positive_float("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a finite number, got 'nan'
    """
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value:g}")
    return value


def unit_interval(text: str) -> float:
    """A fraction in (0, 1] (an IoU threshold): nan and values outside are refused.

    >>> unit_interval("0.5")
    0.5
    >>> unit_interval("5")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be in (0, 1], got 5
    """
    value = _float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value:g}")
    return value


def bench_all_arguments(parser: argparse.ArgumentParser) -> None:
    """``cvlab bench all`` takes no options: each benchmark runs with its defaults."""


def bench_all(args: argparse.Namespace) -> int:
    """Run every benchmark of :data:`VERBS` with its default options (not ``bench gpu``, which
    needs TensorRT and a GPU: ``make gpu-check``)."""
    code = 0
    for verb in VERBS:
        if verb.area != "bench" or verb.verb in ("all", "gpu"):
            continue
        print(f"== cvlab {verb.command}", flush=True)
        add_arguments, run = verb.load()
        parser = argparse.ArgumentParser(prog=f"cvlab {verb.command}")
        add_arguments(parser)
        code = max(code, int(run(parser.parse_args([])) or 0))
    return code


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help shows every option's default and keeps descriptions' line breaks."""


def build_parser() -> argparse.ArgumentParser:
    """The whole ``cvlab`` parser, built from :data:`VERBS`."""
    parser = argparse.ArgumentParser(
        prog="cvlab",
        description="PeopleNet / DetectNet_v2 computer-vision service: the lab's steps as commands.",
        formatter_class=_Formatter,
    )
    top = parser.add_subparsers(dest="area", metavar="AREA")
    areas: dict[str, argparse._SubParsersAction] = {}
    for verb in VERBS:
        add_arguments, run = verb.load()
        if verb.area:
            if verb.area not in areas:
                area = top.add_parser(verb.area, help=AREAS[verb.area], formatter_class=_Formatter)
                areas[verb.area] = area.add_subparsers(dest="verb", metavar="VERB", required=True)
            p = areas[verb.area].add_parser(verb.verb, help=verb.help, formatter_class=_Formatter)
        else:
            p = top.add_parser(verb.verb, help=verb.help, formatter_class=_Formatter)
        add_arguments(p)
        p.set_defaults(func=run, command=verb.command, tensorflow=verb.tensorflow)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cvlab``; returns the exit status (see the module's error policy)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        if args.tensorflow:
            from cvlab.quiet import quiet_tensorflow

            quiet_tensorflow()
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"cvlab {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CvlabError, OSError, ValueError) as exc:
        print(f"cvlab {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR


def one_line(exc: BaseException) -> str:
    """An exception as one line: its message with newlines folded (or its type when empty).

    >>> one_line(ValueError("bad\\nvalue"))
    'bad / value'
    """
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = " / ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
