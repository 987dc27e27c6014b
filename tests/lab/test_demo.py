"""``cvlab demo``: parameter injection, ordered headless execution, the report, clear failures.

These run small notebooks written by the test (real nbclient kernels), so the runner itself is
checked quickly; tests/test_notebooks_run.py executes the six lab notebooks.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from cvlab.cli import build_parser, main
from cvlab.lab import demo


def _notebook(path: Path, *cells: str, params: str = 'WORKSPACE = "runs/lab"\nVALUE = 1') -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# test notebook"))
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells.append(p)
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def _outputs(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def test_inject_parameters_after_the_parameters_cell(tmp_path: Path) -> None:
    nb = nbformat.read(_notebook(tmp_path / "a.ipynb", "print(VALUE)"), as_version=4)
    demo.inject_parameters(nb, {"VALUE": (2, "x"), "FLAG": None})
    cell = nb.cells[2]
    assert cell.metadata["tags"] == ["injected-parameters"]
    assert "VALUE = (2, 'x')" in cell.source and "FLAG = None" in cell.source
    assert nb.cells[3].source == "print(VALUE)"
    with pytest.raises(ValueError, match="not a Python identifier"):
        demo.inject_parameters(nb, {"not valid": 1})


def test_param_parsing() -> None:
    assert demo._parse_param("EPOCHS=3") == ("EPOCHS", 3)
    assert demo._parse_param("SIZE=(320, 192)") == ("SIZE", (320, 192))
    assert demo._parse_param("URL=34.1.2.3:80") == ("URL", "34.1.2.3:80")
    args = build_parser().parse_args(["lab", "demo", "--output", "x", "--param", "A=1"])
    assert args.func is demo.demo and args.param == [("A", 1)] and args.output == "x"


def test_run_demo_in_order_with_report(tmp_path: Path) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    record = (
        "import pandas as pd\nfrom cvlab import lab\nws = lab.Workspace(WORKSPACE)\n"
        "_ = lab.record_table(ws, '{n}_table', pd.DataFrame({{'ap': [0.5]}}), 'AP of {n}')\n"
        "print('ran {n} with', VALUE, 'in', ws.root)"
    )
    _notebook(nbs / "first.ipynb", record.format(n="first"))
    _notebook(
        nbs / "second.ipynb", record.format(n="second"), "import os\nprint('cwd', os.getcwd())"
    )
    out = tmp_path / "out"
    result = demo.run_demo(
        out, notebooks_dir=nbs, names=["first", "second"], parameters={"VALUE": 7}
    )
    assert [r.name for r in result.runs] == ["first", "second"]
    text = _outputs(out / "notebooks" / "second.ipynb")
    assert f"ran second with 7 in {out / 'workspace'}" in text
    assert f"cwd {nbs}" in text
    html = (out / "report.html").read_text()
    assert "AP of first" in html and "AP of second" in html and "second.ipynb" in html


def test_failing_cell_stops_the_demo_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "ok.ipynb", "print('fine')")
    _notebook(nbs / "bad.ipynb", "x = 1", "raise ValueError('model file missing')")
    _notebook(nbs / "never.ipynb", "print('should not run')")
    out = tmp_path / "out"
    code = main(
        ["lab", "demo", "--output", str(out), "--notebooks", str(nbs), "--only", "ok,bad,never"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "bad.ipynb failed in cell 4" in err and "ValueError: model file missing" in err
    assert (out / "notebooks" / "bad.ipynb").exists()  # partly executed, traceback inside
    assert not (out / "notebooks" / "never.ipynb").exists()
    assert (out / "report.html").exists()


def test_missing_notebook_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["lab", "demo", "--output", str(tmp_path), "--notebooks", str(tmp_path), "--only", "nope"]
    )
    assert code == 2
    assert "nope" in capsys.readouterr().err
