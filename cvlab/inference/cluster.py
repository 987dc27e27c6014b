"""Cluster the candidate boxes of one class into detections: DBSCAN, NMS or both.

* ``dbscan`` — :class:`sklearn.cluster.DBSCAN` with ``metric='precomputed'`` on the ``1 - IoU``
  distance matrix, ``sample_weight`` = coverage. A cluster's box is the coverage-weighted mean
  of its members, its confidence the summed (or mean) coverage; it is kept when the confidence
  is ``>= dbscan_confidence_threshold`` and its height ``> minimum_bounding_box_height``. Noise
  (label -1) is dropped. Points are put in a canonical order first, so the result does not
  depend on the order of the input. By default the labels come from a dense numpy rendering of
  scikit-learn's algorithm (:func:`dbscan_precomputed`) that gives identical labels (tested)
  several times faster, its neighbours found by a sweep over the boxes' x-ranges
  (:func:`neighbour_matrix`, the same matrix bit for bit, tested); ``dbscan_labels(...,
  backend="sklearn")`` runs scikit-learn itself.
* ``dbscan_legacy`` — what the tao-toolkit-triton-apps client does: DBSCAN with the default
  Euclidean metric on the *rows* of the ``1 - IoU`` matrix (IoU regularised by ``+0.01`` in
  the denominator), the float ``min_samples`` compared with summed coverage, confidence kept
  when strictly ``>`` the threshold. See docs/clustering.md.
* ``nms`` — TAO's greedy non-maximum suppression of the cells by coverage (:func:`tao_nms`:
  IoU with ``+1`` pixel widths, suppression when IoU ``>`` ``nms_iou_threshold``, cells kept
  when their coverage is ``>`` ``nms_confidence_threshold``); each kept cell is a box whose
  confidence is its own coverage.
* ``hybrid`` — TAO's DBSCAN + NMS: the ``dbscan`` clusters that pass the confidence and height
  tests give their *member cells*, and one :func:`tao_nms` over all those cells picks the
  output boxes (raw cells, confidence = own coverage). See docs/clustering.md.

Example:
    >>> import numpy as np
    >>> boxes = np.array([[0, 0, 10, 20], [1, 0, 11, 20], [50, 50, 60, 70]], np.float32)
    >>> nms(boxes, np.array([0.9, 0.8, 0.7]), iou_threshold=0.5).tolist()
    [0, 2]
"""

from __future__ import annotations

import numpy as np

from cvlab.inference.clustering_config import ClassClusteringConfig


