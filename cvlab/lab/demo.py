"""``cvlab lab demo``: run the six lab notebooks headless, in order, and write an HTML report.

Each notebook is executed with nbclient on the ``python3`` kernel of this Python (the venv's),
with a papermill-style "injected-parameters" cell added after its ``parameters`` cell (so the
whole run shares one workspace). The kernel talks to nbclient over local IPC sockets (no TCP
port, no plain-text network traffic), starts with TensorFlow's log levels set
(:data:`cvlab.quiet.LOG_ENVIRONMENT`), and the executed notebooks keep their widget state,
so they show the rendered tuner when opened. Executed notebooks go to ``OUTPUT/notebooks/``
(``.ipynb`` and an HTML copy made by nbconvert), the report to ``OUTPUT/report.html``, and the
measured time of each notebook to :data:`TIMINGS_FILE` (the notebooks print it: "How long").
A failing cell stops the run with a message naming the notebook and the cell; the partly
executed notebook is still written so the traceback can be read.

Example:
    $ python -m cvlab lab demo --output runs/demo
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvlab.errors import CvlabError
from cvlab.fileio import atomic_write_text
from cvlab.lab.workspace import REPO_ROOT, resolve_workspace_path
from cvlab.quiet import LOG_ENVIRONMENT

#: The lab's notebooks, in order.
NOTEBOOKS = (
    "00_setup",
    "01_rgb_inference",
    "02_flir_preprocess",
    "03_retrain",
    "04_ir_deploy",
    "05_ir_inference",
)
DEFAULT_NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL_NAME = "python3"
#: Seconds per notebook measured by the last ``cvlab lab demo`` (``make demo``), beside the
#: notebooks; each notebook prints its own figure (:func:`cvlab.lab.environment.how_long`).
TIMINGS_FILE = DEFAULT_NOTEBOOK_DIR / "timings.json"


class NotebookFailed(CvlabError, RuntimeError):
    """A notebook cell raised; names the notebook, the cell and the error."""

    def __init__(self, notebook: Path, cell_index: int | None, source: str, error: str):
        self.notebook = notebook
        self.cell_index = cell_index
        self.source = source
        self.error = error
        where = f"cell {cell_index}" if cell_index is not None else "an unknown cell"
        first = source.strip().splitlines()[0] if source.strip() else ""
        super().__init__(f"notebook {notebook.name} failed in {where} ({first[:80]!r}): {error}")


@dataclass
class NotebookRun:
    """One executed notebook (``html``: its nbconvert HTML copy, when written)."""

    name: str
    output: Path
    seconds: float
    html: Path | None = None


@dataclass
class DemoResult:
    """What ``run_demo`` produced."""

    output_dir: Path
    workspace: Path
    runs: list[NotebookRun] = field(default_factory=list)
    report: Path | None = None


def ensure_kernelspec(name: str = KERNEL_NAME) -> None:
    """Make sure a Jupyter kernel ``name`` exists; install this Python's ipykernel spec
    (``python -m ipykernel install --sys-prefix``) when it does not."""
    from jupyter_client.kernelspec import KernelSpecManager

    if name in KernelSpecManager().find_kernel_specs():
        return
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", name],
        check=True,
        capture_output=True,
    )


def kernel_environment() -> dict[str, str]:
    """Environment of the notebook kernels: this process's, with figures shown inline (an
    inherited ``MPLBACKEND=Agg`` would hide them) and TensorFlow's and gRPC's log levels set
    before anything loads them (:data:`cvlab.quiet.LOG_ENVIRONMENT`, unless already set)."""
    env = dict(os.environ)
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    for key, value in LOG_ENVIRONMENT.items():
        env.setdefault(key, value)
    return env


def _ipc_kernel_config(socket_dir: Path) -> Any:
    """nbclient configuration for a kernel on IPC sockets in ``socket_dir`` (no TCP ports)."""
    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(socket_dir / "kernel")
    return config


def parameters_cell_index(nb: Any) -> int | None:
    """Index of the cell tagged ``parameters`` (papermill convention), or None."""
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return i
    return None


def inject_parameters(nb: Any, parameters: Mapping[str, Any]) -> Any:
    """Insert an ``injected-parameters`` code cell right after the ``parameters`` cell.

    Values are written with ``repr`` (str, numbers, bools, None, tuples, lists, dicts).
    A notebook without a ``parameters`` cell gets the cell at the top.
    """
    import nbformat

    if not parameters:
        return nb
    lines = ["# Parameters injected by cvlab lab demo"]
    for key, value in parameters.items():
        if not key.isidentifier():
            raise ValueError(f"parameter name {key!r} is not a Python identifier")
        lines.append(f"{key} = {value!r}")
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = ["injected-parameters"]
    index = parameters_cell_index(nb)
    nb.cells.insert(0 if index is None else index + 1, cell)
    return nb


def _failed_cell(nb: Any) -> tuple[int | None, str]:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(
            o.get("output_type") == "error" for o in cell.get("outputs", [])
        ):
            return i, cell.source
    return None, ""


def _write_notebook(nb: Any, path: Path) -> None:
    from cvlab.fileio import atomic_write_notebook

    atomic_write_notebook(path, nb)


def execute_notebook(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: int = 1200,
    kernel_name: str = KERNEL_NAME,
) -> Path:
    """Execute one notebook headless and write the executed copy to ``output``.

    Raises :class:`NotebookFailed` (after writing the partly executed notebook) when a cell
    fails, times out or the kernel dies.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    source, output = Path(source), Path(output)
    nb = nbformat.read(str(source), as_version=4)
    inject_parameters(nb, parameters or {})
    sockets = Path(tempfile.mkdtemp(prefix="cvlab-kernel-"))
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(cwd or source.parent)}},
        store_widget_state=True,
        config=_ipc_kernel_config(sockets),
    )
    try:
        client.execute(env=kernel_environment())
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        _write_notebook(nb, output)
        index, cell_source = _failed_cell(nb)
        error = getattr(exc, "ename", None) or type(exc).__name__
        value = getattr(exc, "evalue", None) or str(exc).strip().splitlines()[-1:] or [""]
        if isinstance(value, list):
            value = value[0]
        raise NotebookFailed(source, index, cell_source, f"{error}: {value}") from exc
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    _write_notebook(nb, output)
    return output


