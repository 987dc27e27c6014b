"""The command line starts light: building the whole parser (every verb's options) and
``import cvlab.lab`` load none of the heavy libraries; commands import them when they run."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "tensorflow", "keras", "tritonclient", "matplotlib", "sklearn", "onnx")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    modules = json.loads(done.stdout.splitlines()[-1])
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


def test_the_parser_loads_no_heavy_library():
    assert _loaded_after("from cvlab.cli import build_parser; build_parser()") == []


def test_the_lab_namespace_loads_its_helpers_on_first_use():
    assert _loaded_after("from cvlab import lab; lab.__all__") == []
    assert "pandas" in _loaded_after("from cvlab import lab; lab.prepare_summary")


def test_iou_outside_0_1_is_refused(capsys):
    """Issue 20 item 11: `train evaluate --iou 5` (or nan) is a usage error, not AP 0."""
    import pytest

    from cvlab.cli import main

    for value in ("5", "nan", "0"):
        with pytest.raises(SystemExit) as exit_:
            main(["train", "evaluate", "--predictions", "p", "--labels", "l", "--iou", value])
        assert exit_.value.code == 2
        assert "argument --iou: " in capsys.readouterr().err
