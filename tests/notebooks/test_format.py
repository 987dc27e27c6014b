"""The committed notebooks: paired with py:percent files and in sync, no outputs, lab structure."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from cvlab.lab.demo import NOTEBOOKS, parameters_cell_index

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(params=NOTEBOOKS)
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_all_six_notebooks_and_nothing_else() -> None:
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.py")) == sorted(NOTEBOOKS)


def test_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}.ipynb cell {i} has outputs"
            assert cell.execution_count is None, f"{name}.ipynb cell {i} has an execution count"


def test_paired_with_py_percent_and_in_sync(name: str) -> None:
    ipynb = jupytext.read(NOTEBOOK_DIR / f"{name}.ipynb")
    py = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    assert ipynb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert py.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    a = [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in ipynb.cells]
    b = [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in py.cells]
    assert len(a) == len(b), (
        f"{name}: {len(a)} cells in .ipynb, {len(b)} in .py (run jupytext --sync)"
    )
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x == y, f"{name}: cell {i} differs between .ipynb and .py (run jupytext --sync)"


def test_lab_structure(name: str) -> None:
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert "What it does" in first.source and "How long" in first.source
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert parameters_cell_index(nb) == code[0], "the first code cell must be tagged parameters"
    params = nb.cells[code[0]].source
    assert 'WORKSPACE = "runs/lab"' in params
    assert "import " not in params, "the parameters cell holds parameters only"
    assert "noqa" not in params, "linter settings belong in pyproject.toml, not here"
    assert re.search(r"\*\*How long\.\*\* About [^.]+ on a 2-core laptop", first.source)
    assert nb.cells[-2].cell_type == "markdown" and "produced" in nb.cells[-2].source
    assert "produced_table" in nb.cells[-1].source


def test_no_credentials_in_notebooks(name: str) -> None:
    text = (NOTEBOOK_DIR / f"{name}.ipynb").read_text().lower()
    for marker in ("private_key", "api_key =", "ngc_api_key", "google_application_credentials ="):
        assert marker not in text, f"{name}.ipynb mentions {marker!r}"