#: MIME types an exported notebook page shows first: the static ones before the live widget
#: view, so the page is complete offline (the tuner as its snapshot, progress bars as HTML).
HTML_EXPORT_PRIORITY = [
    "text/html",
    "text/markdown",
    "image/svg+xml",
    "image/png",
    "image/jpeg",
    "application/vnd.jupyter.widget-view+json",
    "application/javascript",
    "text/latex",
    "text/plain",
]


#: Added to every exported page: code blocks in Markdown outputs (the real-setup steps) as
#: copyable code (monospace on a grey background, one line per command, scrolled sideways
#: rather than broken mid-word: JupyterLab's output style wraps them like log text), and text
#: columns of tables left-aligned.
PAGE_CSS = """
.jp-RenderedMarkdown.jp-OutputArea-output pre {
  font-family: var(--jp-code-font-family, monospace), monospace; font-size: 13px;
  line-height: 1.5; background: #f3f4f6; border: 1px solid #d0d7de; border-radius: 4px;
  padding: .55em .8em; margin: .3em 0 1.1em; overflow-x: auto;
  white-space: pre; word-break: normal; overflow-wrap: normal;
}
.jp-RenderedMarkdown.jp-OutputArea-output .highlight { background: none; }
.jp-RenderedHTMLCommon td.text, .jp-RenderedHTMLCommon th.text { text-align: left; }
"""


def export_html(
    notebook: str | os.PathLike[str], output: str | os.PathLike[str] | None = None
) -> Path:
    """An executed notebook as one self-contained HTML page (nbconvert's ``lab`` template,
    images embedded, static outputs preferred: :data:`HTML_EXPORT_PRIORITY`, code blocks and
    tables styled by :data:`PAGE_CSS`), written beside it (``NAME.html``) unless ``output`` is
    given."""
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    notebook = Path(notebook)
    output = Path(output) if output else notebook.with_suffix(".html")
    config = Config({"NbConvertBase": {"display_data_priority": HTML_EXPORT_PRIORITY}})
    exporter = HTMLExporter(template_name="lab", config=config)
    body, _ = exporter.from_notebook_node(nbformat.read(str(notebook), as_version=4))
    body = body.replace("</head>", f"<style>{PAGE_CSS}</style>\n</head>", 1)
    return atomic_write_text(output, body)


def stamp_how_long(notebook: Path, name: str, timings: Path) -> bool:
    """Replace the "How long: ..." line an executed notebook printed (from the previous
    measurement, or none) with this run's (:func:`cvlab.lab.environment.how_long`); returns
    whether a line was found."""
    import re

    import nbformat

    from cvlab.lab.environment import how_long

    nb = nbformat.read(str(notebook), as_version=4)
    line = how_long(name, timings)
    found = False
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and "How long:" in out.get("text", ""):
                out["text"] = re.sub(r"^How long: .*$", line, out["text"], flags=re.M)
                found = True
    if found:
        _write_notebook(nb, notebook)
    return found


