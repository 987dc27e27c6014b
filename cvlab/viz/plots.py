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
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_training(history, ax=None):
    """Loss terms (log scale) and validation mAP per epoch from a training history DataFrame.

    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(11, 4))
    else:
        fig, ax_loss, ax_map = ax.figure, ax, ax.twinx()
    loss_cols = [c for c in history.columns if c == "loss" or c.endswith("_loss")]
    for col in loss_cols:
        ax_loss.plot(history["epoch"], history[col], marker="o", label=col)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    if "mAP" in history.columns and history["mAP"].notna().any():
        valid = history[history["mAP"].notna()]
        ax_map.plot(valid["epoch"], valid["mAP"], marker="s", color="tab:green", label="mAP")
        ax_map.set_ylim(0, 1)
        ax_map.legend(fontsize=8)
    ax_map.set_xlabel("epoch")
    ax_map.set_ylabel("validation mAP (IoU 0.5)")
    ax_map.grid(alpha=0.3)
    fig.suptitle("DetectNet_v2 training")
    fig.tight_layout()
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


def render_history_png(history: pd.DataFrame, title: str = "") -> bytes:
    """The loss/mAP curve of ``history`` as PNG bytes (standalone Agg figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    plot_training(history, ax=ax)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
