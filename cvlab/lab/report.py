"""One self-contained HTML page summarising a lab run.

The notebooks record what is worth showing through :mod:`cvlab.lab` (``record_table``,
``record_figure``, ``record_image``) under ``<workspace>/report/``, each named after its
notebook (``05_before_after``); :func:`build_report` turns those into a single HTML file that
tells the run's story:

1. a headline: what ran (offline or real, synthetic or FLIR data, stand-in or real models),
   the RGB-vs-IR result and the before/after figure at full width, links to the executed
   notebooks and their measured times;
2. the lab's order: RGB inference (01), dataset (02), training (03), deploy (04: ONNX check,
   repository, Triton status) and IR inference (05);
3. environment and raw tables, folded, then the real-setup steps of every notebook.

Tables come from ``pandas.DataFrame.to_html`` (numbers rounded), images are embedded as base64
(the page can be mailed around), figures are full width and open enlarged on click.

Example:
    >>> build_report("runs/lab", "runs/demo/report.html")  # doctest: +SKIP
    PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cvlab.fileio import atomic_write_text, list_images
from cvlab.lab.workspace import resolve_workspace_path

#: The before/after figure and the AP table of notebook 05: the run's headline.
HEADLINE_FIGURE = "05_before_after"
#: Notebook 01's real held-out video frames: the headline's first picture.
HEADLINE_RGB_FIGURE = "01_rgb_overlays"
HEADLINE_TABLE = "05_ap_comparison"
#: Body sections: (heading, one line on what it shows, notebook prefixes of its records).
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("RGB inference", "The RGB model through Triton on RGB frames (notebook 01).", ("01",)),
    (
        "Dataset",
        "FLIR thermal frames prepared as KITTI labels and TFRecords (notebook 02).",
        ("02",),
    ),
    ("Training", "DetectNet_v2 retrained on the thermal TFRecords (notebook 03).", ("03",)),
    (
        "Deploy",
        "ONNX export check, Triton model repository, upload and Triton status (notebook 04).",
        ("04",),
    ),
    (
        "IR inference",
        "The RGB model and the retrained IR model on held-out thermal frames (notebook 05).",
        ("05",),
    ),
)
#: The domain-gap chart of notebook 05, shown in the headline too.
HEADLINE_CHART = "05_domain_gap"
#: The headline's pictures, in this order.
HEADLINE_FIGURES = (HEADLINE_RGB_FIGURE, HEADLINE_CHART, HEADLINE_FIGURE)
#: Records folded into "Details" at the end: the environment (00) and raw tables.
DETAIL_MARKERS = ("00_", "_history", "_raw", "coverage")

_STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 1.5em auto;
       max-width: 1200px; padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { border-bottom: 3px solid #76b900; padding-bottom: .3em; margin-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
h3 { margin: 1.2em 0 .3em; font-size: 1.05em; }
#headline { background: #f6f9ef; border: 1px solid #cfe3a6; border-radius: 6px;
            padding: .8em 1.2em 1em; margin-top: 1em; }
#headline .result { font-size: 1.35em; margin: .4em 0; }
#headline ul { margin: .3em 0; }
table.dataframe { border-collapse: collapse; margin: .4em 0 1.2em; font-size: 90%; }
table.dataframe th, table.dataframe td { border: 1px solid #ccc; padding: 3px 9px;
                                         text-align: left; }
table.dataframe th { background: #f2f2f2; }
figure { margin: .6em 0 1.4em; }
figure img { width: 100%; height: auto; border: 1px solid #ddd; cursor: zoom-in; }
figure.natural img { width: auto; max-width: 100%; }
figcaption { font-size: 90%; color: #444; margin-top: .2em; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr));
        gap: .8em; }
.note { color: #666; font-size: 90%; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: .6em .9em; overflow-x: auto;
      font-size: 85%; white-space: pre; }
pre.commands { border-radius: 4px; margin: .3em 0 1.1em; }
details { margin: .6em 0; }
summary { cursor: pointer; font-weight: 600; }
#zoom { position: fixed; inset: 0; background: rgba(0, 0, 0, .88); overflow: auto;
        cursor: zoom-out; z-index: 10; text-align: center; }
#zoom img { max-width: none; margin: 2em auto; background: #fff; }
"""

