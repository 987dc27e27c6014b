"""What the notebooks show: overlays with a legend, before/after comparisons, tables named for
people, the AP comparison and precision-recall curves of several models, folded details.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cvlab.lab.workspace import Workspace, record_image

#: What a detection's score is, said once for every notebook that shows one.
SCORE_NOTE = (
    "A box's score is the summed coverage of the grid cells clustered into it (DetectNet_v2), "
    "so scores above 1 are normal; the clustering config's confidence thresholds are in the "
    "same unit."
)
#: What AP is, said once.
AP_NOTE = (
    "AP (average precision, TAO's evaluation): the area under the precision-recall curve of a "
    "class, where a box counts as correct when it overlaps a ground-truth box of that class by "
    "IoU >= 0.5; 1.0 means every object found and no false box."
)
#: Ground truth is drawn in white, one pixel wide, under the detections.
TRUTH_COLOR = (255, 255, 255)

#: Column names for people: evaluation tables (cvlab.train.evaluate) and detection tables.
_EVAL_COLUMNS = {
    "class": "class",
    "ap": "AP",
    "precision": "precision",
    "recall": "recall",
    "num_gt": "objects (ground truth)",
    "num_pred": "boxes found",
    "tp": "correct",
    "fp": "false",
}


def short_name(path: str | os.PathLike[str] | None, limit: int = 22) -> str:
    """A file name short enough for a figure title (the stem, shortened in the middle).

    >>> short_name("/data/FLIR_ADAS_v2/images_thermal_val/video-abcdefgh-frame-000123.jpg")
    'video…fgh-frame-000123'
    """
    stem = Path(path or "?").stem
    if len(stem) <= limit:
        return stem
    head = min(5, limit // 4)
    return f"{stem[:head]}…{stem[-(limit - 1 - head) :]}"


def detections_table(detections: Sequence[Any]) -> pd.DataFrame:
    """One row per image: boxes per class and the best score (rounded)."""
    rows = []
    for d in detections:
        row: dict[str, Any] = {"image": Path(d.image_path or "?").name, "boxes": len(d)}
        for name in d.class_names:
            row[name] = int(sum(1 for n in d.names if n == name))
        row["best score"] = round(float(d.confidence.max()), 2) if len(d) else None
        rows.append(row)
    return pd.DataFrame(rows)


def ap_table(result: Any) -> pd.DataFrame:
    """A :class:`~cvlab.train.evaluate.EvaluationResult` per class, named for people and
    rounded to three decimals."""
    table = result.per_class.rename(columns=_EVAL_COLUMNS)
    return table.round(3)


def _overlay(
    rgb: np.ndarray, dets: Any, config: Any, truth: Any = None, labels: bool = False
) -> np.ndarray:
    from cvlab.viz.overlay import colors_from_config, draw_detections

    out = rgb
    if truth is not None and len(truth):
        out = draw_detections(
            out,
            truth,
            colors=dict.fromkeys(truth.class_names, TRUTH_COLOR),
            linewidth=1,
            show_labels=False,
        )
    if dets is not None:
        colors = colors_from_config(config) if config is not None else None
        linewidth = config.linewidth if config is not None else 2
        linewidth = max(1, min(linewidth, max(1, min(rgb.shape[:2]) // 100)))
        out = draw_detections(out, dets, colors=colors, linewidth=linewidth, show_labels=labels)
    return out


def _legend(fig: Any, config: Any, truth: bool, classes: Sequence[str] | None = None) -> None:
    """Colour legend under the figure: ground truth (white) and the colour of each class of
    ``config`` (only ``classes``, when given)."""
    from matplotlib.patches import Patch

    from cvlab.viz.overlay import colors_from_config

    handles = []
    if truth:
        handles.append(Patch(facecolor="white", edgecolor="black", label="ground truth"))
    colors = colors_from_config(config) if config is not None else {}
    for name, rgb in colors.items():
        if classes is None or name in classes:
            handles.append(
                Patch(facecolor=np.asarray(rgb) / 255, edgecolor="black", label=f"{name} (model)")
            )
    if handles:
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=len(handles),
            frameon=False,
            fontsize=10,
            bbox_to_anchor=(0.5, 0.0),
        )


def _count_text(dets: Any, truth: Any = None) -> str:
    """What a picture shows, in words: ``"found 1 box, 1 correct, of 4 people"`` per class of
    the ground truth (TAO's matching, IoU >= 0.5) when ``truth`` is given, else the counts."""
    if truth is not None and dets is not None:
        from cvlab.train.evaluate import evaluate_detections

        names = [n for n in truth.class_names if n in dets.class_names]
        if names:
            result = evaluate_detections([dets], [truth], tuple(names))
            parts = []
            for _, row in result.per_class.iterrows():
                found, gt = int(row["num_pred"]), int(row["num_gt"])
                if not found and not gt:
                    continue
                what = "people" if row["class"] == "person" else str(row["class"])
                boxes = {0: "no boxes", 1: "1 box"}.get(found, f"{found} boxes")
                parts.append(f"found {boxes}, {int(row['tp'])} correct, of {gt} {what}")
            return "; ".join(parts) or "no boxes, nobody there"
    if dets is None and truth is not None:
        people = truth.names.count("person")
        others = len(truth) - people
        text = "1 person" if people == 1 else f"{people} people"
        return text + (f", {others} other" if others else "") + " (ground truth)"
    if dets is None or not len(dets):
        return "no boxes"
    counts = {n: dets.names.count(n) for n in dets.class_names if n in dets.names}
    return ", ".join(f"{c} {n}" for n, c in counts.items())


def show_overlays(
    images: Sequence[str | os.PathLike[str]],
    detections: Sequence[Any],
    config: Any = None,
    *,
    title: str = "",
    truth: Sequence[Any] | None = None,
    ncols: int = 2,
    labels: bool = False,
) -> Any:
    """Overlays of ``detections`` (ground truth in thin white, when given) in a grid, each
    titled with its image and box counts, a colour legend underneath; returns the Figure
    (shown inline in notebooks). ``detections`` may be ``None`` entries (truth only)."""
    import matplotlib.pyplot as plt

    from cvlab.images import load_image

    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.4 * ncols, 4.0 * nrows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (path, dets) in enumerate(zip(images, detections, strict=False)):
        ax = axes.ravel()[i]
        gt = truth[i] if truth is not None else None
        ax.imshow(_overlay(load_image(path), dets, config, gt, labels))
        ax.set_title(f"{short_name(path)}: {_count_text(dets, gt)}", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=12)
    has_truth = truth is not None and any(t is not None and len(t) for t in truth)
    _legend(fig, config, has_truth)
    fig.tight_layout(rect=(0, 0.05, 1, 1), h_pad=1.8)  # titles clear of the image above
    plt.show()
    return fig


def show_image(rgb: np.ndarray, title: str = "") -> Any:
    """Show one RGB image inline; returns the Figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.6))
    ax.imshow(rgb)
    ax.set_title(title, fontsize=10)
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
            ws,
            f"{prefix}_{Path(p).stem}",
            _overlay(load_image(p), d, config),
            f"{short_name(p)}: {_count_text(d)}",
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


def compare_evaluations(results: Mapping[str, Any]) -> pd.DataFrame:
    """AP, precision and recall of several models side by side, one row per model and class,
    named for people and rounded."""
    rows = []
    for label, result in results.items():
        for _, r in ap_table(result).iterrows():
            rows.append({"model": label, **r.to_dict()})
    return pd.DataFrame(rows)


def show_pr_curves(results: Mapping[str, Any], class_name: str = "person") -> Any:
    """Precision-recall curves of several models for one class on one plot
    (:func:`cvlab.viz.plots.plot_pr_comparison`), inline; returns the Figure."""
    import matplotlib.pyplot as plt

    from cvlab.viz.plots import plot_pr_comparison

    fig = plot_pr_comparison(results, class_name)
    plt.show()
    return fig


def show_coverage(
    image: str | os.PathLike[str],
    rows: Sequence[tuple[str, Any, Any, Any]],
    truth: Any = None,
    class_name: str = "person",
) -> Any:
    """One frame, one row per model: its boxes (ground truth in white) beside its raw
    ``output_cov`` grid for ``class_name`` (:func:`cvlab.viz.plots.plot_coverage`). ``rows``:
    (label, detections, raw outputs of this frame as kept by ``run_inference(...,
    keep_outputs=True)``, clustering config). A box's score is the sum of the coverage of the
    cells clustered into it. Shown inline; returns the Figure."""
    import matplotlib.pyplot as plt

    from cvlab.images import load_image
    from cvlab.viz.plots import plot_coverage

    rgb = load_image(image)
    fig, axes = plt.subplots(
        len(rows), 2, figsize=(13, 3.6 * len(rows) + 0.6), squeeze=False, layout="constrained"
    )
    for ax_pair, (label, dets, outputs, config) in zip(axes, rows, strict=True):
        cov = next(v for k, v in outputs.items() if k.startswith("output_cov"))
        names = list(dets.class_names)
        channel = names.index(class_name) if class_name in names else 0
        plot_coverage(
            rgb,
            _overlay(rgb, dets, config, truth),
            np.asarray(cov)[channel],
            ax_pair,
            label=label,
            class_name=class_name,
        )
    fig.suptitle(f"{short_name(image)}: what each model sees before clustering", fontsize=12)
    plt.show()
    return fig


def rgb_frames_ap(ws: Workspace) -> float | None:
    """The RGB model's person AP on RGB frames as notebook 01 left it: the state's
    ``rgb_frames_ap`` when set, else the person row of its recorded ``01_standin_ap`` table."""
    state = ws.state()
    if state.get("rgb_frames_ap") is not None:
        return float(state["rgb_frames_ap"])
    path = ws.report / "tables" / "01_standin_ap.csv"
    if path.is_file():
        table = pd.read_csv(path)
        person = table[table.get("class", pd.Series(dtype=str)) == "person"]
        if len(person) and "AP" in person.columns:
            return float(person["AP"].iloc[0])
    return None


def show_domain_gap(
    rgb_eval: Any,
    ir_eval: Any,
    rgb_frames_ap: float | None,
    *,
    rgb_frames: str = "RGB frames",
    rgb_frames_note: str = "",
    class_name: str = "person",
) -> Any:
    """The domain gap in one chart of three bars (:func:`cvlab.viz.plots.plot_domain_gap`): the
    RGB model on RGB frames (``rgb_frames_ap``, measured elsewhere: notebook 01's frames,
    called ``rgb_frames``, ``rgb_frames_note`` under it, e.g. "found 9 of 10"; the bar is left
    out when None), the RGB model on thermal frames
    (``rgb_eval``) and the IR model on thermal frames (``ir_eval``), each with what it found.
    Shown inline; returns the Figure."""
    import matplotlib.pyplot as plt

    from cvlab.viz.plots import found_text, plot_domain_gap

    bars = []
    if rgb_frames_ap is not None:
        bars.append((f"RGB model\non {rgb_frames}", rgb_frames_ap, rgb_frames_note))
    bars += [
        (
            "RGB model\non thermal frames",
            rgb_eval.ap[class_name],
            found_text(rgb_eval, class_name),
        ),
        (
            "IR model (retrained)\non thermal frames",
            ir_eval.ap[class_name],
            found_text(ir_eval, class_name),
        ),
    ]
    fig = plot_domain_gap(bars)
    plt.show()
    return fig


def show_before_after(
    images: Sequence[Path],
    before: Sequence[Any],
    after: Sequence[Any],
    truth: Sequence[Any],
    before_config: Any,
    after_config: Any,
    *,
    before_label: str = "RGB model",
    after_label: str = "IR model",
    before_ap: float | None = None,
    after_ap: float | None = None,
) -> Any:
    """Side-by-side overlays, before (left) and after (right), ground truth in white, under
    the header "Before: RGB model, AP x | After: IR model, AP y"; returns the Figure."""
    import matplotlib.pyplot as plt

    from cvlab.images import load_image

    def header(word: str, label: str, ap: float | None) -> str:
        return f"{word}: {label}" + (f", AP {ap:.2f}" if ap is not None else "")

    n = len(images)
    fig, axes = plt.subplots(n, 2, figsize=(13, 3.9 * n + 1.0), squeeze=False)
    columns = (
        (before, before_config, header("Before", before_label, before_ap)),
        (after, after_config, header("After", after_label, after_ap)),
    )
    for i, path in enumerate(images):
        rgb = load_image(path)
        for j, (dets, cfg, _) in enumerate(columns):
            axes[i, j].imshow(_overlay(rgb, dets[i], cfg, truth[i]))
            axes[i, j].set_title(
                f"{short_name(path)}: {_count_text(dets[i], truth[i])}", fontsize=10
            )
            axes[i, j].axis("off")
    for j, (_, _, text) in enumerate(columns):
        axes[0, j].annotate(
            text,
            xy=(0.5, 1.0),
            xycoords="axes fraction",
            xytext=(0, 24),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=14,
            fontweight="bold",
        )
    _legend(fig, after_config, truth=True, classes=("person",))
    fig.tight_layout(rect=(0, 0.03, 1, 0.97), h_pad=1.8)  # titles clear of the image above
    plt.show()
    return fig


def history_table(history: pd.DataFrame) -> pd.DataFrame:
    """The validated epochs of a training history (and the last one), the columns a person
    reads: epoch, the weighted total loss and its terms, the learning rate and the validation
    AP (each class's AP only when there are several; TAO's convention left to the plot's
    footnote), with readable names and number formats (``2.1e-03``, ``0.80``)."""
    if history.empty:
        return history
    validated = history["mAP"].notna() if "mAP" in history.columns else history["epoch"] < 0
    rows = history[validated | (history.index == history.index[-1])]
    ap_cols = [c for c in history.columns if str(c).startswith("ap_") and "tao" not in str(c)]
    losses = [c for c in history.columns if str(c).endswith("_loss")]
    keep = ["epoch", "loss", *losses, "lr", "mAP", *(ap_cols if len(ap_cols) > 1 else [])]
    table = rows[[c for c in keep if c in rows.columns]].copy()
    for col in table.columns:
        if col == "epoch":
            table[col] = table[col].astype(int)
        elif col in ("loss", "lr", *losses):
            table[col] = [f"{v:.1e}" if v == v else "" for v in table[col]]
        else:
            table[col] = [f"{v:.2f}" if v == v else "" for v in table[col]]
    table.columns = [_history_name(str(c), len(ap_cols) > 1) for c in table.columns]
    return table.reset_index(drop=True)


def _history_name(column: str, several_classes: bool = False) -> str:
    """``lr`` -> "learning rate", ``loss`` -> "total loss (weighted)", ``person_cov_loss`` ->
    "person cov loss", ``mAP`` -> "validation AP" ("validation mAP" with several classes),
    ``ap_person`` -> "AP person"."""
    fixed = {
        "lr": "learning rate",
        "loss": "total loss (weighted)",
        "mAP": "validation mAP" if several_classes else "validation AP",
    }
    if column in fixed:
        return fixed[column]
    return column.replace("ap_", "AP ").replace("_", " ")


def training_takeaway(history: pd.DataFrame) -> MarkdownText:
    """One line on a training run: how far the loss fell and where the validation mAP went."""
    if history.empty:
        return MarkdownText("No epoch finished.")
    first, last = history.iloc[0], history.iloc[-1]
    text = (
        f"**Takeaway.** Over {len(history)} epochs the loss fell from {first['loss']:.3g} to "
        f"{last['loss']:.3g}"
    )
    if "mAP" in history.columns and history["mAP"].notna().any():
        valid = history[history["mAP"].notna()]
        a, b = valid.iloc[0], valid.iloc[-1]
        text += (
            f"; the validation mAP went from {a['mAP']:.2f} (epoch {int(a['epoch'])}) to "
            f"{b['mAP']:.2f} (epoch {int(b['epoch'])})"
        )
    return MarkdownText(text + ".")


def conclusion(
    before: Any, after: Any, *, offline: bool = True, class_name: str = "person"
) -> MarkdownText:
    """Three lines on the before/after result (recall and AP of ``class_name`` from two
    :class:`~cvlab.train.evaluate.EvaluationResult`) and the next steps, as Markdown."""

    def stats(result: Any) -> tuple[float, int, int]:
        row = result.per_class.set_index("class").loc[class_name]
        return float(row["ap"]), int(row["tp"]), int(row["num_gt"])

    ap_b, tp_b, gt = stats(before)
    ap_a, tp_a, _ = stats(after)
    third = (
        "Both models are tiny stand-ins trained here on synthetic data: the numbers show the "
        "method (retraining on the target domain), not PeopleNet's accuracy."
        if offline
        else "With the real models these are the lab's numbers on your held-out FLIR images."
    )
    return MarkdownText(
        "\n".join(
            [
                "**Conclusion**",
                "",
                f"1. Before: the RGB model finds {tp_b} of {gt} people on the thermal frames "
                f"(AP {ap_b:.2f}); trained on daylight colour images, it does not recognise "
                "thermal silhouettes.",
                f"2. After: retrained on thermal frames, the same architecture finds {tp_a} of "
                f"{gt} (AP {ap_a:.2f}).",
                f"3. {third}",
                "",
                "**Next steps**: the real setup below (FLIR download in notebook 02, TAO "
                "training in 03, TensorRT and Triton on GKE in 04), more training epochs, and "
                "the IR threshold (`IR_CONFIDENCE_THRESHOLD`) tuned for your precision/recall.",
            ]
        )
    )


class MarkdownText:
    """Markdown for notebooks that reads the same as plain text (no ``<...Markdown object>``
    repr in plain-text viewers)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def _is_text(column: pd.Series) -> bool:
    """Whether a table column holds words (left-aligned) rather than numbers, also numbers
    already formatted as text ("2.1e-03")."""
    if pd.api.types.is_numeric_dtype(column):
        return False
    for value in column:
        try:
            float(value) if value not in (None, "") else 0.0
        except (TypeError, ValueError):
            return True
    return False


class Table:
    """A DataFrame shown for people: no index column, numbers rounded to ``digits`` decimals,
    as HTML in notebooks and as aligned text elsewhere."""

    def __init__(self, df: pd.DataFrame, digits: int = 3) -> None:
        self.df = df.round(digits)
        self.digits = digits

    def _format(self, value: float) -> str:
        if value != value:  # NaN
            return ""
        return f"{value:.{self.digits}f}".rstrip("0").rstrip(".") or "0"

    def _repr_html_(self) -> str:
        """HTML with text columns left-aligned (inline styles: they survive JupyterLab's
        sanitiser) and numbers right-aligned."""
        import html

        text = [_is_text(self.df[c]) for c in self.df.columns]
        left = ' style="text-align: left"'

        def cell(tag: str, value: Any, is_text: bool) -> str:
            shown = self._format(value) if isinstance(value, float) else value
            shown = "" if shown is None else html.escape(str(shown))
            return f"<{tag}{left if is_text else ''}>{shown}</{tag}>"

        head = "".join(cell("th", c, t) for c, t in zip(self.df.columns, text, strict=True))
        rows = [
            "<tr>" + "".join(cell("td", v, t) for v, t in zip(row, text, strict=True)) + "</tr>"
            for row in self.df.itertuples(index=False)
        ]
        return (
            f'<table class="dataframe"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )

    def __repr__(self) -> str:
        return self.df.to_string(index=False, float_format=self._format, na_rep="")


def table(df: pd.DataFrame, digits: int = 3) -> Table:
    """``df`` for display: no index, numbers rounded (see :class:`Table`).

    >>> print(table(pd.DataFrame({"class": ["person"], "AP": [0.81249]})))
     class    AP
    person 0.812
    """
    return Table(df, digits)


class Folded:
    """HTML content inside a closed ``<details>`` block: details a reader opens when needed."""

    def __init__(self, summary: str, html: str, text: str) -> None:
        self.summary, self.html, self.text = summary, html, text

    def _repr_html_(self) -> str:
        return f"<details><summary><b>{self.summary}</b></summary>{self.html}</details>"

    def __repr__(self) -> str:
        return f"{self.summary}\n{self.text}"


def folded(content: Any, summary: str) -> Folded:
    """``content`` (a DataFrame, or text shown preformatted) folded under ``summary``."""
    import html as html_lib

    if isinstance(content, pd.DataFrame):
        shown = Table(content)
        return Folded(summary, shown._repr_html_(), repr(shown))
    text = str(content)
    return Folded(summary, f"<pre>{html_lib.escape(text)}</pre>", text)


def strip_gif(
    images: Sequence[str | os.PathLike[str]],
    detections: Sequence[Any],
    config: Any,
    path: str | os.PathLike[str],
    *,
    fps: float = 5.0,
    scale: float = 0.75,
) -> Path:
    """An animated GIF of consecutive frames with their boxes (and each frame's number and box
    count written on it), looping, at ``fps`` frames per second; written atomically to ``path``."""
    import io

    import cv2
    from PIL import Image

    from cvlab.fileio import atomic_write_bytes
    from cvlab.images import load_image

    frames = []
    for p, dets in zip(images, detections, strict=True):
        rgb = _overlay(load_image(p), dets, config)
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        text = f"{Path(p).stem}: {_count_text(dets)}"
        cv2.putText(rgb, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3)
        cv2.putText(rgb, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
        frames.append(Image.fromarray(rgb))
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=int(1000 / fps),
        loop=0,
    )
    return atomic_write_bytes(path, buffer.getvalue())


def show_filmstrip(
    images: Sequence[str | os.PathLike[str]],
    detections: Sequence[Any],
    config: Any,
    *,
    count: int = 4,
    title: str = "",
) -> Any:
    """``count`` evenly spaced frames of a run of consecutive frames in a grid (what the
    animation shows, for a page that cannot play it), a legend underneath; returns the Figure."""
    picks = np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int)
    return show_overlays(
        [images[i] for i in picks],
        [detections[i] for i in picks],
        config,
        title=title,
        ncols=2,
    )


@dataclass
class ThresholdSteps:
    """What :func:`show_threshold_steps` showed: one row per threshold (``table``: threshold,
    boxes, correct, false, missed, precision, recall) and the Figure."""

    table: pd.DataFrame
    figure: Any

    def sentence(self) -> str:
        """What the steps teach, from the numbers."""
        rows = self.table.to_dict("records")
        low, config, high = rows[0], rows[1], rows[-1]

        def people(n: int) -> str:
            return f"{n} {'person' if n == 1 else 'people'}"

        return (
            f"Lowering the threshold to {low['threshold']:g} finds "
            f"{people(low['correct'] - config['correct'])} more but adds "
            f"{low['false'] - config['false']} false boxes (precision "
            f"{config['precision']:.2f} -> {low['precision']:.2f}); raising it to "
            f"{high['threshold']:g} removes {config['false'] - high['false']} false boxes and "
            f"loses {people(config['correct'] - high['correct'])} (recall "
            f"{config['recall']:.2f} -> {high['recall']:.2f}). The config's "
            f"{config['threshold']:g} sits between."
        )


def show_threshold_steps(
    tuner: Any,
    truth: Sequence[Any],
    class_name: str = "person",
    factors: Sequence[float] = (0.25, 1.0, 4.0),
    index: int = 0,
) -> ThresholdSteps:
    """Precision and recall of ``class_name`` over the first ``len(truth)`` tuner images at the
    config's threshold times each of ``factors`` (a step down, the config, a step up), in a
    table, and image ``index`` drawn at each step (ground truth in white). Nothing is chosen
    from the numbers: the steps are fixed multiples of the config's threshold."""
    import matplotlib.pyplot as plt

    from cvlab.train.evaluate import evaluate_detections

    base = float(tuner.config.classes[class_name].dbscan_confidence_threshold)
    rows, panels = [], []
    for factor in factors:
        threshold = round(base * factor, 3)
        with tuner.threshold(class_name, threshold):
            found = [tuner.detections(i) for i in range(len(truth))]
            row = evaluate_detections(found, list(truth), (class_name,)).per_class.iloc[0]
            panels.append(tuner.render(index, [class_name], truth[index]))
        correct, boxes = int(row["tp"]), int(row["num_pred"])
        rows.append(
            {
                "threshold": threshold,
                "boxes": boxes,
                "correct": correct,
                "false": boxes - correct,
                "missed": int(row["num_gt"]) - correct,
                "precision": float(row["precision"]),
                "recall": float(row["recall"]),
            }
        )
    fig, axes = plt.subplots(1, len(rows), figsize=(6.0 * len(rows), 4.4), squeeze=False)
    names = ("lower", "the config's", "higher")
    for ax, row, rgb, name in zip(axes[0], rows, panels, names, strict=False):
        ax.imshow(rgb)
        ax.set_title(
            f"{name} threshold {row['threshold']:g}: precision {row['precision']:.2f}, "
            f"recall {row['recall']:.2f}",
            fontsize=10,
        )
        ax.axis("off")
    fig.suptitle(
        f"{tuner.names[index]}: the {class_name} threshold trades false boxes for missed people",
        fontsize=12,
    )
    _legend(fig, tuner.config, truth=True, classes=(class_name,))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    plt.show()
    return ThresholdSteps(pd.DataFrame(rows), fig)


@dataclass
class Animation:
    """An animated GIF shown inline as an ``<img>`` (JupyterLab, the HTML pages, the report),
    with a caption under it; its plain-text form says what it is."""

    path: Path
    caption: str = ""

    def _repr_html_(self) -> str:
        import base64
        import html

        data = base64.b64encode(Path(self.path).read_bytes()).decode("ascii")
        caption = html.escape(self.caption)
        return (
            f"<figure style='margin:0'><img src='data:image/gif;base64,{data}' alt='{caption}' "
            f"style='max-width:100%'><figcaption style='font-size:90%'>{caption}</figcaption>"
            "</figure>"
        )

    def __repr__(self) -> str:
        return f"animation {Path(self.path).name}: {self.caption}"
