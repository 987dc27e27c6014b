"""The ``cvlab`` command line: one entry point, sub-commands contributed by the sub-packages.

Each module in :data:`COMMAND_MODULES` defines ``register(subparsers)`` which adds its
sub-commands and sets ``func`` (a callable taking the parsed args, returning an exit code).
Registration must stay cheap: heavy imports (TensorFlow, tritonclient) happen inside ``func``.
Benchmarks are listed in :data:`BENCHMARKS` and run with ``cvlab bench NAME``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "cvlab.triton.commands",
    "cvlab.datasets.commands",
    "cvlab.train.commands",
    "cvlab.cloud.commands",
    "cvlab.lab.demo",
)

#: bench name -> "module:function"; the function takes argv (list[str]) and returns an exit code.
BENCHMARKS = {
    "core": "cvlab.bench.core:main",
    "triton": "cvlab.bench.triton:main",
    "flir": "cvlab.bench.datasets:main",
    "train": "cvlab.bench.train:main",
}


def _run_bench(args: argparse.Namespace) -> int:
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    code = 0
    for name in names:
        module_name, func_name = BENCHMARKS[name].split(":")
        print(f"== cvlab bench {name}", flush=True)
        func = getattr(importlib.import_module(module_name), func_name)
        code = max(code, int(func(list(args.bench_args)) or 0))
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvlab",
        description="PeopleNet / DetectNet_v2 computer-vision service: the lab's steps as commands.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = sub.add_parser("bench", help="run a benchmark and print figures")
    bench.add_argument("name", choices=[*BENCHMARKS, "all"])
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="options for that benchmark")
    bench.set_defaults(func=_run_bench)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a sub-package not installed in this build
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
