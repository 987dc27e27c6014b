"""Plots: training curves, dataset statistics, precision-recall curves and AP bars (matplotlib).

Example:
    >>> import pandas as pd
    >>> history = pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5], "mAP": [None, 0.4]})
    >>> fig = plot_training(history)
    >>> len(render_history_png(history)) > 1000
    True
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_training(history: pd.DataFrame, fig: Figure | None = None, title: str = "") -> Figure:
    """Two panels from a training history DataFrame: the loss terms per epoch (log scale,
    one colour each; the total is the *weighted* sum of the terms, so it lies below them) and
    the validation AP (0-1, one line: the mAP, plus each class's AP when there are several,
    every validated epoch marked and the last value written). TAO's convention for the same
    AP (``mAP_tao``) is a footnote, not another line. Draws into ``fig`` when given (e.g. a
    standalone Agg Figure); returns the Figure.
    """
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(12, 4.4), layout="constrained")
    ax_loss, ax_map = fig.subplots(1, 2)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_map):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_cols = [c for c in history.columns if c == "loss" or str(c).endswith("_loss")]
    for col in loss_cols:
        if col == "loss":
            label, width = "total: weighted sum of the terms", 2.4
        else:
            label, width = str(col).removesuffix("_loss").replace("_", " "), 1.2
        ax_loss.plot(history["epoch"], history[col], marker="o", ms=3, lw=width, label=label)
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="epoch", ylabel="loss (log scale)", title="training loss")
    ax_loss.grid(alpha=0.3)
    if loss_cols:
        ax_loss.legend(fontsize=8, loc="upper right", framealpha=0.9)
    ap_cols = [
        c for c in history.columns if str(c).startswith("ap_") and not str(c).startswith("ap_tao")
    ]
    cols = ["mAP"] if "mAP" in history.columns else []
    if len(ap_cols) > 1:  # with one class its AP is the mAP
        cols += ap_cols
    drawn = False
    for col in cols:
        valid = history[history[col].notna()]
        if not len(valid):
            continue
        if col == "mAP":
            label = "validation AP" if len(ap_cols) <= 1 else "validation mAP"
            style = {"lw": 2.4, "marker": "s", "ms": 5}
        else:
            label, style = f"AP {str(col).removeprefix('ap_')}", {"lw": 1.2, "marker": "o"}
        (line,) = ax_map.plot(valid["epoch"], valid[col], label=label, **style)
        last = valid.iloc[-1]
        ax_map.annotate(
            f"{last[col]:.2f}", (last["epoch"], last[col]), xytext=(-4, 7), ha="right",
            textcoords="offset points", fontsize=9, color=line.get_color(),
        )  # fmt: skip
        drawn = True
    ax_map.set_ylim(0, 1.05)
    if len(history):
        ax_map.set_xlim(ax_loss.get_xlim())
    ax_map.set(xlabel="epoch", ylabel="AP (IoU >= 0.5)", title="validation AP (held-out frames)")
    ax_map.grid(alpha=0.3)
    if drawn:
        ax_map.legend(fontsize=8, loc="lower right", framealpha=0.9)
        tao = history["mAP_tao"].dropna() if "mAP_tao" in history.columns else pd.Series()
        if len(tao):  # a footnote under the axis (constrained layout makes room for it)
            ax_map.set_xlabel(
                f"epoch\n* the same AP in TAO's convention (detectnet_v2 evaluate): "
                f"{tao.iloc[-1]:.2f} at the last validation",
                fontsize=9,
            )
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


def found_text(result: Any, class_name: str = "person") -> str:
    """What a model found, in words: ``"found 0 of 77, 11 false boxes"``."""
    row = result.per_class.set_index("class").loc[class_name]
    fp = int(row["fp"])
    return (
        f"found {int(row['tp'])} of {int(row['num_gt'])}, {fp} false box{'' if fp == 1 else 'es'}"
    )


def plot_pr_comparison(results: Mapping[str, Any], class_name: str = "person", ax=None):
    """Precision-recall curves of one class for several models on one plot (``results``:
    label -> :class:`~cvlab.train.evaluate.EvaluationResult`), AP and what each found in the
    legend; each model's operating point (all its boxes) is a large marker, so a model with
    AP 0 (a curve along the axis) still shows, labelled "found 0 of 77, 11 false boxes".
    Returns the Figure."""
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
        found = found_text(result, class_name) if class_name in result.ap else "no boxes"
        if curve is None or not len(curve.recall):
            ax.plot([], [], label=f"{label}: AP {ap:.2f}, {found}")
            continue
        recall = np.concatenate([[0.0], curve.recall])
        precision = np.concatenate([[1.0], curve.precision])
        (line,) = ax.step(recall, precision, where="post", lw=2, label=f"{label}: AP {ap:.2f}")
        line.set_label(f"{label}: AP {ap:.2f}, {found}")
        point = (float(curve.recall[-1]), float(curve.precision[-1]))
        ax.plot(*point, "o", ms=11, color=line.get_color(), mec="black", clip_on=False, zorder=5)
        if ap == 0:
            ax.annotate(
                f"{label}: {found}", point, xytext=(14, 18), textcoords="offset points",
                fontsize=9, color=line.get_color(), fontweight="bold",
                arrowprops={"arrowstyle": "-", "color": line.get_color()},
            )  # fmt: skip
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01))
    ax.set_title(f"{class_name}: precision-recall at IoU >= {iou:g}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.08), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def plot_domain_gap(
    bars: Sequence[tuple[str, float, str]],
    title: str = "Person AP: the domain gap and what retraining wins back",
    ax=None,
):
    """One bar per (label, AP, note), AP written above each bar and the note (what the model
    found) under its label; a bar of AP 0 still shows as a thin outline. Returns the Figure.

    >>> fig = plot_domain_gap([("RGB model\\non RGB frames", 0.9, "found 9 of 10"),
    ...                        ("RGB model\\non thermal frames", 0.0, "found 0 of 77")])
    >>> [t.get_text() for t in fig.axes[0].texts]
    ['AP 0.90', 'AP 0.00']
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
    else:
        fig = ax.figure
    colors = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
    x = np.arange(len(bars))
    for i, (_, ap, _) in enumerate(bars):
        color = colors[i % len(colors)]
        ax.bar(i, max(ap, 0.004), 0.6, color=color, edgecolor=color, lw=1.5)
        ax.text(i, ap + 0.02, f"AP {ap:.2f}", ha="center", va="bottom", fontsize=11,
                fontweight="bold")  # fmt: skip
    ax.set_xticks(x, [f"{label}\n({note})" if note else label for label, _, note in bars])
    ax.tick_params(axis="x", labelsize=9)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("person AP (IoU >= 0.5)")
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
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


