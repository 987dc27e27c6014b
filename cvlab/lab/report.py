"""One self-contained HTML page summarising a lab run.

The notebooks record what is worth showing through :mod:`cvlab.lab` (``record_table``,
``record_figure``, ``record_image``) under ``<workspace>/report/``; :func:`build_report`
turns those into a single HTML file: tables with ``pandas.DataFrame.to_html``, images
embedded as base64 (no extra dependencies, the page can be mailed around), plus links to
the executed notebooks.

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
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cvlab.fileio import atomic_write_text, list_images
from cvlab.lab.workspace import resolve_workspace_path

_STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; }
h1 { border-bottom: 3px solid #76b900; padding-bottom: .3em; }
h2 { margin-top: 2em; color: #333; }
table.dataframe { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 90%; }
table.dataframe th, table.dataframe td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
table.dataframe th { background: #f2f2f2; }
figure { display: inline-block; margin: .5em; vertical-align: top; }
figure img { max-width: 520px; border: 1px solid #ddd; }
figcaption { font-size: 85%; color: #555; }
.note { color: #666; font-size: 90%; }
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


def image_tag(path: Path, caption: str) -> str:
    """An ``<figure>`` with the image embedded as a base64 data URI."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def table_html(path: Path) -> str:
    """A recorded CSV table as HTML (pandas)."""
    df = pd.read_csv(path)
    return df.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}", na_rep="")


def build_report(
    workspace: str | os.PathLike[str],
    output_html: str | os.PathLike[str],
    notebooks: Sequence[str | os.PathLike[str]] = (),
    title: str = "cvlab: PeopleNet lab report",
) -> Path:
    """Write the HTML report for ``workspace`` to ``output_html`` (atomic) and return its path.

    Sections: executed notebooks (relative links), results (tables recorded with ``_ap`` in
    their name, e.g. the AP comparison), environment, other tables, figures (training curve,
    PR curves, dataset statistics) and overlay images. Missing
    sections say so instead of failing, so a partial run still gets a report.
    """
    ws_root = resolve_workspace_path(workspace)
    report_dir = ws_root / "report"
    output_html = Path(output_html)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>Generated {dt.datetime.now().isoformat(timespec='seconds')} "
        f"from workspace <code>{html.escape(str(ws_root))}</code>.</p>",
    ]
    if notebooks:
        parts.append("<h2>Executed notebooks</h2><ul>")
        for nb in map(Path, notebooks):
            try:
                href = os.path.relpath(nb.resolve(), output_html.parent.resolve())
            except ValueError:
                href = str(nb.resolve())
            parts.append(f"<li><a href='{html.escape(href)}'>{html.escape(nb.name)}</a></li>")
        parts.append("</ul>")

    tables = _items(report_dir, "tables", (".csv",))
    results = [t for t in tables if "_ap" in t[0].stem]
    env = [t for t in tables if t[0].stem.endswith("environment")]
    others = [t for t in tables if t not in env and t not in results]
    for heading, group in (("Results", results), ("Environment", env), ("Tables", others)):
        parts.append(f"<h2>{heading}</h2>")
        if not group:
            parts.append("<p class='note'>Nothing recorded.</p>")
        for path, caption in group:
            parts.append(f"<h3>{html.escape(caption)}</h3>{table_html(path)}")
    for heading, folder, suffixes in (
        ("Figures", "figures", (".png",)),
        ("Detections (overlays)", "images", (".jpg", ".jpeg", ".png")),
    ):
        parts.append(f"<h2>{heading}</h2>")
        items = _items(report_dir, folder, suffixes)
        if not items:
            parts.append("<p class='note'>Nothing recorded.</p>")
        parts.extend(image_tag(path, caption) for path, caption in items)
    parts.append("</body></html>")
    return atomic_write_text(output_html, "\n".join(parts))
