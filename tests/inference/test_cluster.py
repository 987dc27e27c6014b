"""Clustering: DBSCAN (vs scikit-learn), legacy mode, NMS, hybrid; hypothesis properties."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.cluster import DBSCAN

from cvlab.inference import cluster as cluster_module
from cvlab.inference.cluster import (
    cluster_boxes,
    connected_labels,
    dbscan_labels,
    dbscan_legacy_labels,
    dbscan_precomputed,
    iou_distance,
    iou_matrix,
    neighbour_matrix,
    nms,
    tao_nms,
)
from cvlab.inference.clustering_config import ClassClusteringConfig
from cvlab.inference.decode import decode_detectnet

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def box_sets(draw, max_n: int = 40):
    """Boxes in a 200x120 frame around a few centres (so clusters form), plus weights."""
    n = draw(st.integers(1, max_n))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    centres = rng.uniform([20, 20], [180, 100], size=(int(rng.integers(1, 4)), 2))
    pick = centres[rng.integers(0, len(centres), n)]
    wh = rng.uniform(5, 40, size=(n, 2))
    jitter = rng.normal(0, 3, size=(n, 2))
    c = pick + jitter
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1)
    boxes = np.clip(boxes, [0, 0, 0, 0], [200, 120, 200, 120]).astype(np.float32)
    weights = rng.uniform(0.01, 1.0, n).astype(np.float32)
    return boxes, weights


def _config(**kw) -> ClassClusteringConfig:
    base = dict(coverage_threshold=0.0, minimum_bounding_box_height=0, dbscan_eps=0.3)
    base.update(kw)
    return ClassClusteringConfig(**base)


def test_iou_by_hand() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 20, 20]], np.float32)
    iou = iou_matrix(boxes)
    # overlap 5x10 = 50, union 100+100-50 = 150
    np.testing.assert_allclose(iou[0, 1], 50 / 150, rtol=1e-6)
    assert iou[2, 2] == 0.0 and iou[0, 2] == 0.0  # zero-area box: no NaN
    np.testing.assert_allclose(iou_matrix(boxes, 0.01)[0, 0], 100 / 100.01, rtol=1e-6)
    assert np.all(np.diag(iou_distance(boxes)) == 0)


def test_connected_labels_chain() -> None:
    adj = np.eye(6, dtype=bool)
    for a, b in [(0, 3), (3, 5), (1, 4)]:
        adj[a, b] = adj[b, a] = True
    assert connected_labels(adj).tolist() == [0, 1, 2, 0, 1, 0]


@SETTINGS
@given(box_sets(), st.floats(0.05, 0.95), st.integers(1, 3))
def test_numpy_dbscan_matches_sklearn(data, eps, min_samples) -> None:
    boxes, weights = data
    distance = iou_distance(boxes)
    expected = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(
        distance, sample_weight=weights
    )
    np.testing.assert_array_equal(dbscan_precomputed(distance, weights, eps, min_samples), expected)
    np.testing.assert_array_equal(
        dbscan_labels(boxes, weights, eps, min_samples, backend="sklearn"), expected
    )


def test_dbscan_golden_weighted_mean_sum_and_mean() -> None:
    boxes = np.array(
        [[0, 0, 10, 20], [1, 0, 11, 20], [100, 100, 110, 140], [101, 100, 111, 140]], np.float32
    )
    cov = np.array([0.9, 0.3, 0.5, 0.5], np.float32)
    out, conf = cluster_boxes(boxes, cov, _config(dbscan_confidence_threshold=0.5))
    # IoU within a pair = 9*20 / (200+200-180) = 0.818 -> distance 0.18 <= eps 0.3.
    # cluster A: x1 = (0*.9 + 1*.3)/1.2 = 0.25, x2 = 10.25, confidence 1.2;
    # cluster B: x1 = (100*.5 + 101*.5)/1.0 = 100.5, confidence 1.0. Sorted by confidence.
    np.testing.assert_allclose(out, [[0.25, 0, 10.25, 20], [100.5, 100, 110.5, 140]], rtol=1e-6)
    np.testing.assert_allclose(conf, [1.2, 1.0], rtol=1e-6)
    _, conf_mean = cluster_boxes(
        boxes, cov, _config(dbscan_confidence_threshold=0.0, confidence_mode="mean")
    )
    np.testing.assert_allclose(conf_mean, [0.6, 0.5], rtol=1e-6)


def test_dbscan_thresholds_are_ge_confidence_and_strict_height() -> None:
    boxes = np.array([[0, 0, 10, 20], [0, 0, 10, 20]], np.float32)
    cov = np.array([0.5, 0.5], np.float32)
    assert len(cluster_boxes(boxes, cov, _config(dbscan_confidence_threshold=1.0))[0]) == 1
    assert len(cluster_boxes(boxes, cov, _config(dbscan_confidence_threshold=1.01))[0]) == 0
    assert len(cluster_boxes(boxes, cov, _config(minimum_bounding_box_height=20))[0]) == 0
    assert len(cluster_boxes(boxes, cov, _config(minimum_bounding_box_height=19))[0]) == 1
    # coverage threshold is strict: cells at exactly the threshold are dropped
    assert len(cluster_boxes(boxes, cov, _config(coverage_threshold=0.5))[0]) == 0


def test_noise_is_dropped() -> None:
    # min_samples 1 with weights: a lone cell of coverage 0.3 is not core -> noise
    boxes = np.array([[0, 0, 10, 20], [0, 0, 10, 20], [50, 50, 60, 80]], np.float32)
    cov = np.array([0.7, 0.7, 0.3], np.float32)
    out, conf = cluster_boxes(boxes, cov, _config(dbscan_confidence_threshold=0.0))
    np.testing.assert_allclose(out, [[0, 0, 10, 20]])
    np.testing.assert_allclose(conf, [1.4], rtol=1e-6)


def test_legacy_float_min_samples_warns_and_maps() -> None:
    with pytest.warns(UserWarning, match="legacy float"):
        cfg = ClassClusteringConfig(dbscan_min_samples=0.05)
    assert cfg.dbscan_min_samples == 1 and cfg.legacy_min_samples == 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ClassClusteringConfig(dbscan_min_samples=3.0).dbscan_min_samples == 3


@SETTINGS
@given(box_sets(), st.sampled_from([0.05, 0.5, 1.0, 2.0]))
def test_legacy_dbscan_is_euclidean_rows_with_float_min_samples(data, min_samples) -> None:
    boxes, weights = data
    features = 1.0 - iou_matrix(boxes, regularizer=0.01)  # float32, as the reference has it
    # independent route: scikit-learn's Euclidean DBSCAN on the rows, as the reference runs it;
    # the float min_samples test "sum(w) >= m" is written as "sum(w / m) >= 1"
    expected = DBSCAN(eps=0.3, min_samples=1).fit_predict(
        features, sample_weight=weights.astype(np.float64) / min_samples
    )
    np.testing.assert_array_equal(dbscan_legacy_labels(boxes, weights, 0.3, min_samples), expected)


@SETTINGS
@given(box_sets(), st.floats(0.1, 0.9), st.floats(0.0, 0.5), st.integers(1, 10))
def test_nms_never_keeps_overlapping_pairs(data, iou_thr, score_thr, top_k) -> None:
    boxes, scores = data
    keep = nms(boxes, scores, iou_thr, score_thr, top_k)
    assert len(keep) <= top_k and len(set(keep.tolist())) == len(keep)
    assert np.all(scores[keep] >= score_thr)
    assert np.all(np.diff(scores[keep]) <= 0)
    iou = iou_matrix(boxes[keep])
    np.fill_diagonal(iou, 0)
    assert np.all(iou <= iou_thr)
    if len(keep) < top_k:  # every dropped candidate overlaps a kept box
        dropped = np.setdiff1d(np.flatnonzero(scores >= score_thr), keep)
        if len(dropped):
            assert np.all(iou_matrix(boxes)[np.ix_(dropped, keep)].max(1) > iou_thr)


def test_nms_by_hand() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.5, 0.9, 0.3, 0.05])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.5, top_k=1).tolist() == [1]
    assert nms(boxes, scores, 0.5, score_threshold=0.4).tolist() == [1]


@SETTINGS
@given(box_sets(), st.sampled_from(["dbscan", "nms", "hybrid"]), st.integers(0, 2**31 - 1))
def test_clustering_is_permutation_invariant(data, algorithm, seed) -> None:
    boxes, cov = data
    cfg = _config(algorithm=algorithm, dbscan_confidence_threshold=0.1, nms_iou_threshold=0.4)
    perm = np.random.default_rng(seed).permutation(len(boxes))
    a_boxes, a_conf = cluster_boxes(boxes, cov, cfg)
    b_boxes, b_conf = cluster_boxes(boxes[perm], cov[perm], cfg)
    np.testing.assert_allclose(a_boxes, b_boxes, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(a_conf, b_conf, rtol=1e-5)


@SETTINGS
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from(["dbscan", "nms", "hybrid", "dbscan_legacy"]),
    st.tuples(st.integers(1, 4000), st.integers(1, 3000)),
)
def test_boxes_stay_inside_the_frame(seed, algorithm, image_size) -> None:
    rng = np.random.default_rng(seed)
    cov = rng.random((1, 6, 8)).astype(np.float32)
    bbox = rng.normal(0, 3, (4, 6, 8)).astype(np.float32)
    grid = decode_detectnet(cov, bbox, model_size=(128, 96), image_size=image_size)
    out, conf = cluster_boxes(grid.boxes[0], grid.coverage[0], _config(algorithm=algorithm))
    w, h = image_size
    tol = 1e-3 * max(w, h)
    assert np.all(out[:, [0, 2]] >= -tol) and np.all(out[:, [0, 2]] <= w + tol)
    assert np.all(out[:, [1, 3]] >= -tol) and np.all(out[:, [1, 3]] <= h + tol)
    assert np.all(np.isfinite(conf))


def test_hybrid_is_nms_over_the_member_cells_of_kept_clusters() -> None:
    # two tight clusters whose boxes overlap with IoU 0.6: DBSCAN (eps 0.1) keeps both; TAO's
    # hybrid runs NMS at 0.5 over their five member cells and returns the best cell, with its
    # own coverage as confidence (not the cluster's 2.7)
    a = np.array([[0, 0, 100, 100]] * 3, np.float32)
    b = np.array([[25, 0, 125, 100]] * 2, np.float32)
    boxes, cov = np.concatenate([a, b]), np.array([0.9, 0.8, 0.7, 0.95, 0.6], np.float32)
    cfg = dict(dbscan_eps=0.1, dbscan_confidence_threshold=0.5, nms_iou_threshold=0.5)
    out, conf = cluster_boxes(boxes, cov, _config(algorithm="dbscan", **cfg))
    np.testing.assert_allclose(conf, [2.4, 1.55], rtol=1e-6)
    out, conf = cluster_boxes(boxes, cov, _config(algorithm="hybrid", **cfg))
    np.testing.assert_allclose(out, [[25, 0, 125, 100]])
    np.testing.assert_allclose(conf, [0.95], rtol=1e-6)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "clustering.md").read_text()
    assert "**(25, 0, 125, 100)**, confidence **0.95**" in doc and "2.4 and 1.55" in doc


def test_hybrid_drops_cells_of_rejected_clusters_and_filters_cells_by_coverage() -> None:
    # cluster A (3 cells, sum 2.1) passes dbscan_confidence_threshold 2.0, cluster B (sum 1.2)
    # does not: its strong cell (0.9) must not come back through NMS. Inside A the cells do not
    # overlap enough to suppress each other (nms_iou_threshold 0.9), so NMS keeps every A cell
    # above nms_confidence_threshold 0.65: 0.8 and 0.7, not 0.6.
    a = np.array([[0, 0, 100, 100], [10, 0, 110, 100], [20, 0, 120, 100]], np.float32)
    b = np.array([[300, 0, 400, 100], [302, 0, 402, 100]], np.float32)
    boxes = np.concatenate([a, b])
    cov = np.array([0.8, 0.7, 0.6, 0.9, 0.3], np.float32)
    cfg = _config(
        algorithm="hybrid",
        dbscan_eps=0.2,
        dbscan_confidence_threshold=2.0,
        nms_iou_threshold=0.9,
        nms_confidence_threshold=0.65,
    )
    out, conf = cluster_boxes(boxes, cov, cfg)
    np.testing.assert_allclose(out, a[:2])
    np.testing.assert_allclose(conf, [0.8, 0.7], rtol=1e-6)


def test_nms_algorithm_uses_tao_rules() -> None:
    # +1 IoU: [0,0,9,9] vs [5,0,14,9] overlap 5*10 / (100 + 100 - 50) = 1/3 > 0.3 -> suppressed
    # (continuous IoU would be 4*9 / (81 + 81 - 36) = 0.286 -> kept); coverage must be > the
    # threshold (0.5 itself is dropped); the kept cell keeps its own coverage
    boxes = np.array([[0, 0, 9, 9], [5, 0, 14, 9], [50, 0, 59, 9]], np.float32)
    cov = np.array([0.9, 0.8, 0.5], np.float32)
    cfg = _config(algorithm="nms", nms_iou_threshold=0.3, nms_confidence_threshold=0.5)
    out, conf = cluster_boxes(boxes, cov, cfg)
    np.testing.assert_allclose(out, boxes[:1])
    np.testing.assert_allclose(conf, [0.9], rtol=1e-6)
    # minimum_bounding_box_height drops short kept boxes after NMS (TAO passes it and ignores it)
    out, _ = cluster_boxes(boxes, cov, dataclasses.replace(cfg, minimum_bounding_box_height=10))
    assert len(out) == 0


def test_tao_nms_selection_order_and_stop() -> None:
    boxes = np.array([[0, 0, 9, 9], [1, 1, 10, 10], [20, 20, 29, 29], [21, 21, 30, 30]], np.float32)
    scores = np.array([0.5, 0.9, 0.7, 0.7], np.float32)
    assert tao_nms(boxes, scores, 0.3).tolist() == [1, 2]
    assert tao_nms(boxes, scores, 0.3, score_threshold=0.7).tolist() == [1]  # strictly above
    assert tao_nms(boxes, scores, 1.0).tolist() == [1, 2, 3, 0]  # ties keep TAO's swap order
    assert scores.tolist() == pytest.approx([0.5, 0.9, 0.7, 0.7])  # the input is not changed
    assert tao_nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3).size == 0
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        tao_nms(boxes[:2], scores[:1], 0.3)


@SETTINGS
@given(box_sets(), st.floats(0.0, 0.9), st.floats(0.0, 0.6))
def test_tao_nms_never_keeps_overlapping_pairs(data, iou_thr, score_thr) -> None:
    boxes, scores = data
    keep = tao_nms(boxes, scores, iou_thr, score_thr)
    assert np.all(scores[keep] > np.float32(score_thr)) and np.all(np.diff(scores[keep]) <= 0)
    x1, y1, x2, y2 = boxes[keep].astype(np.float64).T
    iw = np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1) + 1
    ih = np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1) + 1
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    iou = inter / (area[:, None] + area - inter)
    np.fill_diagonal(iou, 0)
    assert np.all(iou <= iou_thr + 1e-6)


def test_empty_input() -> None:
    out, conf = cluster_boxes(np.zeros((0, 4)), np.zeros(0), _config())
    assert out.shape == (0, 4) and conf.shape == (0,)
    with pytest.raises(ValueError, match="2 boxes but 1 coverage"):
        cluster_boxes(np.zeros((2, 4)), np.zeros(1), _config())


# --- issue 23: the sweep that finds DBSCAN's neighbours gives the dense matrix, bit for bit ---


def _dense_near(boxes: np.ndarray, eps: float) -> np.ndarray:
    return iou_distance(boxes) <= eps


@pytest.fixture
def always_sweep(monkeypatch):
    """The sweep for every input (no dense fallback for few points or many pairs)."""
    monkeypatch.setattr(cluster_module, "SWEEP_MIN_POINTS", 2)
    monkeypatch.setattr(cluster_module, "SWEEP_MAX_PAIR_FRACTION", 1.0)


@st.composite
def adversarial_boxes(draw):
    """Boxes on a coarse lattice, so that x1 ties, edges touch exactly (zero-width
    intersections), boxes repeat, some are empty or inverted, and IoUs land on the
    threshold; plus scattered boxes at random float32 positions."""
    n = draw(st.integers(2, 120))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    step = draw(st.sampled_from([1.0, 2.5, 10.0]))
    lattice = rng.integers(0, 12, (n, 4)).astype(np.float32) * np.float32(step)
    lattice[:, 2:] = np.maximum(lattice[:, 2:], lattice[:, :2])  # x2 >= x1, y2 >= y1 mostly
    inverted = rng.random(n) < 0.05
    lattice[inverted, 2] = lattice[inverted, 0] - 1  # a few inverted (empty) boxes
    scattered = rng.random(n) < draw(st.floats(0, 1))
    xy = rng.uniform(0, 100, (n, 2)).astype(np.float32)
    wh = rng.exponential(15, (n, 2)).astype(np.float32)
    lattice[scattered] = np.concatenate([xy, xy + wh], 1)[scattered]
    lattice[rng.random(n) < 0.05] = -0.0  # negative zeros sort with the zeros
    if n > 3:
        lattice[n // 2] = lattice[0]  # an exact duplicate
    return lattice


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # the fixture only sets two constants
@given(
    adversarial_boxes(),
    st.sampled_from([0.0, 1e-7, 0.1, 0.3, 0.5, 2 / 3, 0.7, 0.999, 0.99999999, 1.0, 1.5, -0.1]),
)
def test_neighbour_sweep_is_the_dense_matrix_on_adversarial_boxes(always_sweep, boxes, eps):
    np.testing.assert_array_equal(neighbour_matrix(boxes, eps), _dense_near(boxes, eps))


def test_neighbour_sweep_compares_in_float32_as_the_dense_matrix(always_sweep) -> None:
    """A pair whose float32 IoU is 0.7 to the bit: the float32 distance equals eps 0.3 (a
    neighbour), while a float64 distance would be just above it (not a neighbour)."""
    a = [0.0, 0.0, 100.0, 100.0]
    shift = 17.647057
    pair = np.array([a, [shift, 0.0, 100 + shift, 100.0]], np.float32)
    far_away = pair + np.float32(1000)
    boxes = np.concatenate([pair, far_away])
    assert iou_matrix(pair)[0, 1] == np.float32(0.7)
    assert 1.0 - float(iou_matrix(pair)[0, 1]) > 0.3  # in float64 it would not be one
    near = neighbour_matrix(boxes, 0.3)
    np.testing.assert_array_equal(near, _dense_near(boxes, 0.3))
    assert near[0, 1] and near[2, 3] and not near[0, 2]


def test_neighbour_sweep_is_the_dense_matrix_with_the_default_cut_offs() -> None:
    """Without the fixture: both paths (few points / one blob: dense; scattered: sweep)."""
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 900, (300, 2))
    scattered = np.concatenate([xy, xy + rng.uniform(5, 60, (300, 2))], 1).astype(np.float32)
    blob = np.tile(np.array([[10, 10, 500, 500]], np.float32), (100, 1)) + rng.normal(
        0, 5, (100, 4)
    ).astype(np.float32)
    for boxes in (scattered, blob, scattered[:10]):
        for eps in (0.3, 0.7):
            np.testing.assert_array_equal(neighbour_matrix(boxes, eps), _dense_near(boxes, eps))


def _standin_grids() -> list[tuple[np.ndarray, np.ndarray]]:
    """Real model outputs: the shipped RGB stand-in (onnxruntime) on frames of the real video."""
    import onnxruntime as ort

    from cvlab.datasets.video import fetch_video, read_frames
    from cvlab.inference.preprocess import preprocess_image
    from cvlab.train import standin

    session = ort.InferenceSession(
        str(standin.SHIPPED_DIR / standin.ONNX_FILE), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    frames = [rgb for _, rgb in read_frames(fetch_video(), [0, 250, 650])]
    tensor = np.stack([preprocess_image(f, standin.STANDIN_INPUT_SIZE) for f in frames])
    out = dict(zip(names, session.run(names, {"input_1": tensor}), strict=True))
    return list(zip(out["output_cov/Sigmoid"], out["output_bbox/BiasAdd"], strict=True))


def test_clustering_real_model_outputs_is_unchanged_by_the_sweep(always_sweep, monkeypatch):
    """The stand-in's grids on real frames, every class, thresholds low enough that most cells
    take part: the same neighbours, DBSCAN labels and clustered boxes as the dense matrix."""
    from cvlab.train import standin

    grids = _standin_grids()
    cases = 0
    for cov, bbox in grids:
        grid = decode_detectnet(
            cov, bbox, model_size=standin.STANDIN_INPUT_SIZE, image_size=(768, 576)
        )
        for c in range(grid.num_classes):
            for threshold in (0.005, 0.0005, 0.0):
                sel = grid.coverage[c] > threshold
                boxes, weights = grid.boxes[c][sel], grid.coverage[c][sel]
                if len(boxes) < 2:
                    continue
                cases += 1
                for eps in (0.1, 0.3, 0.6):
                    np.testing.assert_array_equal(
                        neighbour_matrix(boxes, eps), _dense_near(boxes, eps)
                    )
                    np.testing.assert_array_equal(
                        dbscan_labels(boxes, weights, eps, 1),
                        dbscan_precomputed(iou_distance(boxes), weights, eps, 1),
                    )
    assert cases >= 9
    # the whole postprocessing, sweep against dense, with the lab's RGB clustering
    from cvlab.triton.pipeline import make_postprocessor

    post, _ = make_postprocessor(standin.STANDIN_INPUT_SIZE)
    outputs = {
        "output_cov/Sigmoid": np.stack([c for c, _ in grids]),
        "output_bbox/BiasAdd": np.stack([b for _, b in grids]),
    }
    swept = post.batch(outputs, [(768, 576)] * len(grids))
    monkeypatch.setattr(cluster_module, "neighbour_matrix", _dense_near)
    dense = post.batch(outputs, [(768, 576)] * len(grids))
    assert sum(len(d) for d in dense) > 0
    for a, b in zip(swept, dense, strict=True):
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.confidence, b.confidence)
        np.testing.assert_array_equal(a.class_id, b.class_id)
