"""What the notebooks show: overlays, before/after comparisons, per-image tables and the AP
comparison of several models.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cvlab.lab.workspace import Workspace, record_image


def detections_table(detections: Sequence[Any]) -> pd.DataFrame:
    """One row per image: boxes per class and the best confidence."""
    rows = []
    for d in detections:
        row: dict[str, Any] = {"image": Path(d.image_path or "?").name, "boxes": len(d)}
        for name in d.class_names:
            row[name] = int(sum(1 for n in d.names if n == name))
        row["max_confidence"] = float(d.confidence.max()) if len(d) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _overlay(rgb: np.ndarray, dets: Any, config: Any, truth: Any = None) -> np.ndarray:
    from cvlab.viz.overlay import colors_from_config, draw_detections

    out = rgb
    if truth is not None and len(truth):
        out = draw_detections(
            out,
            truth,
            colors=dict.fromkeys(truth.class_names, (255, 255, 255)),
            linewidth=1,
            show_labels=False,
        )
    if dets is not None:
        colors = colors_from_config(config) if config is not None else None
        linewidth = config.linewidth if config is not None else 2
        out = draw_detections(out, dets, colors=colors, linewidth=linewidth)
    return out


def show_overlays(
    images: Sequence[str | os.PathLike[str]],
    detections: Sequence[Any],
    config: Any = None,
    *,
    title: str = "",
    truth: Sequence[Any] | None = None,
    ncols: int = 2,
) -> Any:
    """Overlays of ``detections`` (and ground truth in thin white, when given) in a grid;
    returns the matplotlib Figure (shown inline in notebooks)."""
    import matplotlib.pyplot as plt

    from cvlab.images import load_image

    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (path, dets) in enumerate(zip(images, detections, strict=False)):
        ax = axes.ravel()[i]
        gt = truth[i] if truth is not None else None
        ax.imshow(_overlay(load_image(path), dets, config, gt))
        ax.set_title(f"{title}: {Path(path).name} ({len(dets)} boxes)", fontsize=9)
    fig.tight_layout()
    plt.show()
    return fig


def show_image(rgb: np.ndarray, title: str = "") -> Any:
    """Show one RGB image inline; returns the Figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.6))
    ax.imshow(rgb)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    plt.show()
    return fig


def record_overlay_images(
    ws: Workspace, prefix: str, images: Sequence[Path], detections: Sequence[Any], config: Any
) -> list[Path]:
    """Save overlays for the HTML report (report/images/<prefix>_<stem>.jpg)."""
    from cvlab.images import load_image

    return [
        record_image(
            ws, f"{prefix}_{Path(p).stem}", _overlay(load_image(p), d, config), Path(p).name
        )
        for p, d in zip(images, detections, strict=False)
    ]


def evaluate(
    predictions: Sequence[Any],
    truth: Sequence[Any],
    class_names: Sequence[str],
    mode: str = "INTEGRATE",
) -> Any:
    """TAO's evaluation (IoU 0.5, min box 4x4) on predictions restricted to ``class_names``."""
    from cvlab.train.evaluate import evaluate_detections

    return evaluate_detections(list(predictions), list(truth), tuple(class_names), mode=mode)


def compare_evaluations(results: dict[str, Any]) -> pd.DataFrame:
    """AP (and precision/recall where given) of several models side by side, one row each."""
    rows = []
    for label, result in results.items():
        table = result.per_class
        for _, r in table.iterrows():
            rows.append({"model": label, **{k: r[k] for k in table.columns}})
    return pd.DataFrame(rows)


def show_before_after(
    images: Sequence[Path],
    before: Sequence[Any],
    after: Sequence[Any],
    truth: Sequence[Any],
    before_config: Any,
    after_config: Any,
) -> Any:
    """Side-by-side overlays: RGB model (left) and IR model (right), ground truth in white."""
    import matplotlib.pyplot as plt

    from cvlab.images import load_image

    n = len(images)
    fig, axes = plt.subplots(n, 2, figsize=(12, 3.4 * n), squeeze=False)
    for i, path in enumerate(images):
        rgb = load_image(path)
        for j, (dets, cfg, label) in enumerate(
            ((before[i], before_config, "RGB model"), (after[i], after_config, "IR model"))
        ):
            axes[i, j].imshow(_overlay(rgb, dets, cfg, truth[i]))
            axes[i, j].set_title(f"{label}: {Path(path).name} ({len(dets)} boxes)", fontsize=9)
            axes[i, j].axis("off")
    fig.tight_layout()
    plt.show()
    return fig