def write_timings(path: str | os.PathLike[str], runs: Sequence[NotebookRun]) -> Path:
    """Merge the measured seconds of ``runs`` into the JSON file ``path`` (other notebooks'
    figures are kept) with the date and a short machine description."""
    path = Path(path)
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        data = {}
    seconds = dict(data.get("seconds", {}))
    seconds.update({r.name: round(r.seconds, 1) for r in runs})
    data = {
        "measured": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPU cores, {platform.system()} {platform.machine()}",
        "seconds": seconds,
    }
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def run_demo(
    output_dir: str | os.PathLike[str],
    *,
    workspace: str | os.PathLike[str] | None = None,
    notebooks_dir: str | os.PathLike[str] | None = None,
    names: Sequence[str] = NOTEBOOKS,
    parameters: Mapping[str, Any] | None = None,
    timeout: int = 1200,
    fresh: bool = False,
) -> DemoResult:
    """Run ``names`` from ``notebooks_dir`` in order on one workspace and build the report.

    The workspace defaults to ``OUTPUT/workspace``; ``WORKSPACE`` is injected into every
    notebook together with ``parameters``. Raises :class:`NotebookFailed` on the first
    failing notebook (the report is still written for what ran).
    """
    from tqdm import tqdm

    from cvlab.lab.report import build_report

    output_dir = resolve_workspace_path(output_dir)
    notebooks_dir = Path(notebooks_dir or DEFAULT_NOTEBOOK_DIR)
    ws = resolve_workspace_path(workspace) if workspace else output_dir / "workspace"
    if fresh and ws.exists():
        shutil.rmtree(ws)
    ws.mkdir(parents=True, exist_ok=True)
    missing = [n for n in names if not (notebooks_dir / f"{n}.ipynb").exists()]
    if missing:
        raise FileNotFoundError(f"notebooks not found in {notebooks_dir}: {', '.join(missing)}")
    ensure_kernelspec()
    params = {"WORKSPACE": str(ws), **dict(parameters or {})}
    result = DemoResult(output_dir=output_dir, workspace=ws)
    bar = tqdm(list(names), desc="lab notebooks", unit="nb")
    try:
        for name in bar:
            bar.set_description(f"lab notebooks: {name}")
            start = time.perf_counter()
            try:
                out = execute_notebook(
                    notebooks_dir / f"{name}.ipynb",
                    output_dir / "notebooks" / f"{name}.ipynb",
                    params,
                    cwd=notebooks_dir,
                    timeout=timeout,
                )
            except NotebookFailed:
                failed = output_dir / "notebooks" / f"{name}.ipynb"
                if failed.exists():
                    export_html(failed)
                raise
            result.runs.append(NotebookRun(name, out, time.perf_counter() - start))
        bar.set_description("lab notebooks")
    finally:
        bar.close()
        if result.runs:
            timings = write_timings(notebooks_dir / TIMINGS_FILE.name, result.runs)
            for run in result.runs:
                stamp_how_long(run.output, run.name, timings)
                run.html = export_html(run.output)
        result.report = build_report(
            ws,
            output_dir / "report.html",
            [r.html or r.output for r in result.runs],
            seconds={r.name: r.seconds for r in result.runs},
        )
    return result


def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--param expects KEY=VALUE, got {text!r}")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value  # a bare string
    return key.strip(), parsed


def demo(args: argparse.Namespace) -> int:
    names = args.only.split(",") if args.only else list(NOTEBOOKS)
    try:
        result = run_demo(
            args.output,
            workspace=args.workspace,
            notebooks_dir=args.notebooks,
            names=names,
            parameters=dict(args.param or []),
            timeout=args.timeout,
            fresh=args.fresh,
        )
    except NotebookFailed as exc:
        out = resolve_workspace_path(args.output)
        print(f"cvlab lab demo: {exc}", file=sys.stderr)
        print(
            f"the partly executed notebook is {out / 'notebooks' / exc.notebook.name}; "
            f"report so far: {out / 'report.html'}",
            file=sys.stderr,
        )
        return 1
    print("cvlab lab demo finished:")
    for run in result.runs:
        print(f"  {run.name:<20} {run.seconds:7.1f} s  {run.html or run.output}")
    print(f"report:    {result.report}")
    print(f"workspace: {result.workspace}")
    return 0


def demo_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab lab demo`` options."""
    p.add_argument("--output", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--workspace", help="lab workspace (default OUTPUT/workspace)")
    p.add_argument("--notebooks", help="folder with the .ipynb files (default: the repo's)")
    p.add_argument("--only", help="comma-separated notebook names to run (default: all six)")
    p.add_argument(
        "--param",
        action="append",
        type=_parse_param,
        metavar="KEY=VALUE",
        help="notebook parameter override (Python literal), repeatable",
    )
    p.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    p.add_argument("--fresh", action="store_true", help="delete the workspace first")