def iou_matrix(boxes: np.ndarray, regularizer: float = 0.0) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` xyxy boxes, ``(N, N)`` float32 (vectorised numpy).

    With ``regularizer`` 0 a pair with zero union has IoU 0; tao-toolkit-triton-apps adds
    ``0.01`` to every denominator instead.
    """
    x1, y1, x2, y2 = np.ascontiguousarray(np.asarray(boxes, np.float32).reshape(-1, 4).T)
    inter = np.minimum(x2[:, None], x2[None, :])
    inter -= np.maximum(x1[:, None], x1[None, :])
    np.maximum(inter, 0.0, out=inter)
    ih = np.minimum(y2[:, None], y2[None, :])
    ih -= np.maximum(y1[:, None], y1[None, :])
    np.maximum(ih, 0.0, out=ih)
    inter *= ih
    area = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    union = np.add(area[:, None], area[None, :], out=ih)
    union -= inter
    if regularizer:
        union += np.float32(regularizer)
        return np.divide(inter, union, out=inter)
    # a zero union has a zero intersection: 0 / tiny = 0 (cheaper than a masked divide)
    np.maximum(union, np.finfo(np.float32).tiny, out=union)
    return np.divide(inter, union, out=inter)


def iou_distance(boxes: np.ndarray) -> np.ndarray:
    """``1 - IoU`` with a zero diagonal: the precomputed DBSCAN distance matrix."""
    distance = np.subtract(np.float32(1.0), iou_matrix(boxes))
    np.fill_diagonal(distance, 0.0)
    return distance


#: below this many points :func:`neighbour_matrix` computes every pair (no sweep to set up)
SWEEP_MIN_POINTS = 48
#: the sweep is used while its candidate pairs are at most this fraction of all N x N pairs
SWEEP_MAX_PAIR_FRACTION = 0.2


def neighbour_matrix(boxes: np.ndarray, eps: float) -> np.ndarray:
    """``iou_distance(boxes) <= eps`` (bool ``(N, N)``), bit for bit, without the dense matrix.

    Two boxes whose x-ranges do not overlap have IoU 0, so distance 1, never within an ``eps``
    below 1: only the pairs a sweep over the sorted ``x1`` finds (``x1`` of the later box below
    ``x2`` of the earlier) get an IoU, computed with the same float32 operations as
    :func:`iou_matrix` (elementwise, so the same values). The dense matrix is used instead for
    few points, an ``eps`` of 1 or more (every pair may be a neighbour), non-finite boxes, or
    when the candidate pairs are most of the matrix (one big overlapping blob). Several times
    faster on DetectNet_v2 grids, where a few hundred cells above the coverage threshold form
    compact objects and scattered noise (``cvlab bench client``).

    >>> b = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [30, 0, 40, 10]], np.float32)
    >>> neighbour_matrix(b, 0.3).astype(int).tolist()
    [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    """
    b = np.ascontiguousarray(np.asarray(boxes, np.float32).reshape(-1, 4))
    n = len(b)
    far = np.ones(1, np.float32) <= eps  # the distance of two boxes that do not overlap
    if n < SWEEP_MIN_POINTS or far[0] or not np.isfinite(b).all():
        return iou_distance(b) <= eps
    x1, y1, x2, y2 = np.ascontiguousarray(b.T)
    by_x1 = np.argsort(x1, kind="stable")
    sorted_x1 = x1[by_x1]
    # sorted position i pairs with the positions after it whose x1 is below its own x2
    end = np.searchsorted(sorted_x1, x2[by_x1], side="left")
    count = np.maximum(end - np.arange(1, n + 1), 0)
    total = int(count.sum())
    if total > SWEEP_MAX_PAIR_FRACTION * n * n:
        return iou_distance(b) <= eps
    first = np.repeat(np.arange(n), count)
    second = np.arange(total) - np.repeat(np.cumsum(count) - count, count) + first + 1
    i, j = by_x1[first], by_x1[second]
    # iou_matrix's operations, pair by pair
    inter = np.minimum(x2[i], x2[j])
    inter -= np.maximum(x1[i], x1[j])
    np.maximum(inter, 0.0, out=inter)
    ih = np.minimum(y2[i], y2[j])
    ih -= np.maximum(y1[i], y1[j])
    np.maximum(ih, 0.0, out=ih)
    inter *= ih
    area = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    union = np.add(area[i], area[j], out=ih)
    union -= inter
    np.maximum(union, np.finfo(np.float32).tiny, out=union)
    iou = np.divide(inter, union, out=inter)
    close = np.subtract(np.float32(1.0), iou) <= eps
    near = np.zeros((n, n), bool)
    i, j = i[close], j[close]
    near[i, j] = True
    near[j, i] = True
    np.fill_diagonal(near, np.zeros(1, np.float32) <= eps)  # iou_distance's zero diagonal
    return near


def connected_labels(adjacency: np.ndarray) -> np.ndarray:
    """Component label of every node of a symmetric boolean adjacency matrix (self-loops set).

    Min-label propagation with pointer jumping: each round takes the smallest label among a
    node's neighbours, then follows labels to their roots. Each label is the smallest node
    index of its component. Dense numpy; a handful of rounds for the grids DetectNet_v2 yields.
    """
    n = len(adjacency)
    labels = np.arange(n)
    order: np.ndarray | None = None
    while True:
        # smallest neighbour label = label of the first neighbour with columns in label order
        # (a boolean argmax: much cheaper than a masked integer minimum)
        if order is None:
            new = labels[adjacency.argmax(axis=1)]
        else:
            new = labels[order[adjacency[:, order].argmax(axis=1)]]
        np.minimum(new, labels, out=new)
        while True:  # pointer jumping
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, labels):
            return labels
        labels = new
        order = np.argsort(labels, kind="stable")


def dbscan_precomputed(
    distance: np.ndarray, weights: np.ndarray, eps: float, min_samples: float
) -> np.ndarray:
    """Labels identical to ``sklearn.cluster.DBSCAN(eps, min_samples, metric='precomputed')
    .fit_predict(distance, sample_weight=weights)``, computed with dense numpy and scipy.

    Same rules as scikit-learn: neighbours are points at distance ``<= eps``; a point is core
    when the summed weight of its neighbourhood (itself included) is ``>= min_samples``;
    clusters are the connected groups of core points, numbered by their first core point; a
    border point joins the earliest-numbered cluster among its core neighbours; the rest is
    noise (-1). Several times faster than scikit-learn for a few hundred points, which keeps
    decode+cluster within its 2 ms budget; the tests check it against scikit-learn.
    """
    return dbscan_from_neighbours(distance <= eps, weights, min_samples)


def dbscan_from_neighbours(near: np.ndarray, weights: np.ndarray, min_samples: float) -> np.ndarray:
    """DBSCAN labels from the neighbourhood matrix (``distance <= eps``): a point is core when
    the summed weight of its neighbourhood reaches ``min_samples``
    (:func:`dbscan_labels_from_core` does the rest).

    >>> near = np.array([[True, True, False], [True, True, False], [False, False, True]])
    >>> dbscan_from_neighbours(near, np.array([0.5, 0.5, 0.4]), 1).tolist()
    [0, 0, -1]
    """
    core = neighbourhood_weight(near, weights) >= min_samples
    return dbscan_labels_from_core(near, core)


def neighbourhood_weight(near: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Summed weight (float64) of each point's neighbours: row sums of ``near * weights``.

    ``einsum`` rather than a matrix product: no BLAS call, so no BLAS worker threads that
    spin after every frame and take a core from the server on a small machine (and it is
    faster for these sizes, as the boolean matrix is not cast to float first).

    >>> neighbourhood_weight(np.array([[True, True], [False, True]]), np.array([0.5, 0.25]))
    array([0.75, 0.25])
    """
    return np.einsum("ij,j->i", near, np.asarray(weights, np.float64))


def dbscan_labels_from_core(near: np.ndarray, core: np.ndarray) -> np.ndarray:
    """DBSCAN labels from the neighbourhood matrix (``distance <= eps``) and the core mask.

    scikit-learn's rules: clusters are the connected groups of core points, numbered by their
    first core point; a border point joins the earliest-numbered cluster among its core
    neighbours; the rest is noise (-1). A core point always belongs to its own cluster, even
    when its distance to itself exceeds ``eps`` (a degenerate box under a regularised IoU).
    """
    n = len(near)
    labels = np.full(n, -1, np.int64)
    if n == 0 or not core.any():
        return labels
    core_idx = np.flatnonzero(core)
    # component of each core point = its smallest core index; numbering clusters by that
    # index is scikit-learn's visiting order
    adjacency = near.take(core_idx, axis=0).take(core_idx, axis=1)
    np.fill_diagonal(adjacency, True)
    root = connected_labels(adjacency)
    _, labels[core_idx] = np.unique(root, return_inverse=True)
    border = np.flatnonzero((near & core).any(axis=1) & ~core)
    if len(border):
        # first core neighbour in cluster-number order (boolean argmax over sorted columns)
        by_label = core_idx[np.argsort(labels[core_idx], kind="stable")]
        first = near.take(border, axis=0).take(by_label, axis=1).argmax(axis=1)
        labels[border] = labels[by_label[first]]
    return labels


def canonical_order(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices sorting points by (score desc, x1, y1, x2, y2): independent of input order."""
    b = np.asarray(boxes)
    return np.lexsort((b[:, 3], b[:, 2], b[:, 1], b[:, 0], -np.asarray(scores)))


def _aggregate(
    boxes: np.ndarray, weights: np.ndarray, labels: np.ndarray, confidence_mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Coverage-weighted mean box and summed/mean coverage of every cluster label >= 0."""
    member = labels >= 0
    if not member.any():
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    lab = labels[member]
    w = weights[member].astype(np.float64)
    b = boxes[member].astype(np.float64)
    k = int(lab.max()) + 1
    total = np.bincount(lab, weights=w, minlength=k)
    count = np.bincount(lab, minlength=k)
    sums = np.stack([np.bincount(lab, weights=w * b[:, i], minlength=k) for i in range(4)], 1)
    present = count > 0
    total, count, sums = total[present], count[present], sums[present]
    safe = np.where(total > 0, total, 1.0)
    mean_box = sums / safe[:, None]
    conf = total if confidence_mode == "sum" else total / count
    return mean_box.astype(np.float32), conf.astype(np.float32)


def dbscan_labels(
    boxes: np.ndarray,
    weights: np.ndarray,
    eps: float,
    min_samples: int,
    backend: str = "numpy",
) -> np.ndarray:
    """DBSCAN labels on the precomputed ``1 - IoU`` distances (self-distance 0).

    ``backend="sklearn"`` runs :class:`sklearn.cluster.DBSCAN` (``metric='precomputed'``);
    ``"numpy"`` (default) runs :func:`dbscan_precomputed`'s rules on the neighbours of
    :func:`neighbour_matrix`, which gives the same labels faster.
    """
    if backend == "sklearn":
        from sklearn.cluster import DBSCAN

        return DBSCAN(eps=eps, min_samples=int(min_samples), metric="precomputed").fit_predict(
            iou_distance(boxes), sample_weight=weights
        )
    if backend != "numpy":
        raise ValueError(f"backend must be 'numpy' or 'sklearn', got {backend!r}")
    return dbscan_from_neighbours(neighbour_matrix(boxes, eps), weights, int(min_samples))


def dbscan_legacy_labels(
    boxes: np.ndarray, weights: np.ndarray, eps: float, min_samples: float
) -> np.ndarray:
    """DBSCAN as tao-toolkit-triton-apps runs it: Euclidean distance between rows of 1 - IoU.

    The reference calls ``DBSCAN(eps, min_samples).fit_predict(1 - IoU, sample_weight=coverage)``
    with the default Euclidean metric, the IoU regularised by ``+0.01`` and a float
    ``min_samples`` (e.g. 0.05), meaning "summed coverage of the neighbourhood >= 0.05". Current
    scikit-learn accepts only integer ``min_samples``, so the same rules run in
    :func:`dbscan_precomputed` on the exact (``scipy.spatial.distance.cdist``) Euclidean
    distances between the rows; the tests check this against scikit-learn's own Euclidean DBSCAN.
    """
    from scipy.spatial.distance import cdist

    features = (1.0 - iou_matrix(boxes, regularizer=0.01)).astype(np.float64)  # float32 as there
    return dbscan_precomputed(cdist(features, features), weights, eps, float(min_samples))


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
    top_k: int | None = None,
) -> np.ndarray:
    """Greedy NMS; indices of kept boxes, highest score first.

    Boxes with score below ``score_threshold`` are ignored; a box is suppressed when its IoU with
    an already kept box is above ``iou_threshold``; at most ``top_k`` boxes are kept. Ties in score
    are broken by box coordinates, so the kept set does not depend on input order.
    """
    scores = np.asarray(scores)
    candidates = np.flatnonzero(scores >= score_threshold)
    if candidates.size == 0:
        return candidates
    order = candidates[canonical_order(boxes[candidates], scores[candidates])]
    iou = iou_matrix(boxes[order])
    suppressed = np.zeros(len(order), bool)
    keep: list[int] = []
    limit = len(order) if top_k is None else int(top_k)
    for i in range(len(order)):
        if len(keep) >= limit:
            break
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[np.asarray(keep, dtype=np.int64)]


def tao_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    score_threshold: float = 0.0,
) -> np.ndarray:
    """TAO DetectNet_v2's NMS (``get_keep_indices``, "original NMS"); kept indices in its order.

    The rule of ``postprocessor/utilities.py``: a selection sort fused with suppression. Step
    ``i`` brings the first highest score of the rows after ``i`` forward when it is strictly
    higher than row ``i``'s, then zeroes the score of every later row whose IoU with row ``i``
    is ``> iou_threshold``. The IoU counts border pixels (``(x2 - x1 + 1) * (y2 - y1 + 1)``
    areas, in the boxes' dtype; intersections in float64). Rows whose final score is
    ``> score_threshold`` are kept, highest first; equal scores keep TAO's swap order. Stops as
    soon as no remaining score can pass. ``scores`` is not modified (TAO sorts and zeroes its
    input in place; see docs/tao_fidelity.md for what that does to its confidences).

    >>> b = np.array([[0, 0, 9, 9], [1, 1, 10, 10], [20, 20, 29, 29]], np.float32)
    >>> tao_nms(b, np.array([0.5, 0.9, 0.7], np.float32), 0.3).tolist()
    [1, 2]
    """
    b = np.asarray(boxes)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4), got {b.shape}")
    if not np.issubdtype(b.dtype, np.floating):
        b = b.astype(np.float64)
    s = np.array(scores, copy=True).reshape(-1)
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)
    if len(s) != len(b):
        raise ValueError(f"{len(b)} boxes but {len(s)} scores")
    n = len(b)
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    c = b.astype(np.float64)
    threshold = s.dtype.type(score_threshold)  # compared in the scores' dtype, as TAO's arrays
    order = np.arange(n)
    for i in range(n):
        if i + 1 < n:
            m = i + 1 + int(np.argmax(s[i + 1 :]))
            if s[i] < s[m]:
                order[[i, m]] = order[[m, i]]
                s[[i, m]] = s[[m, i]]
        if not s[i] > threshold:  # row i holds the highest remaining score
            return order[:i].copy()
        k, rest = order[i], order[i + 1 :]
        iw = np.minimum(c[k, 2], c[rest, 2]) - np.maximum(c[k, 0], c[rest, 0]) + 1
        ih = np.minimum(c[k, 3], c[rest, 3]) - np.maximum(c[k, 1], c[rest, 1]) + 1
        inter = np.maximum(0.0, iw) * np.maximum(0.0, ih)
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = inter / ((area[k] + area[rest]) - inter)
        s[i + 1 :][overlap > iou_threshold] = 0
    return order


def _dbscan_stage(
    boxes: np.ndarray, cov: np.ndarray, cfg: ClassClusteringConfig, legacy: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """DBSCAN and the cluster tests: ``(boxes, cov, labels, cluster boxes, confidences, kept)``.

    ``boxes``/``cov`` come back in the order the labels refer to (canonical unless legacy);
    cluster ``j`` has label ``j``; ``kept`` marks the clusters passing confidence and height.
    """
    if legacy:
        labels = dbscan_legacy_labels(boxes, cov, cfg.dbscan_eps, cfg.effective_legacy_min_samples)
    else:
        order = canonical_order(boxes, cov)
        boxes, cov = boxes[order], cov[order]
        labels = dbscan_labels(boxes, cov, cfg.dbscan_eps, cfg.dbscan_min_samples)
    out_boxes, conf = _aggregate(boxes, cov, labels, cfg.confidence_mode)
    height = out_boxes[:, 3] - out_boxes[:, 1]
    if legacy:
        kept = (conf > cfg.dbscan_confidence_threshold) & (height > cfg.minimum_bounding_box_height)
    else:
        kept = (conf >= cfg.dbscan_confidence_threshold) & (
            height > cfg.minimum_bounding_box_height
        )
    return boxes, cov, labels, out_boxes, conf, kept


def _nms_cells(
    boxes: np.ndarray, cov: np.ndarray, cfg: ClassClusteringConfig
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tao_nms` over cells; kept cells taller than the minimum, own coverage, top k."""
    keep = tao_nms(boxes, cov, cfg.nms_iou_threshold, cfg.nms_confidence_threshold)
    out_boxes, conf = boxes[keep], cov[keep]
    tall = (out_boxes[:, 3] - out_boxes[:, 1]) > cfg.minimum_bounding_box_height
    return out_boxes[tall][: cfg.nms_top_k], conf[tall][: cfg.nms_top_k]


def hybrid_candidates(labels: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Indices of the member cells of the kept clusters, by cluster label, then cell order.

    >>> hybrid_candidates(np.array([1, 0, -1, 1, 0]), np.array([True, True])).tolist()
    [1, 4, 0, 3]
    """
    members = np.flatnonzero(np.isin(labels, np.flatnonzero(kept)))
    return members[np.argsort(labels[members], kind="stable")]


