"""docs/ARCHITECTURE.md is regenerated whenever the package tree or a module's first docstring
line changes, and every module has a docstring to list."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator() -> dict:
    return runpy.run_path(str(ROOT / "docs" / "architecture.py"))


def test_architecture_md_is_up_to_date() -> None:
    gen = _generator()
    assert (ROOT / "docs" / "ARCHITECTURE.md").read_text() == gen["render"](), (
        "run: .venv/bin/python docs/architecture.py"
    )


def test_every_module_has_a_docstring_line() -> None:
    gen = _generator()
    missing = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "cvlab").rglob("*.py")
        if "__pycache__" not in p.parts
        and not p.name.endswith("_pb2.py")
        and not gen["first_line"](p)
    ]
    assert missing == []
