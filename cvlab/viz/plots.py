"""Plots: training curves, dataset statistics and precision-recall curves (matplotlib).

Example:
    >>> import pandas as pd
    >>> history = pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5], "mAP": [None, 0.4]})
    >>> fig = plot_training(history)
    >>> len(render_history_png(history)) > 1000
    True
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_training(history: pd.DataFrame, fig: Figure | None = None, title: str = "") -> Figure:
    """Two panels from a training history DataFrame: the loss terms per epoch (log scale,
    one colour each) and the validation mAP with each class's AP (0-1), legends beside the
    data. Draws into ``fig`` when given (e.g. a standalone Agg Figure); returns the Figure.
    """
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(12, 4.2), layout="constrained")
    ax_loss, ax_map = fig.subplots(1, 2)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_map):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_cols = [c for c in history.columns if c == "loss" or str(c).endswith("_loss")]
    for col in loss_cols:
        label = "total loss" if col == "loss" else str(col).removesuffix("_loss").replace("_", " ")
        width = 2.2 if col == "loss" else 1.2
        ax_loss.plot(history["epoch"], history[col], marker="o", ms=3, lw=width, label=label)
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="epoch", ylabel="loss (log scale)", title="training loss")
    ax_loss.grid(alpha=0.3)
    if loss_cols:
        ax_loss.legend(fontsize=8, loc="upper right", framealpha=0.9)
    # mAP (and "mAP_tao", as TAO reports it, when the trainer logs it), then each class's AP
    # when there are several classes (with one, its AP is the mAP)
    map_cols = [c for c in history.columns if str(c).startswith("mAP")]
    ap_cols = [
        c for c in history.columns if str(c).startswith("ap_") and not str(c).startswith("ap_tao")
    ]
    if len(ap_cols) == 1:
        ap_cols = []
    drawn = False
    for col in [*map_cols, *ap_cols]:
        if history[col].notna().any():
            valid = history[history[col].notna()]
            name = str(col)
            if name.startswith("mAP"):
                label = "mAP" if name == "mAP" else f"mAP ({name.removeprefix('mAP_')})"
                style = {"lw": 2.4 if name == "mAP" else 1.4, "marker": "s"}
                if "tao" in name:
                    label, style["ls"] = "mAP as TAO reports it", "--"
            else:
                label, style = f"AP {name.removeprefix('ap_')}", {"lw": 1.2, "marker": "o"}
            ax_map.plot(valid["epoch"], valid[col], label=label, ms=4, **style)
            drawn = True
    ax_map.set_ylim(0, 1)
    if len(history):
        ax_map.set_xlim(ax_loss.get_xlim())
    ax_map.set(xlabel="epoch", ylabel="AP (IoU 0.5)", title="validation AP")
    ax_map.grid(alpha=0.3)
    if drawn:
        ax_map.legend(fontsize=8, loc="lower right", framealpha=0.9)
    else:
        ax_map.text(
            0.5, 0.5, "not validated yet", ha="center", va="center", color="0.5",
            transform=ax_map.transAxes,
        )  # fmt: skip
    fig.suptitle(title or "DetectNet_v2 training", fontsize=11)
    return fig


def plot_dataset_stats(df: pd.DataFrame, title: str = "FLIR dataset") -> Figure:
    """Three panels: objects per class, boxes per frame, box-height histogram per class."""
    import matplotlib.pyplot as plt

    from cvlab.datasets import stats

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    counts = stats.class_counts(df)
    axes[0].bar(counts.index.astype(str), counts.to_numpy(), color="tab:orange")
    axes[0].set(title="objects per class", ylabel="objects")
    per_image = stats.boxes_per_image(df)
    axes[1].bar(per_image.index.to_numpy(), per_image.to_numpy(), color="tab:blue")
    axes[1].set(title="boxes per frame", xlabel="boxes", ylabel="frames")
    hist = stats.box_size_histogram(df)
    x = np.arange(len(hist))
    width = 0.8 / max(1, hist.shape[1])
    for k, cls in enumerate(hist.columns):
        axes[2].bar(x + k * width, hist[cls].to_numpy(), width, label=str(cls))
    axes[2].set_xticks(x + 0.4 - width / 2, hist.index, rotation=30)
    axes[2].set(title="box height", xlabel="pixels", ylabel="objects")
    if hist.shape[1]:
        axes[2].legend()
    fig.suptitle(title)
    return fig


def plot_pr_curves(result: Any, ax=None):
    """Precision-recall curve per class of a :class:`~cvlab.train.evaluate.EvaluationResult`;
    returns the Figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4.5))
    else:
        fig = ax.figure
    for name, curve in result.pr_curves.items():
        ap = result.ap.get(name, 0.0)
        recall = np.concatenate([[0.0], curve.recall])
        precision = np.concatenate([[1.0 if len(curve.precision) else 0.0], curve.precision])
        ax.step(recall, precision, where="post", label=f"{name} (AP {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_title(
        f"PR curves, IoU >= {result.iou_threshold:g}, {result.mode} (mAP {result.mean_ap:.3f})"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    return fig


def plot_pr_comparison(results: Mapping[str, Any], class_name: str = "person", ax=None):
    """Precision-recall curves of one class for several models on one plot (``results``:
    label -> :class:`~cvlab.train.evaluate.EvaluationResult`), AP in the legend; returns the
    Figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4.8))
    else:
        fig = ax.figure
    iou = 0.5
    for label, result in results.items():
        iou = result.iou_threshold
        curve = result.pr_curves.get(class_name)
        ap = result.ap.get(class_name, 0.0)
        if curve is None or not len(curve.recall):
            ax.plot([], [], label=f"{label}: AP {ap:.2f} (no boxes)")
            continue
        recall = np.concatenate([[0.0], curve.recall])
        precision = np.concatenate([[1.0], curve.precision])
        ax.step(recall, precision, where="post", lw=2, label=f"{label}: AP {ap:.2f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01))
    ax.set_title(f"{class_name}: precision-recall at IoU >= {iou:g}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    return fig


def render_history_png(history: pd.DataFrame, title: str = "") -> bytes:
    """The two-panel loss/AP curve of ``history`` as PNG bytes (standalone Agg figure, no
    pyplot state touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(12, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    plot_training(history, fig=fig, title=title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
