"""What a workshop participant sees, in a real browser: JupyterLab runs notebook 01 in headless
Chromium (Debian's ``chromium``, driven by Playwright for Python), its overlay images render,
and moving the tuner's threshold slider changes the number of boxes shown; then the HTML
report opens with its headline and its images loaded.

Real parts throughout: a JupyterLab server on 127.0.0.1 (a token), the notebook's kernel, the
bundled tritonserver serving cvlab's demo model (deterministic, no training: the page is under
test here, not the stand-in's accuracy, which the notebook tests check). ``make test`` installs
Chromium (``apt-get install --no-install-recommends chromium``); without it the test is skipped
and says why.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import numpy as np
import pytest

from cvlab.lab.demo import ensure_kernelspec, inject_parameters, kernel_environment
from cvlab.lab.report import build_report

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_rgb_inference.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (dev)")
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} missing: make test installs Debian's chromium", allow_module_level=True
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Notebook 01 with its parameters set to a fresh workspace and a model repository
    serving cvlab's demo model (a DetectNet_v2-shaped network whose coverage fires on bright
    cells): what is tested is the page, so the model is deterministic and needs no training."""
    from cvlab.export.demo_model import write_demo_repository

    root = tmp_path_factory.mktemp("browser")
    model = write_demo_repository(root / "model_repository", "peoplenet_demo", 3, (256, 160))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    parameters = {
        "WORKSPACE": str(root / "workspace"),
        "MODEL_REPOSITORY": str(model.parent),
        "MODEL_NAME": model.name,
        "NUM_IMAGES": 3,
    }
    inject_parameters(nb, parameters)
    nbformat.write(nb, root / NOTEBOOK.name)
    return root


@pytest.fixture(scope="module")
def jupyterlab(lab_root: Path) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 with a token, every notebook cell attached to the page."""
    ensure_kernelspec()
    settings = lab_root / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    port, token = _free_port(), secrets.token_hex(16)
    log_path = lab_root / "jupyterlab.log"
    log = log_path.open("wb")
    env = kernel_environment()
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(lab_root / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(lab_root / "lab-workspaces"),
        JUPYTER_RUNTIME_DIR=str(lab_root / "runtime"),
        JUPYTER_CONFIG_DIR=str(lab_root / "config"),
    )
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={lab_root}",
            "--ServerApp.port_retries=0", "--ServerApp.allow_root=True",
        ],
        cwd=lab_root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    pytest.fail(f"JupyterLab did not start on 127.0.0.1:\n{tail}", pytrace=False)
                time.sleep(0.5)
        yield f"{base}/lab/tree/{{}}?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _wait_for_kernel(page: object, timeout: float = 90) -> None:
    """Until the status bar says the notebook's kernel is idle (accepting JupyterLab's kernel
    dialog should it ask)."""
    status = page.locator(".jp-StatusBar-TextItem", has_text="| Idle")
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dialog.count():
            dialog.locator("button.jp-mod-accept").click()
        if status.count() and "Python 3" in status.first.inner_text():
            return
        time.sleep(0.5)
    pytest.fail("the notebook's kernel did not start in JupyterLab", pytrace=False)


def _box_count(page: object, what: str = r"(\d+) box") -> int:
    """A count from the tuner's caption ("NAME: 3 boxes (person 2, bag 0, face 1)")."""
    caption = page.locator(".cvlab-tuner-caption").inner_text()
    found = re.search(what, caption)
    assert found, caption
    return int(found.group(1))


def _drag_and_wait(page: object, slider: str, fraction: float) -> int:
    """Drag ``slider`` to ``fraction`` and return the person boxes the caption then shows
    (waiting up to 5 s for the kernel's redraw; an unchanged caption is an answer too)."""
    caption = page.locator(".cvlab-tuner-caption")
    before = caption.inner_text()
    _drag_handle(page, slider, fraction)
    with contextlib.suppress(playwright.TimeoutError):
        page.wait_for_function(
            "old => document.querySelector('.cvlab-tuner-caption').innerText !== old",
            arg=before,
            timeout=5_000,
        )
    return _box_count(page, r"person (\d+)")


