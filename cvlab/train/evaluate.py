"""Average precision as TAO DetectNet_v2 computes it (``detectnet_v2 evaluate`` / validation).

Steps (nvidia_tao_tf1/cv/detectnet_v2/evaluation/compute_metrics.py):

1. Predictions arrive clustered (:class:`~cvlab.detections.Detections`).
2. Ground truth *and* predictions outside ``evaluation_box_config`` (minimum/maximum height and
   width, per class) are dropped.
3. Per class, predictions are visited by descending confidence; each one is matched to the
   ground-truth box of its image with the highest IoU. IoU >= threshold and that box not yet
   taken: true positive; otherwise false positive (each ground-truth box is matched once).
4. AP per class: ``SAMPLE`` = Pascal VOC 2007 11-point (mean of the best precision at recall
   >= 0, 0.1, ..., 1) or ``INTEGRATE`` = area under the max-precision envelope (VOC 2010+).

Two conventions (``convention=``):

* ``"exact"`` (default): continuous IoU on the float boxes, stable sort, SAMPLE at recall
  ``>= t`` for ``t = 0, 0.1, ..., 1`` with a 1e-12 tolerance, INTEGRATE as the exact area under
  the max-precision envelope (what COCO samples at 101 points; see the faster-coco-eval
  cross-check test).
* ``"tao"``: TAO's ``ComputeMetrics`` to the letter (:func:`tao_average_precision`): box corners
  rounded half-to-even to integers after the box filter, IoU with ``+1`` widths
  (``border_pixels="include"``), float32 confidences sorted with numpy's quicksort, SAMPLE at
  exactly ``np.linspace(0, 1, 11)`` (recall 0.3 misses ``t = 0.30000000000000004``), INTEGRATE
  summing rectangles between unique recall values from the left (the first and last recall
  steps are never counted: one perfect box reads 0). Validation reports both
  (``mAP``/``ap_<class>`` and ``mAP_tao``/``ap_tao_<class>``).

Example:
    >>> import numpy as np
    >>> from cvlab.detections import Detections
    >>> gt = [Detections([[0, 0, 10, 20]], [1.0], [0], ("person",), (64, 64))]
    >>> pred = [Detections([[0, 0, 10, 20]], [0.9], [0], ("person",), (64, 64))]
    >>> round(evaluate_detections(pred, gt, ["person"]).mean_ap, 3)
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from cvlab.detections import Detections

APMode = Literal["SAMPLE", "INTEGRATE"]
AP_MODES: tuple[str, ...] = ("SAMPLE", "INTEGRATE")
CONVENTIONS: tuple[str, ...] = ("exact", "tao")
#: TAO's default when ``maximum_height``/``maximum_width`` is 0 or unset: no upper limit.
NO_LIMIT = float("inf")


@dataclass(frozen=True)
class BoxLimits:
    """One class's ``evaluation_box_config``: boxes outside these sizes are not evaluated."""

    min_height: float = 4.0
    min_width: float = 4.0
    max_height: float = NO_LIMIT
    max_width: float = NO_LIMIT

    def mask(self, dets: Detections) -> np.ndarray:
        """Boolean mask of the boxes inside the limits."""
        h, w = dets.height, dets.width
        return (
            (h >= self.min_height)
            & (w >= self.min_width)
            & (h <= self.max_height)
            & (w <= self.max_width)
        )


@dataclass
class PRCurve:
    """Cumulative precision/recall of one class, predictions sorted by descending confidence."""

    precision: np.ndarray
    recall: np.ndarray
    confidence: np.ndarray


@dataclass
class EvaluationResult:
    """Per-class AP table, mean AP and PR curves."""

    per_class: pd.DataFrame
    pr_curves: dict[str, PRCurve]
    mode: str
    iou_threshold: float
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def mean_ap(self) -> float:
        """Mean of the per-class APs (TAO averages over all target classes)."""
        return float(self.per_class["ap"].mean()) if len(self.per_class) else 0.0

    @property
    def ap(self) -> dict[str, float]:
        """Class name -> AP."""
        return dict(zip(self.per_class["class"], self.per_class["ap"].astype(float), strict=True))

    def plot_pr_curves(self, ax=None):
        """Precision-recall curve per class (:func:`cvlab.viz.plots.plot_pr_curves`)."""
        from cvlab.viz.plots import plot_pr_curves

        return plot_pr_curves(self, ax)