_ZOOM_SCRIPT = """
<div id="zoom" hidden><img alt="enlarged figure"></div>
<script>
document.addEventListener('click', function (e) {
  var zoom = document.getElementById('zoom');
  if (e.target.closest('#zoom')) { zoom.hidden = true; return; }
  if (e.target.tagName === 'IMG' && e.target.closest('figure')) {
    zoom.querySelector('img').src = e.target.src;
    zoom.hidden = false;
  }
});
document.addEventListener('keydown', function (e) {
  if (e.key === 'Escape') { document.getElementById('zoom').hidden = true; }
});
</script>
"""

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def _load_index(report_dir: Path) -> dict[str, str]:
    index_path = report_dir / "index.json"
    if not index_path.exists():
        return {}
    try:
        return json.loads(index_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{index_path}: not valid JSON ({exc})") from exc


def _items(report_dir: Path, folder: str, suffixes: tuple[str, ...]) -> list[tuple[Path, str]]:
    """Files of one kind, in recording order (index.json), then any unrecorded ones by name."""
    index = _load_index(report_dir)
    directory = report_dir / folder
    found = list_images(directory, suffixes) if directory.is_dir() else []
    order = {rel: i for i, rel in enumerate(index)}

    def key(p: Path) -> tuple[int, str]:
        rel = str(p.relative_to(report_dir))
        return (order.get(rel, len(order)), p.name)

    return [(p, index.get(str(p.relative_to(report_dir)), p.stem)) for p in sorted(found, key=key)]


#: Figures narrower than this (pixels) are shown at their own size, wider ones at full width.
FULL_WIDTH_FROM = 900


def image_tag(path: Path, caption: str, css_class: str = "") -> str:
    """A ``<figure>`` with the image embedded as a base64 data URI (click to enlarge): full
    width, or its own size when narrower than :data:`FULL_WIDTH_FROM` (``css_class``
    "small" keeps a grid cell's width)."""
    from cvlab.images import image_size

    data = base64.b64encode(path.read_bytes()).decode("ascii")
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    if not css_class and image_size(path)[0] < FULL_WIDTH_FROM:
        css_class = "natural"
    cls = f' class="{css_class}"' if css_class else ""
    return (
        f'<figure{cls}><img src="data:{mime};base64,{data}" alt="{html.escape(caption)}" '
        f'title="click to enlarge"><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def _number(value: float) -> str:
    """Floats for people: three decimals at most, no trailing zeros."""
    if value != value:  # NaN
        return ""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def table_html(path: Path) -> str:
    """A recorded CSV table as HTML (pandas), numbers rounded."""
    df = pd.read_csv(path)
    return df.to_html(index=False, border=0, float_format=_number, na_rep="")


def text_html(path: Path) -> str:
    """A recorded text (a repository tree, a config) as a preformatted block."""
    return f"<pre>{html.escape(path.read_text())}</pre>"


def _is_detail(path: Path) -> bool:
    return any(marker in path.stem for marker in DETAIL_MARKERS)


def _notebook_prefix(path: Path) -> str:
    return path.stem.split("_", 1)[0]


def _what_ran(state: Mapping[str, Any], ws_root: Path) -> tuple[bool, list[str]]:
    """Whether the run was the offline embedded default, and one line per part of it."""
    lines = []
    offline = True
    source = state.get("flir_source")
    if source and Path(source) == ws_root / "flir_source":
        lines.append("Data: synthetic FLIR-like thermal frames, generated here (no download).")
    elif "dataset" in state:
        offline = False
        lines.append("Data: a real FLIR ADAS download.")
    if "rgb_standin" in state:
        lines.append(
            "RGB model: the offline stand-in for PeopleNet (not PeopleNet), a small DetectNet_v2 "
            "shipped with cvlab, trained on a real camera video (vtest.avi) labelled by real "
            "detectors; judged on held-out frames of that video."
        )
    trained = state.get("trained", {})
    if trained.get("config") == "tiny":
        lines.append("IR model: a tiny DetectNet_v2 retrained here on the CPU (not ResNet-34).")
    elif trained:
        offline = False
        lines.append("IR model: DetectNet_v2 retrained with the PeopleNet configuration.")
    deployed = str(state.get("deployed_gcs", ""))
    if deployed.startswith("gs://cvlab-lab/"):
        lines.append(
            "Serving: a local Triton (CPU) loading the model repository from a local GCS emulator."
        )
    elif deployed:
        offline = False
        lines.append(f"Serving: model repository uploaded to {deployed}.")
    return offline, lines


def _result_line(state: Mapping[str, Any], tables: list[tuple[Path, str]]) -> str:
    """The RGB-vs-IR person AP, from the state (05) or the recorded comparison table."""
    rgb, ir = state.get("rgb_ap"), state.get("ir_ap")
    if rgb is None or ir is None:
        for path, _ in tables:
            if path.stem == HEADLINE_TABLE:
                df = pd.read_csv(path)
                if {"model", "AP"} <= set(df.columns) and len(df) >= 2:
                    rgb, ir = float(df["AP"].iloc[0]), float(df["AP"].iloc[-1])
    lines = []
    if state.get("rgb_frames_ap") is not None:
        lines.append(
            f"<p class='result'>Person AP of the RGB model on held-out real video frames: "
            f"<b>{float(state['rgb_frames_ap']):.2f}</b></p>"
        )
    if rgb is not None and ir is not None:
        lines.append(
            f"<p class='result'>Person AP on held-out thermal frames: RGB model "
            f"<b>{float(rgb):.2f}</b> &rarr; retrained IR model <b>{float(ir):.2f}</b></p>"
        )
    return "".join(lines)


def _notebook_links(
    notebooks: Sequence[Path], output_html: Path, seconds: Mapping[str, float]
) -> str:
    items = []
    for nb in notebooks:
        try:
            href = os.path.relpath(nb.resolve(), output_html.parent.resolve())
        except ValueError:
            href = str(nb.resolve())
        took = f" ({seconds[nb.stem]:.0f} s)" if nb.stem in seconds else ""
        items.append(f"<a href='{html.escape(href)}'>{html.escape(nb.stem)}</a>{took}")
    return "<p>Executed notebooks: " + " &middot; ".join(items) + "</p>" if items else ""


def _real_setup_html(ws_root: Path) -> str:
    """The lab's real-setup steps, notebook by notebook, as the last section (their configs
    are written into the workspace, as the notebooks do)."""
    from cvlab.lab.real_setup import lab_steps, steps_html
    from cvlab.lab.workspace import Workspace

    parts = [
        "<h2 id='real-setup'>The real setup</h2>",
        "<p class='note'>What each notebook stands in for: the commands for NGC, TAO, "
        "TensorRT, Google Cloud Storage and Triton on GKE (replace the bucket with yours).</p>",
    ]
    parts += [steps_html(heading, steps) for heading, steps in lab_steps(Workspace(ws_root))]
    return "\n".join(parts)


def build_report(
    workspace: str | os.PathLike[str],
    output_html: str | os.PathLike[str],
    notebooks: Sequence[str | os.PathLike[str]] = (),
    title: str = "cvlab: PeopleNet lab report",
    seconds: Mapping[str, float] | None = None,
) -> Path:
    """Write the HTML report for ``workspace`` to ``output_html`` (atomic) and return its path.

    ``notebooks``: the executed notebooks to link (their HTML copies, preferably);
    ``seconds``: measured time per notebook name. Sections that have nothing recorded say so
    instead of failing, so a partial run still gets a report.
    """
    ws_root = resolve_workspace_path(workspace)
    report_dir = ws_root / "report"
    output_html = Path(output_html)
    state_file = ws_root / "lab_state.json"
    try:
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
    except json.JSONDecodeError:
        state = {}
    tables = _items(report_dir, "tables", (".csv",))
    figures = _items(report_dir, "figures", (".png",))
    images = _items(report_dir, "images", (".jpg", ".jpeg", ".png"))
    texts = _items(report_dir, "texts", (".txt",))
    offline, ran = _what_ran(state, ws_root)
    if not ran:
        recorded = sorted({_notebook_prefix(p) for p, _ in tables + texts + figures + images})
        if recorded:
            ran = [f"A partial run: records of notebook {', '.join(recorded)} only."]
            offline = False

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>Generated {dt.datetime.now().isoformat(timespec='seconds')} "
        f"from workspace <code>{html.escape(str(ws_root))}</code>.</p>",
        "<section id='headline'>",
        "<h2 style='margin-top:.2em;border:0'>"
        + (
            "Offline run: a real camera video, synthetic thermal data, stand-in models"
            if offline and ran
            else "What ran"
        )
        + "</h2>",
    ]
    if ran:
        parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in ran) + "</ul>")
    parts.append(_result_line(state, tables))
    parts.append(_notebook_links([Path(n) for n in notebooks], output_html, seconds or {}))
    for stem in HEADLINE_FIGURES:  # a real frame, the domain gap, then the before/after
        parts.extend(image_tag(p, c) for p, c in figures if p.stem == stem)
    parts.append("</section>")

    details = [(p, c) for p, c in tables if _is_detail(p)]
    for heading, blurb, prefixes in SECTIONS:
        parts.append(f"<h2>{html.escape(heading)}</h2><p class='note'>{html.escape(blurb)}</p>")
        shown = 0
        for prefix in prefixes:  # notebook by notebook: tables, texts, figures, images
            for path, caption in tables:
                if _notebook_prefix(path) == prefix and (path, caption) not in details:
                    parts.append(f"<h3>{html.escape(caption)}</h3>{table_html(path)}")
                    shown += 1
            for path, caption in texts:
                if _notebook_prefix(path) == prefix:
                    parts.append(f"<h3>{html.escape(caption)}</h3>{text_html(path)}")
                    shown += 1
            for path, caption in figures:
                if _notebook_prefix(path) == prefix and path.stem not in HEADLINE_FIGURES:
                    parts.append(image_tag(path, caption))
                    shown += 1
            own = [(p, c) for p, c in images if _notebook_prefix(p) == prefix]
            if own:
                parts.append("<div class='grid'>")
                parts.extend(image_tag(p, c, "small") for p, c in own)
                parts.append("</div>")
                shown += len(own)
        if not shown:
            parts.append("<p class='note'>Nothing recorded.</p>")

    known = {prefix for _, _, prefixes in SECTIONS for prefix in prefixes}
    other = [
        (path, caption)
        for path, caption in tables + texts + figures + images
        if _notebook_prefix(path) not in known
        and (path, caption) not in details
        and path.stem not in HEADLINE_FIGURES
    ]
    if other:
        parts.append("<h2>Other records</h2>")
        for path, caption in other:
            if path.suffix == ".csv":
                parts.append(f"<h3>{html.escape(caption)}</h3>{table_html(path)}")
            elif path.suffix == ".txt":
                parts.append(f"<h3>{html.escape(caption)}</h3>{text_html(path)}")
            else:
                parts.append(image_tag(path, caption))

    parts.append("<h2>Details</h2>")
    if not details:
        parts.append("<p class='note'>Nothing recorded.</p>")
    for path, caption in details:
        parts.append(
            f"<details><summary>{html.escape(caption)}</summary>{table_html(path)}</details>"
        )
    parts.append(_real_setup_html(ws_root))
    parts.append(_ZOOM_SCRIPT)
    parts.append("</body></html>")
    return atomic_write_text(output_html, "\n".join(p for p in parts if p))