def plot_coverage(
    image: np.ndarray,
    overlay: np.ndarray,
    coverage: np.ndarray,
    axes: Sequence[Any] | None = None,
    *,
    label: str = "",
    class_name: str = "person",
):
    """A frame's boxes (``overlay``, the frame with its boxes drawn) beside the raw
    ``output_cov`` grid of one class (``coverage``, grid rows x columns, one value per 16x16
    cell) laid over the grey ``image``: where the model "sees" the class before any clustering.
    Draws into the two ``axes`` when given (one row of a larger figure); returns the Figure.

    >>> import numpy as np
    >>> frame = np.zeros((64, 96, 3), np.uint8)
    >>> fig = plot_coverage(frame, frame, np.random.default_rng(0).random((4, 6)))
    >>> len(fig.axes)  # two panels and the colour bar
    3
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), layout="constrained")
    ax_boxes, ax_cov = axes
    fig = ax_boxes.figure
    h, w = image.shape[:2]
    ax_boxes.imshow(overlay)
    ax_boxes.set_title(f"{label}: boxes after clustering" if label else "boxes", fontsize=10)
    grey = image.mean(axis=2) if image.ndim == 3 else image
    ax_cov.imshow(grey, cmap="gray", extent=(0, w, h, 0))
    heat = ax_cov.imshow(
        coverage, cmap="inferno", vmin=0, vmax=1, alpha=0.75, extent=(0, w, h, 0),
        interpolation="nearest",
    )  # fmt: skip
    peak = float(np.max(coverage)) if coverage.size else 0.0
    ax_cov.set_title(
        f"{label + ': ' if label else ''}raw {class_name} coverage (output_cov), "
        f"highest cell {peak:.2f}",
        fontsize=10,
    )
    for ax in (ax_boxes, ax_cov):
        ax.axis("off")
    fig.colorbar(heat, ax=ax_cov, fraction=0.03, pad=0.01, label="coverage")
    return fig


#: The lab's two chains, as (box label, notebook) per row of :func:`pipeline_figure`.
PIPELINE_ROWS = (
    (
        ("camera frame", "01, 05"),
        ("Triton, local or on GKE\n(PeopleNet or the IR model)", "01, 05"),
        ("clustering\n(DBSCAN on output_cov)", "01, 05"),
        ("boxes", "01, 05"),
    ),
    (
        ("FLIR thermal\nframes", "02"),
        ("KITTI labels", "02"),
        ("TFRecords", "02"),
        ("training\n(TAO / cvlab)", "03"),
        ("ONNX /\nTensorRT", "04"),
        ("GCS bucket", "04"),
        ("Triton on GKE\n(serves it above)", "04"),
    ),
)


def pipeline_figure(rows: Sequence[Sequence[tuple[str, str]]] = PIPELINE_ROWS):
    """The lab's pipeline as boxes and arrows, one chain per row (each box with the notebooks
    that do that step). Returns the Figure.

    >>> fig = pipeline_figure()
    >>> sum(1 for t in fig.axes[0].texts if t.get_text() == "TFRecords")
    1
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    width = max(len(r) for r in rows)
    fig, ax = plt.subplots(figsize=(13, 1.25 * len(rows) + 0.3))
    ax.set(xlim=(-0.1, width), ylim=(-len(rows) + 0.4, 0.4))
    ax.axis("off")
    colors = ("#dbeafe", "#fde2cf")
    centers: list[list[tuple[float, float]]] = []
    for r, row in enumerate(rows):
        step = width / len(row)
        centers.append([])
        for i, (label, notebooks) in enumerate(row):
            x, y = i * step + step / 2, -r
            ax.add_patch(
                FancyBboxPatch(
                    (x - 0.42 * min(step, 1.9), y - 0.28), 0.84 * min(step, 1.9), 0.56,
                    boxstyle="round,pad=0.02", fc=colors[r % 2], ec="0.3",
                )
            )  # fmt: skip
            ax.text(x, y + 0.04, label, ha="center", va="center", fontsize=9.5)
            ax.text(x, y - 0.36, f"notebook {notebooks}", ha="center", va="top", fontsize=7.5,
                    color="0.35")  # fmt: skip
            centers[r].append((x + 0.42 * min(step, 1.9), x - 0.42 * min(step, 1.9)))
            if i:
                ax.annotate("", (x - 0.42 * min(step, 1.9) - 0.02, y),
                            (centers[r][i - 1][0] + 0.02, y),
                            arrowprops={"arrowstyle": "->", "lw": 1.4})  # fmt: skip
    ax.set_title("The lab's pipeline", fontsize=11)
    fig.tight_layout()
    return fig