def _drag_handle(page: object, slider: str, fraction: float) -> None:
    """Drag the handle of ``slider`` (a CSS selector) to ``fraction`` of its track."""
    page.locator(slider).scroll_into_view_if_needed()
    track = page.locator(f"{slider} .noUi-target").bounding_box()
    handle = page.locator(f"{slider} .noUi-handle").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    x = track["x"] + fraction * track["width"]
    page.mouse.move(x, track["y"] + track["height"] / 2, steps=8)
    page.mouse.up()


@pytest.fixture
def page(browser: object, lab_root: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """A browser page; when the test fails, a screenshot is left in the test's folder."""
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    failed_before = request.session.testsfailed
    yield page
    if request.session.testsfailed > failed_before:
        page.screenshot(path=str(lab_root / f"{request.node.name}.png"), full_page=True)
    page.close()


def test_notebook_01_runs_in_jupyterlab_and_the_tuner_responds(
    jupyterlab: str, page: object
) -> None:
    page.goto(jupyterlab.format(NOTEBOOK.name))
    _wait_for_kernel(page)
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()

    # the last cell's table appears when every cell has run
    page.wait_for_selector("text=outputs/01_rgb/infer_labels", timeout=150_000)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert not [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]

    # the overlay figures (synthetic frames, the real photo, the threshold's effect) rendered
    sizes = page.eval_on_selector_all(
        ".jp-RenderedImage img", "els => els.map(e => [e.complete, e.naturalWidth])"
    )
    assert len(sizes) >= 2 and all(done and width > 100 for done, width in sizes), sizes

    # the tuner: a live widget with its overlay image; moving the person threshold slider from
    # one end to the other changes the boxes shown (on the first image that has any person
    # cluster: the small stand-in may find none on some frames)
    page.wait_for_selector(".cvlab-tuner img.widget-image", timeout=30_000)
    image = page.locator(".cvlab-tuner img.widget-image")
    assert image.evaluate("e => e.complete && e.naturalWidth > 100")
    slider = ".cvlab-threshold-person"
    handle = page.locator(".cvlab-image-index .noUi-handle")
    last = round(float(handle.get_attribute("aria-valuemax")))
    seen = []
    for k in range(last + 1):
        _drag_and_wait(page, ".cvlab-image-index", k / max(1, last))
        low = _drag_and_wait(page, slider, 0.0)  # every cluster shown
        source = image.get_attribute("src")
        high = _drag_and_wait(page, slider, 1.0)  # above every score: none
        seen.append((page.locator(".cvlab-tuner-caption").inner_text(), low, high))
        if low != high:
            assert high == 0 and image.get_attribute("src") != source  # redrawn
            assert float(page.locator(f"{slider} .widget-readout").inner_text()) > 1
            break
    else:
        pytest.fail(f"the person threshold slider changed no image's boxes: {seen}")

    # the real-setup commands, live in JupyterLab: copyable code, one unbroken line each, and
    # (an output of this session, so trusted: its script runs) a copy button on each block
    blocks = page.eval_on_selector_all(".jp-OutputArea-output pre.commands", _CODE_STYLE)
    assert blocks
    commands = [b["text"].rstrip("\n").split("\n") for b in blocks]
    _assert_code_blocks(blocks, commands)
    _assert_copy_buttons(page, ".jp-OutputArea-output .commands-row", commands)


def test_report_opens_with_headline_and_images(page: object, lab_root: Path) -> None:
    """After the notebook run above: the report of its workspace, opened from disk."""
    report = build_report(lab_root / "workspace", lab_root / "report.html")
    page.goto(report.as_uri())
    headline = page.locator("#headline")
    assert headline.is_visible()
    assert "A partial run: records of notebook 01 only." in headline.inner_text()
    images = page.eval_on_selector_all(
        "figure img", "els => els.map(e => [e.complete, e.naturalWidth])"
    )
    assert len(images) >= 2 and all(done and width > 100 for done, width in images), images
    page.locator("figure img").first.click()  # click to enlarge
    assert page.locator("#zoom").is_visible()


def test_executed_notebook_shows_finished_bars_and_the_tuner(
    jupyterlab: str, page: object, lab_root: Path
) -> None:
    """Notebook 01 executed headless as ``make demo`` does, then opened in JupyterLab: its
    progress bars show finished and the tuner shows (live, or as its saved snapshot: an
    executed notebook opens untrusted)."""
    from cvlab.lab.demo import execute_notebook

    executed = lab_root / "executed_01.ipynb"
    execute_notebook(lab_root / NOTEBOOK.name, executed, cwd=NOTEBOOK.parent, timeout=300)
    page.goto(jupyterlab.format(executed.name))
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")  # this notebook's tab
    panel.locator(".cvlab-progress").first.wait_for(timeout=60_000)
    bars = panel.locator(".cvlab-progress").all_inner_texts()  # sanitised: text only
    percents = [int(p) for text in bars for p in re.findall(r"(\d+)%", text)]
    assert bars and percents and set(percents) == {100}, bars
    tuner = panel.locator(".cvlab-tuner img.widget-image, .cvlab-tuner-snapshot img").first
    tuner.wait_for(timeout=30_000)
    assert tuner.evaluate("e => e.complete && e.naturalWidth > 100")
    assert "VBox(" not in panel.inner_text()
    # untrusted, JupyterLab sanitizes the real-setup output: its copy script is dropped, so the
    # commands stay plain code with no button (dead or live), no script text and no prompt
    rows = panel.locator(".jp-OutputArea-output .commands-row")
    rows.first.wait_for(timeout=30_000)
    assert rows.count() == panel.locator("pre.commands").count()
    assert panel.locator(".commands-row button, .jp-OutputArea-output script").count() == 0
    assert not re.search(r"navigator\.clipboard|inline scripts", panel.inner_text())


# --- the exported pages and the report, at a laptop's 1400x900 (no JupyterLab needed) -------
#: What a copyable code block is, read from the browser's computed style.
_CODE_STYLE = """els => els.map(e => {
  const s = getComputedStyle(e);
  const code = e.querySelector('code') || e;
  const range = document.createRange();
  range.selectNodeContents(code);
  const tops = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0)
                           .map(r => Math.round(r.top)));
  return {font: getComputedStyle(code).fontFamily, background: s.backgroundColor,
          overflow: s.overflowX, space: getComputedStyle(code).whiteSpace,
          lines: tops.size, text: e.innerText};
})"""


def _assert_code_blocks(blocks: list[dict], commands: list[list[str]]) -> None:
    """Each block monospace, on a background, scrolled sideways, one line per command (none
    broken mid-word), in the order of the steps."""
    assert len(blocks) == len(commands), [b["text"] for b in blocks]
    for block, lines in zip(blocks, commands, strict=True):
        assert "mono" in block["font"].lower(), block["font"]
        assert block["background"] not in ("rgba(0, 0, 0, 0)", "transparent"), block
        assert block["overflow"] == "auto" and block["space"] == "pre", block
        assert block["text"].rstrip("\n").split("\n") == lines
        assert block["lines"] == len(lines), (block["lines"], lines)  # no wrapped line


def _assert_copy_buttons(page: object, rows: str, commands: list[list[str]]) -> None:
    """Each command block of ``rows`` (a CSS selector) has one copy button beside it (not over
    the code), and clicking it puts exactly that block's commands on the clipboard: headless
    Chromium's own clipboard, read back (the page's context is granted clipboard access)."""
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    found = page.locator(rows)
    assert found.count() == len(commands)
    for i, lines in enumerate(commands):
        row = found.nth(i)
        button = row.locator("button.copy-commands")
        assert button.count() == 1 and button.inner_text() == "Copy"
        button.scroll_into_view_if_needed()
        pre, box = row.locator("pre.commands").bounding_box(), button.bounding_box()
        assert box["x"] >= pre["x"] + pre["width"] and box["width"] > 20, (pre, box)
        page.evaluate("navigator.clipboard.writeText('(cleared)')")
        button.click()
        deadline = time.monotonic() + 10  # the copy is a promise: poll, the label is transient
        while (copied := page.evaluate("navigator.clipboard.readText()")) == "(cleared)":
            assert time.monotonic() < deadline, "the copy button copied nothing"
            time.sleep(0.1)
        assert copied == "\n".join(lines)


def _steps_notebook(path: Path, steps: list) -> Path:
    """A notebook whose one output is the steps as the notebooks display them."""
    from cvlab.lab.real_setup import show_steps

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('display(lab.show_steps("IR", lab.ir_model_steps(ws)))')
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(show_steps("IR model on Triton in GKE", steps))
    assert {"text/html", "text/markdown", "text/plain"} <= set(data)  # as display() saves it
    cell.outputs = [nbformat.v4.new_output("display_data", data)]
    nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def test_real_setup_commands_render_as_code_blocks(browser: object, tmp_path: Path) -> None:
    """The exported notebook pages (04's steps: the longest lines) and the report's last
    section show every command as copyable code, not as wrapped prose, each block with a copy
    button that copies exactly its commands (nbconvert keeps the steps' script)."""
    from cvlab import lab
    from cvlab.lab.demo import export_html

    ws = lab.Workspace(tmp_path / "ws")
    steps = lab.ir_model_steps(ws)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        html = export_html(_steps_notebook(tmp_path / "04.ipynb", steps))
        page.goto(html.as_uri())
        blocks = page.eval_on_selector_all(".jp-OutputArea-output pre", _CODE_STYLE)
        _assert_code_blocks(blocks, [s.commands for s in steps if s.commands])
        _assert_copy_buttons(
            page, ".jp-OutputArea-output .commands-row", [s.commands for s in steps if s.commands]
        )

        report = build_report(ws.root, tmp_path / "report.html")
        page.goto(report.as_uri())
        rows = "#real-setup ~ .commands-row"
        blocks = page.eval_on_selector_all(f"{rows} > pre.commands", _CODE_STYLE)
        every = [s.commands for _, part in lab.lab_steps(ws) for s in part if s.commands]
        _assert_code_blocks(blocks, every)
        _assert_copy_buttons(page, rows, every)
        headings = page.locator("h2").all_inner_texts()
        assert headings[-1] == "The real setup"  # the report ends with it
    finally:
        page.close()


def test_report_headline_shows_the_domain_gap_and_the_zero_ap_model(
    browser: object, tmp_path: Path
) -> None:
    """The three-bar chart in the headline, and the precision-recall figure of a model that
    found nobody still shows that model (a point and "found 0 of 2, 1 false box")."""
    import matplotlib

    matplotlib.use("Agg")
    from cvlab import lab
    from cvlab.detections import Detections
    from cvlab.viz.plots import plot_pr_comparison

    ws = lab.Workspace(tmp_path / "ws")
    truth = [Detections(np.array([[10, 10, 40, 90], [60, 10, 90, 90]]), [1, 1], [0, 0],
                        ("person",), (100, 100))]  # fmt: skip
    ir = [Detections(np.array([[10, 10, 40, 90]]), [3.0], [0], ("person",), (100, 100))]
    rgb = [Detections(np.array([[0, 0, 5, 5]]), [2.0], [0], ("person",), (100, 100))]
    rgb_eval = lab.evaluate(rgb, truth, ("person",))
    ir_eval = lab.evaluate(ir, truth, ("person",))
    fig = lab.show_domain_gap(rgb_eval, ir_eval, 0.9)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[0] == "RGB model\non RGB frames" and "found 0 of 2, 1 false box" in labels[1]
    lab.record_figure(ws, "05_domain_gap", fig, "Person AP: domain gap (05)")
    pr = plot_pr_comparison({"RGB model": rgb_eval, "IR model": ir_eval})
    legend = [t.get_text() for t in pr.axes[0].get_legend().get_texts()]
    assert legend[0] == "RGB model: AP 0.00, found 0 of 2, 1 false box"
    assert any("found 0 of 2" in t.get_text() for t in pr.axes[0].texts)  # by its point
    lab.record_figure(ws, "05_pr_curves", pr, "Precision-recall (05)")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(build_report(ws.root, tmp_path / "report.html").as_uri())
        chart = page.locator("#headline figure img[alt='Person AP: domain gap (05)']")
        assert chart.evaluate("e => e.complete && e.naturalWidth > 300")
        box = chart.bounding_box()
        assert box["y"] < 900 and box["width"] > 300  # on the first screen
        pr_img = page.locator("figure img[alt='Precision-recall (05)']")
        assert pr_img.evaluate("e => e.complete && e.naturalWidth > 300")
    finally:
        page.close()
