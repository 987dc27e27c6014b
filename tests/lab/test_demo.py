"""``cvlab demo``: parameter injection, ordered headless execution, the report, clear failures.

These run small notebooks written by the test (real nbclient kernels), so the runner itself is
checked quickly; tests/notebooks/test_run.py executes the six lab notebooks.
"""

from __future__ import annotations

import json
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


def test_run_demo_in_order_with_report(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    record = (
        "import pandas as pd\nfrom cvlab import lab\nws = lab.Workspace(WORKSPACE)\n"
        "_ = lab.record_table(ws, '{n}_table', pd.DataFrame({{'ap': [0.5]}}), 'AP of {n}')\n"
        "print('ran {n} with', VALUE, 'in', ws.root)"
    )
    _notebook(nbs / "first.ipynb", record.format(n="first"))
    _notebook(
        nbs / "second.ipynb",
        record.format(n="second"),
        "import os\nprint('cwd', os.getcwd())",
        # a long job's bar and a widget, as the lab notebooks show them
        "from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='job'):\n    pass",
        "import ipywidgets as W\nW.IntSlider(value=7)",
        "print(lab.how_long('second'))",
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
    assert "AP of first" in html and "AP of second" in html
    assert "href='notebooks/second.html'" in html  # executed notebooks linked as HTML pages
    assert (out / "notebooks" / "second.html").read_text().count("ran second with 7") == 1
    nb = nbformat.read(out / "notebooks" / "second.ipynb", as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    bars = [o["data"]["text/html"] for o in outputs if "cvlab-progress" in str(o.get("data"))]
    assert len(bars) == 1 and 'data-progress="done"' in bars[0] and "job" in bars[0]
    slider = next(
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    )
    model_id = slider["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert state[model_id]["state"]["value"] == 7  # saved: the widget renders when opened
    assert not [o for o in outputs if o.get("name") == "stderr"]  # TensorFlow loaded quietly
    timings = json.loads((nbs / "timings.json").read_text())
    assert set(timings["seconds"]) == {"first", "second"} and "CPU cores" in timings["machine"]
    # the executed notebook shows this run's measured time, in the notebook and its HTML page
    seconds = timings["seconds"]["second"]
    line = f"How long: {seconds:.0f} s in the last `make demo`"
    assert line in _outputs(out / "notebooks" / "second.ipynb")
    assert line in (out / "notebooks" / "second.html").read_text()
    err = capfd.readouterr().err
    assert "without encryption" not in err  # kernels talk over IPC sockets, not TCP
    assert "oneDNN" not in err and "absl::InitializeLog" not in err


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