def box_iou(boxes: np.ndarray, box: np.ndarray, border_pixels: str = "half") -> np.ndarray:
    """IoU of each row of ``boxes`` (M,4 xyxy) with one ``box`` (4,).

    ``border_pixels="include"`` adds 1 to widths and heights as TAO's evaluator does on its
    rounded integer boxes; ``"half"`` (default) is the continuous IoU that COCO uses.
    """
    d = {"half": 0.0, "include": 1.0, "exclude": -1.0}[border_pixels]
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    box = np.asarray(box, np.float64).reshape(4)
    lt = np.maximum(boxes[:, :2], box[:2])
    rb = np.minimum(boxes[:, 2:], box[2:])
    wh = np.clip(rb - lt + d, 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area_a = (boxes[:, 2] - boxes[:, 0] + d) * (boxes[:, 3] - boxes[:, 1] + d)
    area_b = (box[2] - box[0] + d) * (box[3] - box[1] + d)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def average_precision(precision: np.ndarray, recall: np.ndarray, mode: str = "INTEGRATE") -> float:
    """AP from cumulative precision/recall (predictions by descending confidence).

    ``SAMPLE``: mean over t in {0, 0.1, ..., 1} of max(precision[recall >= t]) (VOC 2007).
    ``INTEGRATE``: area under the envelope p(r) = max(precision[recall >= r]) (VOC 2010+).

    >>> round(average_precision(np.array([1.0, 0.5]), np.array([0.5, 0.5]), "INTEGRATE"), 3)
    0.5
    """
    mode = mode.upper()
    if mode not in AP_MODES:
        raise ValueError(f"AP mode must be one of {AP_MODES}, got {mode!r}")
    precision = np.asarray(precision, np.float64)
    recall = np.asarray(recall, np.float64)
    if precision.size == 0:
        return 0.0
    if mode == "SAMPLE":
        total = 0.0
        for t in np.linspace(0.0, 1.0, 11):
            above = precision[recall >= t - 1e-12]
            total += float(above.max()) if above.size else 0.0
        return total / 11.0
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # max precision at recall >= r
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def tao_average_precision(
    precision: np.ndarray, recall: np.ndarray, mode: str = "INTEGRATE"
) -> float:
    """AP exactly as TAO's ``ComputeMetrics.compute_average_precisions`` computes it.

    ``SAMPLE``: mean over ``t in np.linspace(0, 1, 11)`` of ``max(precision[recall >= t])``
    (0 when empty), with no tolerance. ``INTEGRATE``: over the unique recall values
    ``u_0 < ... < u_{K-1}``, ``sum_i (u_{i+1} - u_i) * max(precision[first(u_i):])`` for
    ``i < K-1``; the step from 0 to ``u_0`` and the precision at ``u_{K-1}`` never count. NaN
    (no ground truth: recall 0/0) gives 0.

    >>> tao_average_precision(np.array([1.0]), np.array([1.0]), "INTEGRATE")  # one perfect box
    0.0
    >>> round(tao_average_precision(np.array([1.0] * 3), np.array([.1, .2, .3]), "SAMPLE"), 4)
    0.2727
    """
    mode = mode.upper()
    if mode not in AP_MODES:
        raise ValueError(f"AP mode must be one of {AP_MODES}, got {mode!r}")
    precision = np.asarray(precision, np.float64)
    recall = np.asarray(recall, np.float64)
    ap = 0.0
    if mode == "SAMPLE":
        for t in np.linspace(0, 1, 11):
            above = precision[recall >= t]
            ap += float(np.amax(above)) if above.size else 0.0
        ap /= 11
    else:
        unique, first = np.unique(recall, return_index=True)
        highest = np.zeros(unique.shape)
        width = np.zeros(unique.shape)
        for i in range(len(unique) - 2, -1, -1):
            highest[i] = max(np.amax(precision[first[i] : first[i + 1]]), highest[i + 1])
            width[i] = unique[i + 1] - unique[i]
        ap = float(np.sum(highest * width))
    return 0.0 if math.isnan(ap) else ap


def _match_class(
    preds: list[Detections],
    gts: list[Detections],
    iou_threshold: float,
    border_pixels: str,
    progress: str | None = None,
    tao: bool = False,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Greedy TAO/VOC matching of one class: (tp flags, confidences) sorted, number of GT.

    ``tao``: TAO's order of predictions (float32 confidences, numpy quicksort: ties are not
    stable) and corners rounded half-to-even, for predictions and ground truth alike.
    """
    image_idx = np.concatenate([np.full(len(p), i) for i, p in enumerate(preds)] or [[]])
    conf = np.concatenate([p.confidence for p in preds] or [[]])
    boxes = np.concatenate([p.xyxy for p in preds] or [np.zeros((0, 4))]).reshape(-1, 4)
    if tao:
        conf = conf.astype(np.float32)
        order = np.argsort(-conf, kind="quicksort")
        boxes = np.round(boxes)
        gts = [g[np.ones(len(g), bool)] for g in gts]
        for g in gts:
            g.xyxy = np.round(g.xyxy)
    else:
        conf = conf.astype(np.float64)
        order = np.argsort(-conf, kind="stable")
    taken = [np.zeros(len(g), bool) for g in gts]
    tp = np.zeros(len(order), bool)
    ranked = enumerate(order)
    if progress:
        from tqdm.auto import tqdm

        ranked = tqdm(ranked, total=len(order), desc=progress, unit="box")
    for rank, k in ranked:
        gt = gts[int(image_idx[k])]
        if not len(gt):
            continue
        overlaps = box_iou(gt.xyxy, boxes[k], border_pixels)
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold and not taken[int(image_idx[k])][best]:
            taken[int(image_idx[k])][best] = True
            tp[rank] = True
    return tp, conf[order], sum(len(g) for g in gts)


def evaluate_detections(
    predictions: Sequence[Detections],
    ground_truth: Sequence[Detections],
    class_names: Sequence[str],
    iou_threshold: float | Mapping[str, float] = 0.5,
    mode: str = "INTEGRATE",
    min_height: float = 4,
    min_width: float = 4,
    max_height: float = NO_LIMIT,
    max_width: float = NO_LIMIT,
    box_limits: Mapping[str, BoxLimits] | None = None,
    border_pixels: str = "half",
    progress: bool = False,
    convention: str = "exact",
) -> EvaluationResult:
    """TAO DetectNet_v2 evaluation of clustered predictions against ground truth, per image.

    Args:
        predictions / ground_truth: one Detections per image, same order and length.
        class_names: classes to evaluate (matched by name, so the two class tables may differ).
        iou_threshold: minimum IoU, one value or per class (TAO's
            ``minimum_detection_ground_truth_overlap``).
        mode: ``"INTEGRATE"`` or ``"SAMPLE"`` (TAO's ``average_precision_mode``).
        min_height/min_width/max_height/max_width: the evaluation_box_config for every class;
            ``box_limits`` overrides it per class.
        border_pixels: ``"half"`` (continuous IoU) or ``"include"`` (TAO's +1 pixel convention).
        progress: show a tqdm bar per class while matching (large validation sets).
        convention: ``"exact"`` or ``"tao"`` (module docstring; ``"tao"`` implies
            ``border_pixels="include"``).
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(
            f"evaluate_detections: {len(predictions)} prediction sets but "
            f"{len(ground_truth)} ground-truth sets (need one of each per image)"
        )
    mode = mode.upper()
    if mode not in AP_MODES:
        raise ValueError(f"AP mode must be one of {AP_MODES}, got {mode!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    tao = convention == "tao"
    if tao:
        border_pixels = "include"
    default_limits = BoxLimits(min_height, min_width, max_height, max_width)
    rows, curves = [], {}
    for k, name in enumerate(class_names):
        limits = (box_limits or {}).get(name, default_limits)
        if isinstance(iou_threshold, Mapping) and name not in iou_threshold:
            raise ValueError(
                f"evaluate_detections: class {name!r} has no IoU threshold "
                f"(minimum_detection_ground_truth_overlap has {sorted(iou_threshold)})"
            )
        thr = iou_threshold[name] if isinstance(iou_threshold, Mapping) else iou_threshold
        preds = [_select(p, name, limits) for p in predictions]
        gts = [_select(g, name, limits) for g in ground_truth]
        label = f"Matching predictions to ground truth, class {k + 1}/{len(class_names)}"
        tp, conf, num_gt = _match_class(
            preds, gts, float(thr), border_pixels, label if progress else None, tao
        )
        ctp = np.cumsum(tp)
        cfp = np.cumsum(~tp)
        precision = ctp / np.maximum(ctp + cfp, 1)
        recall = ctp / num_gt if num_gt else np.zeros_like(ctp, dtype=np.float64)
        curves[name] = PRCurve(precision.astype(np.float64), recall.astype(np.float64), conf)
        if tao:  # TAO's float64 tp / num_gt: its recall levels (0.3 is not 3 * 0.1)
            ap = tao_average_precision(precision, recall, mode) if num_gt else 0.0
        else:
            ap = average_precision(precision, recall, mode) if num_gt else 0.0
        n_tp = int(tp.sum())
        rows.append(
            {
                "class": name,
                "ap": ap,
                "precision": n_tp / len(tp) if len(tp) else 0.0,
                "recall": n_tp / num_gt if num_gt else 0.0,
                "num_gt": num_gt,
                "num_pred": len(tp),
                "tp": n_tp,
                "fp": len(tp) - n_tp,
            }
        )
    table = pd.DataFrame(
        rows, columns=["class", "ap", "precision", "recall", "num_gt", "num_pred", "tp", "fp"]
    )
    return EvaluationResult(
        table,
        curves,
        mode,
        float(np.mean(_thresholds(iou_threshold))),
        extra={"convention": convention},
    )


def _thresholds(iou_threshold: float | Mapping[str, float]) -> list[float]:
    if isinstance(iou_threshold, Mapping):
        return [float(v) for v in iou_threshold.values()] or [0.5]
    return [float(iou_threshold)]


def _select(dets: Detections, name: str, limits: BoxLimits) -> Detections:
    """Boxes of class ``name`` (by name; absent class -> none) inside the box limits."""
    if name not in dets.class_names:
        return dets[np.zeros(len(dets), bool)]
    own = dets.of_class(name)
    return own[limits.mask(own)]


def evaluate_kitti_dirs(
    predictions_dir: str,
    labels_dir: str,
    class_names: Sequence[str] | None = None,
    **kwargs,
) -> EvaluationResult:
    """Evaluate a directory of 16-field KITTI prediction files against 15-field label files.

    Files are paired by name; a label file without predictions counts as no detections.
    ``class_names`` defaults to the classes in the labels. Raises :class:`FileNotFoundError`
    when either folder is missing, or when no prediction file pairs with a label (a
    mistyped folder would otherwise score AP 0).
    """
    from pathlib import Path

    from cvlab.formats.kitti import read_kitti

    labels = sorted(Path(labels_dir).glob("*.txt"))
    if not labels:
        raise FileNotFoundError(f"{labels_dir}: no KITTI label files (*.txt)")
    if not Path(predictions_dir).is_dir():
        raise FileNotFoundError(f"{predictions_dir}: no such predictions folder")
    if not any((Path(predictions_dir) / p.name).exists() for p in labels):
        raise FileNotFoundError(
            f"{predictions_dir}: no prediction file has the name of a label file in {labels_dir}"
        )
    gts = [read_kitti(p) for p in labels]
    if class_names is None:
        class_names = sorted({n for g in gts for n in g.names})
    names = tuple(class_names)
    gts = [read_kitti(p, class_names=names) for p in labels]
    preds = []
    for p in labels:
        pred_path = Path(predictions_dir) / p.name
        preds.append(
            read_kitti(pred_path, class_names=names)
            if pred_path.exists()
            else Detections.empty(names, (0, 0), str(pred_path))
        )
    return evaluate_detections(preds, gts, names, **kwargs)
