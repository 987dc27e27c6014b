"""Execute the six lab notebooks headless, in order, on the embedded default.

One workspace is shared by the module (as ``make demo`` does): each notebook reuses what the
previous ones produced. A failing cell fails its test with the notebook and cell named. Real
parts throughout: synthetic FLIR data, TensorFlow training, ONNX export, the bundled
tritonserver, the GCS emulator. Every executed notebook must also read cleanly
(:func:`notebook_problems`: no TensorFlow/absl log lines on stderr, no frozen progress bar, no
raw widget or display-object repr). The last test builds the HTML report from the workspace.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from cvlab.lab import Workspace
from cvlab.lab.demo import (
    NOTEBOOKS,
    NotebookFailed,
    ensure_kernelspec,
    execute_notebook,
    export_html,
)
from cvlab.lab.report import build_report

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"

pytestmark = [pytest.mark.notebook, pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    ensure_kernelspec()
    root = tmp_path_factory.mktemp("lab")
    return {"workspace": root / "workspace", "executed": root / "executed", "done": []}


#: stderr text that comes from TensorFlow, absl, oneDNN or gRPC logging
_TF_LOG = re.compile(r"absl::|oneDNN|tensorflow|^[IWEF]\d{4} \d\d:\d\d:\d\d|cuda|grpc", re.I | re.M)
#: a tqdm text bar ("12%|##  | 3/24"), as ipywidgets and text bars save it
_TEXT_BAR = re.compile(r"\d+%\|")
#: plain-text reprs a reader should never see: widgets and IPython display objects
_RAW_REPR = re.compile(
    r"^(VBox|HBox|Box|IntSlider|FloatSlider|Image|HTML|Output)\(|<IPython\.core\.display\.\w+ object>"
)


def notebook_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What a reader of an executed notebook should not see, one line per finding: stderr
    streams from TensorFlow/absl, frozen progress bars (a bar still "running", or a widget or
    text bar, which saves its first state), raw reprs of widgets or display objects, and
    widgets whose state was not saved (they would not render)."""
    problems = []
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    saved = set(state.get("state", {}))
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            where = f"cell {i}"
            if out.get("output_type") == "stream":
                text = out.get("text", "")
                if out.get("name") == "stderr" and _TF_LOG.search(text):
                    problems.append(f"{where}: TensorFlow/absl log on stderr: {text[:80]!r}")
                if _TEXT_BAR.search(text):
                    problems.append(f"{where}: text progress bar in a stream: {text[:80]!r}")
                continue
            data = out.get("data", {})
            plain = data.get("text/plain", "")
            if 'data-progress="running"' in data.get("text/html", ""):
                problems.append(f"{where}: progress bar never finished: {plain[:80]!r}")
            widget = data.get("application/vnd.jupyter.widget-view+json")
            if widget is not None:
                if _TEXT_BAR.search(plain):
                    problems.append(f"{where}: widget progress bar (saves as 0%): {plain[:60]!r}")
                if widget.get("model_id") not in saved:
                    problems.append(f"{where}: widget without saved state: {plain[:60]!r}")
            if _RAW_REPR.search(plain):
                problems.append(f"{where}: raw repr: {plain[:60]!r}")
    return problems


def test_notebook_problems_finds_what_a_reader_should_not_see() -> None:
    """The check itself: each kind of noise is found, a clean notebook passes."""
    nb = nbformat.v4.new_notebook()
    clean = nbformat.v4.new_code_cell("x")
    clean.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="workspace: runs/lab\n"),
        nbformat.v4.new_output(
            "display_data",
            data={"text/html": '<div data-progress="done">', "text/plain": "100% 3/3"},
        ),
    ]
    nb.cells.append(clean)
    assert notebook_problems(nb) == []
    noisy = nbformat.v4.new_code_cell("y")
    noisy.outputs = [
        nbformat.v4.new_output(
            "stream",
            name="stderr",
            text="I0000 00:00:1.2 9 port.cc:153] oneDNN custom operations are on.\n",
        ),
        nbformat.v4.new_output(
            "display_data",
            data={"text/html": '<div data-progress="running">', "text/plain": "0% 0/3"},
        ),
        nbformat.v4.new_output(
            "display_data",
            data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "m1"},
                "text/plain": "epoch 1/18:   0%|          | 0/32",
            },
        ),
        nbformat.v4.new_output(
            "display_data",
            data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "m2"},
                "text/plain": "VBox(children=(HBox(children=(...",
            },
        ),
        nbformat.v4.new_output(
            "display_data",
            data={"text/markdown": "x", "text/plain": "<IPython.core.display.Markdown object>"},
        ),
    ]
    nb.cells.append(noisy)
    found = notebook_problems(nb)
    for kind in ("TensorFlow/absl", "never finished", "saves as 0%", "without saved state"):
        assert any(kind in p for p in found), (kind, found)
    assert sum("raw" in p for p in found) == 2


