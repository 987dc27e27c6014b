"""TAO DetectNet_v2's training-time clustering, rule for rule: what its validation AP is computed on.

TAO clusters the validation predictions of ``detectnet_v2 train`` and ``detectnet_v2 evaluate``
with ``postprocessor/cluster.py``, which differs in small ways from its inference path and from
:func:`cvlab.inference.cluster.cluster_boxes`. :func:`tao_cluster` reproduces it on the cells of
one class of one image, in model-input pixels:

* cells in TAO's row-major order (index ``y * W + x``) with coverage ``> coverage_threshold``;
* ``dbscan``: scikit-learn's DBSCAN rules on ``1 - IoU`` with TAO's ``1e-5`` regulariser and no
  forced zero diagonal (a zero-area cell is not its own neighbour, so it is noise), ``min_samples
  = max(int(x), 1)``, coverage as the sample weight (the core test sums the weights in their own
  dtype, as scikit-learn does); a cluster's box is the coverage-weighted mean (float32 as TAO),
  its confidence the summed coverage; clusters not taller than ``minimum_bounding_box_height``
  or below ``dbscan_confidence_threshold`` are dropped;
* ``nms``: :func:`cvlab.inference.cluster.tao_nms` over the cells;
* the result sorted by descending confidence (stable).

Deliberate differences (docs/tao_fidelity.md): NMS boxes carry their own coverage as confidence
(TAO reads it back from its sorted, zeroed score array: mostly 0); ``dbscan_confidence_threshold``
and ``nms_confidence_threshold`` are used as named (TAO's ``build_clustering_config`` swaps them);
NMS boxes not taller than ``minimum_bounding_box_height`` are dropped (TAO passes the minimum and
ignores it).

Example (16 cells predicting the same 16x16 box, coverage 0.5 each):
    >>> from cvlab.inference.clustering_config import ClassClusteringConfig
    >>> boxes = np.tile(np.float32([0, 0, 16, 16]), (16, 1))
    >>> out, conf = tao_cluster(boxes, np.full(16, 0.5, np.float32), ClassClusteringConfig())
    >>> out.tolist(), conf.tolist()
    ([[0.0, 0.0, 16.0, 16.0]], [8.0])
"""

from __future__ import annotations

import numpy as np

from cvlab.inference.cluster import dbscan_labels_from_core, neighbourhood_weight, tao_nms
from cvlab.inference.clustering_config import ClassClusteringConfig

#: The regulariser TAO's training-time ``compute_iou`` adds to every IoU denominator.
IOU_REGULARIZER = 1e-5


def tao_iou_distance(boxes: np.ndarray) -> np.ndarray:
    """``1 - inter / (union + 1e-5)`` of ``(N, 4)`` xyxy boxes, in the boxes' dtype (TAO's
    ``compute_iou``); the diagonal is ``1 - A / (A + 1e-5)``, 1.0 for a zero-area box."""
    x1, y1, x2, y2 = np.asarray(boxes).T
    iw = np.maximum(0, np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]))
    ih = np.maximum(0, np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]))
    inter = iw * ih
    area = (x2 - x1) * (y2 - y1)
    union = area[:, None] + area[None, :] - inter
    return 1.0 - inter / (union + IOU_REGULARIZER)


def tao_dbscan_labels(
    distance: np.ndarray, weights: np.ndarray, eps: float, min_samples: float
) -> np.ndarray:
    """Labels of ``sklearn.cluster.DBSCAN(eps, min_samples=max(int(min_samples), 1),
    metric='precomputed').fit_predict(distance, sample_weight=weights)``.

    The core test compares each neighbourhood's summed weight with ``min_samples``; scikit-learn
    sums in the weights' dtype (float32 coverages stay float32), so sums close to the limit are
    recomputed exactly that way (``np.sum`` over the neighbours in index order).
    """
    weights = np.asarray(weights)
    limit = max(int(min_samples), 1)
    near = np.asarray(distance) <= eps
    sums = neighbourhood_weight(near, weights)
    core = sums >= limit
    for i in np.flatnonzero(np.abs(sums - limit) < 1e-3):
        core[i] = np.sum(weights[near[i]]) >= limit
    return dbscan_labels_from_core(near, core)


def _sorted(boxes: list[np.ndarray], conf: list) -> tuple[np.ndarray, np.ndarray]:
    order = sorted(range(len(conf)), key=lambda k: -conf[k])  # stable, as TAO's sorted()
    out = np.asarray([boxes[k] for k in order], np.float32).reshape(-1, 4)
    return out, np.asarray([conf[k] for k in order], np.float32)


def tao_cluster(
    boxes: np.ndarray, coverage: np.ndarray, config: ClassClusteringConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One class's cells of one image -> ``(boxes (K, 4) float32, confidence (K,) float32)``.

    Args:
        boxes: ``(H*W, 4)`` decoded cell boxes in row-major cell order (model-input pixels).
        coverage: ``(H*W,)`` coverage of each cell.
        config: ``dbscan`` or ``nms`` (TAO's training-time clustering has no HYBRID).

    Raises:
        ValueError: another algorithm, or mismatched lengths.
    """
    if config.algorithm not in ("dbscan", "nms"):
        raise ValueError(
            f"TAO's training-time clustering is dbscan or nms, got {config.algorithm!r}"
        )
    boxes = np.asarray(boxes).reshape(-1, 4)
    coverage = np.asarray(coverage).reshape(-1)
    if len(boxes) != len(coverage):
        raise ValueError(f"{len(boxes)} boxes but {len(coverage)} coverage values")
    empty = np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    valid = coverage > config.coverage_threshold
    if not valid.any():
        return empty
    # TAO's layouts: (4, H*W)[:, valid].T and (1, H*W)[:, valid].T (they decide the summation
    # order of the float32 reductions below)
    cells = np.ascontiguousarray(boxes.T)[:, valid].T
    cov = coverage[None, :][:, valid].T
    if config.algorithm == "nms":
        keep = tao_nms(cells, cov[:, 0], config.nms_iou_threshold, config.nms_confidence_threshold)
        kept = cells[keep]
        tall = (kept[:, 3] - kept[:, 1]) > config.minimum_bounding_box_height
        return _sorted(list(kept[tall]), list(cov[keep, 0][tall]))
    labels = tao_dbscan_labels(
        tao_iou_distance(cells), cov[:, 0], config.dbscan_eps, config.dbscan_min_samples
    )
    out_boxes, out_conf = [], []
    for label in np.unique(labels[labels >= 0]):
        members = labels == label
        w = cov[members]
        total = np.sum(w)
        mean = np.sum(cells[members] * (w / total), axis=0)
        if mean[3] - mean[1] <= config.minimum_bounding_box_height:
            continue
        if total < config.dbscan_confidence_threshold:
            continue
        out_boxes.append(mean)
        out_conf.append(total)
    return _sorted(out_boxes, out_conf) if out_boxes else empty