def cluster_boxes(
    boxes: np.ndarray, coverage: np.ndarray, config: ClassClusteringConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate cells of one class -> ``(boxes (K, 4) float32, confidence (K,) float32)``.

    Cells with coverage strictly above ``config.coverage_threshold`` take part; the output is
    sorted by descending confidence (except ``dbscan_legacy``, which keeps the reference order).
    Cells are first put in :func:`canonical_order` (except ``dbscan_legacy``), so the result
    does not depend on the order of the input.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    coverage = np.asarray(coverage, np.float32).reshape(-1)
    if len(boxes) != len(coverage):
        raise ValueError(f"{len(boxes)} boxes but {len(coverage)} coverage values")
    sel = coverage > config.coverage_threshold
    boxes, coverage = boxes[sel], coverage[sel]
    empty = np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    if len(boxes) == 0:
        return empty
    algorithm = config.algorithm
    if algorithm == "nms":
        order = canonical_order(boxes, coverage)
        out_boxes, conf = _nms_cells(boxes[order], coverage[order], config)
    elif algorithm in ("dbscan", "dbscan_legacy", "hybrid"):
        legacy = algorithm == "dbscan_legacy"
        cells, cell_cov, labels, out_boxes, conf, kept = _dbscan_stage(
            boxes, coverage, config, legacy
        )
        if algorithm == "hybrid":
            cand = hybrid_candidates(labels, kept)
            out_boxes, conf = _nms_cells(cells[cand], cell_cov[cand], config)
        else:
            out_boxes, conf = out_boxes[kept], conf[kept]
            if not legacy:
                order = canonical_order(out_boxes, conf)
                out_boxes, conf = out_boxes[order], conf[order]
    else:
        raise ValueError(f"unknown clustering algorithm {algorithm!r}")
    if config.output_confidence_threshold > 0:
        keep_mask = conf >= config.output_confidence_threshold
        out_boxes, conf = out_boxes[keep_mask], conf[keep_mask]
    return out_boxes.astype(np.float32), conf.astype(np.float32)
