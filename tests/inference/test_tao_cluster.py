"""TAO's training-time clustering: DBSCAN labels as scikit-learn gives them, its distance, order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import DBSCAN

from cvlab.inference.clustering_config import ClassClusteringConfig
from cvlab.inference.tao_cluster import tao_cluster, tao_dbscan_labels, tao_iou_distance


def _sklearn(distance, weights, eps, min_samples):
    db = DBSCAN(eps=eps, min_samples=max(int(min_samples), 1), metric="precomputed")
    return db.fit_predict(distance, sample_weight=weights)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 60), st.floats(0.05, 0.9))
def test_labels_match_scikit_learn(seed, n, eps) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(20, 180, size=(int(rng.integers(1, 4)), 2))
    c = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 3, (n, 2))
    wh = rng.uniform(0, 40, (n, 2)) * (rng.random((n, 1)) > 0.1)  # some zero-area boxes
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)
    # coverages on a 0.1 grid make neighbourhood sums land on 1.0 in float32
    weights = (rng.integers(1, 10, n) / 10).astype(np.float32)
    distance = tao_iou_distance(boxes)
    np.testing.assert_array_equal(
        tao_dbscan_labels(distance, weights, eps, 1), _sklearn(distance, weights, eps, 1)
    )


def test_float32_sums_decide_the_core_test_as_in_scikit_learn() -> None:
    # float32 0.9 + 0.1 is 1.0, but 0.99999998 in float64: scikit-learn sums the float32
    # weights, so these two identical boxes are one cluster (a float64 sum would call it noise)
    boxes = np.tile(np.float32([0, 0, 10, 10]), (2, 1))
    weights = np.array([0.9, 0.1], np.float32)
    assert weights.astype(np.float64).sum() < 1 <= np.sum(weights)
    distance = tao_iou_distance(boxes)
    np.testing.assert_array_equal(_sklearn(distance, weights, 0.3, 1), [0, 0])
    np.testing.assert_array_equal(tao_dbscan_labels(distance, weights, 0.3, 1), [0, 0])


def test_distance_diagonal_and_zero_area_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 5, 5, 20]], np.float32)
    d = tao_iou_distance(boxes)
    assert d.dtype == np.float32
    np.testing.assert_allclose(d[0, 0], 1 - 100 / (100 + 1e-5), atol=1e-7)
    assert d[1, 1] == 1.0  # a zero-area box is not its own neighbour: noise
    cfg = ClassClusteringConfig(coverage_threshold=0.0, minimum_bounding_box_height=0)
    out, conf = tao_cluster(boxes[1:], np.ones(1, np.float32), cfg)
    assert len(out) == 0


def test_output_sorted_by_confidence_stable_and_algorithms() -> None:
    a = np.tile(np.float32([0, 0, 10, 10]), (2, 1))
    b = np.tile(np.float32([50, 0, 60, 10]), (3, 1))
    boxes = np.concatenate([a, b])
    cov = np.array([0.6, 0.6, 0.5, 0.5, 0.5], np.float32)
    cfg = ClassClusteringConfig(coverage_threshold=0.0, minimum_bounding_box_height=0)
    out, conf = tao_cluster(boxes, cov, cfg)
    np.testing.assert_allclose(out, [[50, 0, 60, 10], [0, 0, 10, 10]])
    np.testing.assert_allclose(conf, [1.5, 1.2], rtol=1e-6)
    with pytest.raises(ValueError, match="dbscan or nms"):
        tao_cluster(boxes, cov, ClassClusteringConfig(algorithm="hybrid"))
    with pytest.raises(ValueError, match="5 boxes but 4"):
        tao_cluster(boxes, cov[:4], cfg)
