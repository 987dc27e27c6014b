"""Regenerate the ``*_pb2.py`` modules from every ``.proto`` file under ``cvlab/protos``.

The generated modules are committed (they are needed at run time); ``grpcio-tools`` is only a
development dependency. Imports inside ``.proto`` files are written from the repository root,
e.g. ``import "cvlab/protos/detectnet_v2/postprocessing_config.proto";``, so the generated
modules import each other as ``cvlab.protos.detectnet_v2...``.

Usage::

    python -m cvlab.protos.build            # rewrite the committed *_pb2.py files in place
    python -m cvlab.protos.build --out DIR  # write them under DIR/cvlab/protos/... instead
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

PROTOS_DIR = Path(__file__).resolve().parent
#: The directory that holds the ``cvlab`` package (the repository root in an editable install).
ROOT = PROTOS_DIR.parent.parent


#: Prepended to every generated module so that ruff neither lints nor reformats generated code.
GENERATED_HEADER = "# ruff: noqa\n# fmt: off\n"


class ProtoBuildError(RuntimeError):
    """protoc failed; the message carries its diagnostics."""


def proto_files(root: Path = ROOT) -> list[Path]:
    """Every ``.proto`` file under ``cvlab/protos``, relative to ``root``, sorted."""
    return sorted(p.relative_to(root) for p in (root / "cvlab" / "protos").rglob("*.proto"))


def build(out_dir: Path | None = None, root: Path = ROOT) -> list[Path]:
    """Compile all protos with ``grpc_tools.protoc``; return the written ``_pb2.py`` paths.

    Output goes to a temporary directory first and is then moved into place, so a failure
    never leaves a half-generated tree behind.
    """
    import grpc_tools

    out_dir = Path(out_dir) if out_dir is not None else root
    sources = proto_files(root)
    if not sources:
        raise ProtoBuildError(f"no .proto files under {root / 'cvlab' / 'protos'}")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        # protoc runs in its own process: its bundled C++ protobuf can crash a process that has
        # already loaded other protobuf/gRPC extensions (TensorFlow, tritonclient).
        args = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={root}",
            f"--proto_path={well_known}",
            f"--python_out={tmp}",
            *[str(s) for s in sources],
        ]
        done = subprocess.run(args, capture_output=True, text=True, cwd=root)
        if done.returncode != 0:
            raise ProtoBuildError(
                f"protoc exited with {done.returncode} compiling {len(sources)} files:\n"
                f"{done.stderr.strip()}"
            )
        for generated in sorted(Path(tmp).rglob("*_pb2.py")):
            rel = generated.relative_to(tmp)
            target = out_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(f".{target.name}.tmp")
            staged.write_text(GENERATED_HEADER + generated.read_text())
            staged.replace(target)
            written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cvlab.protos.build", description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="output root (default: in place)")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