def _run(lab_run: dict, name: str) -> nbformat.NotebookNode:
    out = lab_run["executed"] / f"{name}.ipynb"
    try:
        execute_notebook(
            NOTEBOOK_DIR / f"{name}.ipynb",
            out,
            {"WORKSPACE": str(lab_run["workspace"])},
            cwd=NOTEBOOK_DIR,
            timeout=900,
        )
    except NotebookFailed as exc:
        pytest.fail(str(exc), pytrace=False)
    lab_run["done"].append(out)
    nb = nbformat.read(out, as_version=4)
    problems = notebook_problems(nb)
    assert not problems, f"{name}: " + "; ".join(problems)
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            parts.append(o.get("text", "") or o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_00_setup(lab_run: dict) -> None:
    nb = _run(lab_run, "00_setup")
    env = pd.read_csv(lab_run["workspace"] / "report/tables/00_environment.csv")
    assert {"tritonserver binary", "TensorRT (python)", "GPU (TensorFlow)"} <= set(env.component)
    assert "gcloud beta container clusters create" in _text(nb)
    assert _images(nb) >= 1  # the pipeline picture
    assert re.search(r"total\s+\d", _text(nb))  # every step's time and the total


def test_01_rgb_inference(lab_run: dict) -> None:
    nb = _run(lab_run, "01_rgb_inference")
    out = lab_run["workspace"] / "outputs/01_rgb"
    labels = sorted((out / "infer_labels").glob("*.txt"))
    stems = [p.stem for p in labels]
    assert stems[0] == "basketball1" and "vtest_000600" in stems and "grace_hopper" in stems
    assert len(list((out / "infer_images").glob("*.jpg"))) == len(labels)
    text = _text(nb)
    assert "tritonserver ready" in text
    assert "trained 40 epochs on 300 frames of a real camera video" in text  # nothing trained
    # real held-out frames first (their AP), then the photos, the bags and the tuner
    ap = re.search(r"person AP on 39 held-out real frames \((\d+) people\): ([0-9.]+)", text)
    assert ap and float(ap.group(2)) >= 0.8, text
    # no person of the scored frames gets two boxes (docs/clustering.md), through Triton
    duplicates = re.search(r"pairs of boxes on one person: (\d+)", text)
    assert duplicates and int(duplicates.group(1)) == 0, text
    assert _images(nb) >= 5
    assert "image/gif" in json.dumps(nb["cells"])  # the animated strip of consecutive frames
    # the threshold's trade, in numbers: lower finds more and adds false boxes, higher the reverse
    trade = re.search(
        r"Lowering the threshold to [0-9.]+ finds (\d+) (?:person|people) more but adds (\d+) "
        r"false boxes.*removes (\d+) false boxes and loses (\d+) (?:person|people)",
        text,
    )
    assert trade and text.index(ap.group(0)) < text.index(trade.group(0)), text
    assert int(trade.group(2)) > 0 and int(trade.group(4)) > 0
    assert "version **2.5.0**" in text  # the real setup's steps beside the offline ones


def test_02_flir_preprocess(lab_run: dict) -> None:
    nb = _run(lab_run, "02_flir_preprocess")
    ds = lab_run["workspace"] / "dataset"
    assert len(list((ds / "images").glob("*.jpg"))) == len(list((ds / "labels").glob("*.txt")))
    assert list((ds / "tfrecords").glob("*-fold-000-of-002-shard-*"))
    assert _images(nb) >= 2
    text = _text(nb)
    assert re.search(r"\d+: \d+ validation / \d+ training", text)  # the summary in words
    assert "frames: fold" not in text  # no jargon


def test_03_retrain(lab_run: dict) -> None:
    nb = _run(lab_run, "03_retrain")
    assert _images(nb) >= 1  # the live training curve, last drawn after the final epoch
    state = json.loads((lab_run["workspace"] / "lab_state.json").read_text())
    assert Path(state["trained"]["model_path"]).is_file()
    history = pd.read_csv(state["trained"]["metrics_csv"])
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert (lab_run["workspace"] / "tao/training_spec.txt").is_file()


def test_04_ir_deploy(lab_run: dict) -> None:
    nb = _run(lab_run, "04_ir_deploy")
    ws = lab_run["workspace"]
    assert (ws / "model_repository/peoplenet_ir/config.pbtxt").is_file()
    assert (
        'platform: "tensorrt_plan"'
        in (ws / "model_repository_gke/peoplenet_ir_tlt/config.pbtxt").read_text()
    )
    text = _text(nb)
    assert "model peoplenet_ir READY" in text
    assert "├── peoplenet_ir/" in text and 'name: "peoplenet_ir_tlt"' in text  # tree, config
    assert _images(nb) >= 1  # the smoke inference picture
    assert ".pyc" not in text and "__pycache__" not in text  # nothing but the models uploaded
    for command in re.findall(r"^trtexec .*$", text, re.M):  # offline commands: real files
        onnx = re.search(r"--onnx=(\S+)", command)
        assert onnx and Path(onnx.group(1)).is_file(), command


def test_05_ir_inference(lab_run: dict) -> None:
    nb = _run(lab_run, "05_ir_inference")
    table = pd.read_csv(lab_run["workspace"] / "report/tables/05_ap_comparison.csv")
    ap = dict(zip(table["model"], table["AP"], strict=True))
    # the RGB stand-in finds few thermal people; the retrained model must do better
    assert ap["IR model"] > ap["RGB model"]
    index = json.loads((lab_run["workspace"] / "report/index.json").read_text())
    assert index["figures/05_before_after.png"].startswith(
        f"Before: RGB model, AP {ap['RGB model']:.2f} | After: IR model, AP {ap['IR model']:.2f}"
    )
    text = _text(nb)
    assert "**Conclusion**" in text and "**Next steps**" in text
    assert index["figures/05_domain_gap.png"].startswith("Person AP")  # the three bars
    assert "figures/05_coverage.png" in index  # raw output_cov beside the boxes
    assert not [k for k in index if k.startswith("images/05_")]  # the frames shown once


def test_report_from_the_run(lab_run: dict) -> None:
    assert len(lab_run["done"]) == len(NOTEBOOKS), "an earlier notebook failed"
    pages = [export_html(nb) for nb in lab_run["done"]]
    html_path = build_report(lab_run["workspace"], lab_run["executed"] / "report.html", pages)
    html = html_path.read_text()
    headline = html[html.index("<section id='headline'>") : html.index("</section>")]
    assert "Offline run: a real camera video, synthetic thermal data, stand-in models" in headline
    assert "Person AP on held-out thermal frames: RGB model" in headline
    assert "Person AP of the RGB model on held-out real video frames" in headline
    assert headline.index("RGB model on held-out real video frames (01)") < headline.index(
        "Before: RGB"
    )  # a real frame first
    assert "Before: RGB model, AP" in headline and "data:image/png;base64," in headline
    assert "href='05_ir_inference.html'" in headline
    assert "Training loss and validation mAP" in html and "Deployment checks" in html
    assert html.index("<h2>Details</h2>") > html.index("Smoke inference")
    assert "Person AP: the RGB model on RGB and thermal frames" in headline  # the three bars
    sections = re.findall(r"<h2[^>]*>([^<]+)</h2>", html)[1:]
    assert sections == [
        "RGB inference", "Dataset", "Training", "Deploy", "IR inference", "Details",
        "The real setup",
    ]  # fmt: skip
    assert Workspace(lab_run["workspace"]).state()["ir_ap"] >= 0
