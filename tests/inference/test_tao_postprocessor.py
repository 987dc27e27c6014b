"""TAO DetectNet_v2's own post-processor unit tests, ported: their inputs and expected numbers.

Origin: NVIDIA/tao_tensorflow1_backend @ 2ec95cbbe0d74d6a180ea6e989f64d2d97d97712, under
``nvidia_tao_tf1/cv/detectnet_v2/`` (abbreviated ``DN/``). The test code is cvlab's; inputs and
expected values are TAO's (fixture files in ``tests/inference/data/tao/``, Apache-2.0, see the
README there). Each test names the TAO test it ports and says where cvlab deliberately differs
(docs/tao_fidelity.md, "Deliberate differences").

Not ported: ``test_clustering.py::test_mean_angle`` and the ``depth`` case (cvlab has no
orientation or depth objective); ``test_postprocessing.py``'s ``PostProcessor`` tests (mocks of
TAO's confidence-model plumbing, which neither TAO's training nor cvlab uses).
"""

from __future__ import annotations

import csv
import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

from cvlab.errors import ConfigError
from cvlab.inference.cluster import cluster_boxes, tao_nms
from cvlab.inference.clustering_config import (
    ClassClusteringConfig,
    PostprocessingConfig,
    load_training_postprocessing,
)
from cvlab.inference.decode import decode_detectnet
from cvlab.inference.tao_cluster import tao_cluster

DATA = Path(__file__).parent / "data" / "tao"


# --- DN/postprocessor/tests/test_clustering.py (cluster.cluster_predictions) -------------------
def _default_case(num_classes: int = 1, dtype=np.float32):
    """``create_default_case``: one 64x64 grid per class, absolute boxes, zero coverage."""
    bbox = np.zeros((num_classes, 4, 64, 64), dtype)
    cov = np.zeros((num_classes, 64, 64), dtype)
    config = ClassClusteringConfig(
        coverage_threshold=0.005,
        dbscan_eps=0.15,
        dbscan_min_samples=1,
        minimum_bounding_box_height=4,
        algorithm="dbscan",
        nms_iou_threshold=0.4,
        dbscan_confidence_threshold=0.1,
        nms_confidence_threshold=0.1,
    )
    return bbox, cov, config


def _cluster(bbox: np.ndarray, cov: np.ndarray, config: ClassClusteringConfig):
    """TAO's harness: the grid flattened row-major (``y * W + x``) into cells."""
    boxes = bbox.reshape(4, -1).T
    return tao_cluster(boxes, cov.reshape(-1), config)


def _check(result, expected_boxes, expected_conf) -> None:
    boxes, conf = result
    assert len(boxes) == len(expected_boxes)
    np.testing.assert_allclose(boxes, np.reshape(expected_boxes, (-1, 4)), atol=1e-5)
    np.testing.assert_allclose(conf, expected_conf)


def test_clustering_empty_prediction() -> None:
    bbox, cov, config = _default_case()
    _check(_cluster(bbox[0], cov[0], config), [], [])


def test_clustering_bbox_coordinate_averaging() -> None:
    bbox, cov, config = _default_case()
    bbox[0, 0:2, 0:5, 0:5] = 0.0
    bbox[0, 2:4, 0:5, 0:5] = 16.0
    bbox[0, 0:2, 5:10, 5:10] = 0.1
    bbox[0, 2:4, 5:10, 5:10] = 16.1
    cov[0, :24, :24] = 1
    # the other 526 cells of coverage 1 predict zero-area boxes: noise under TAO's distance
    _check(_cluster(bbox[0], cov[0], config), [[0.05, 0.05, 16.05, 16.05]], [50.0])


def test_clustering_coverage_thresholding() -> None:
    bbox, cov, config = _default_case()
    bbox[0, 2, :5, :5] = 16
    bbox[0, 3, :5, :5] = 16
    bbox[0, 0, 5:10, 5:10] = 16
    bbox[0, 1, 5:10, 5:10] = 16
    bbox[0, 2, 5:10, 5:10] = 32
    bbox[0, 3, 5:10, 5:10] = 32
    cov[0, :5, :5] = 0.01
    cov[0, 5:10, 5:10] = 1
    config = dataclasses.replace(config, coverage_threshold=0.1)
    _check(_cluster(bbox[0], cov[0], config), [[16, 16, 32, 32]], [25.0])


def test_clustering_minimum_bounding_box_height() -> None:
    bbox, cov, config = _default_case()
    bbox[0, 2, :5, :5] = 5
    bbox[0, 3, :5, :5] = 5
    bbox[0, 0, 5:10, 5:10] = 5
    bbox[0, 1, 5:10, 5:10] = 5
    bbox[0, 2, 5:10, 5:10] = 15
    bbox[0, 3, 5:10, 5:10] = 15
    # one box that must not count: a single sample
    bbox[0, 0, 11, 11] = 15
    bbox[0, 1, 11, 11] = 15
    bbox[0, 2, 11, 11] = 25
    bbox[0, 3, 11, 11] = 25
    cov[0, :11, :11] = 1
    config = dataclasses.replace(config, minimum_bounding_box_height=6)
    _check(_cluster(bbox[0], cov[0], config), [[5, 5, 15, 15]], [25.0])


def test_clustering_two_bounding_boxes() -> None:
    bbox, cov, car = _default_case(num_classes=2, dtype=np.float64)  # float64, as TAO's case
    cov[0, :10, :10] = 1
    cov[1, 10:20, 10:20] = 1
    bbox[0, 0:2, 0:5, 0:5] = 0.0
    bbox[0, 2:4, 0:5, 0:5] = 16.0
    bbox[0, 0:2, 5:10, 5:10] = 0.0
    bbox[0, 2:4, 5:10, 5:10] = 16.0
    bbox[1, 0:2, 10:15, 10:15] = 16.0
    bbox[1, 2:4, 10:15, 10:15] = 32.0
    bbox[1, 0:2, 15:20, 15:20] = 16.0
    bbox[1, 2:4, 15:20, 15:20] = 32.0
    # TAO passes nms_iou_threshold=None for pedestrian (unchecked by DBSCAN); cvlab's is a float
    pedestrian = car
    _check(_cluster(bbox[0], cov[0], car), [[0.0, 0.0, 16.0, 16.0]], [50.0])
    _check(_cluster(bbox[1], cov[1], pedestrian), [[16.0, 16.0, 32.0, 32.0]], [50.0])


def test_cvlab_inference_clustering_gives_the_same_boxes_on_these_cases() -> None:
    # the inference path (cluster_boxes: canonical order, exact IoU) on the averaging case
    bbox, cov, config = _default_case()
    bbox[0, 0:2, 0:5, 0:5] = 0.0
    bbox[0, 2:4, 0:5, 0:5] = 16.0
    bbox[0, 0:2, 5:10, 5:10] = 0.1
    bbox[0, 2:4, 5:10, 5:10] = 16.1
    cov[0, :24, :24] = 1
    _check(
        cluster_boxes(bbox[0].reshape(4, -1).T, cov[0].reshape(-1), config),
        [[0.05] * 2 + [16.05] * 2],
        [50.0],
    )


# --- DN/postprocessor/tests/test_nms_clustering.py (utilities.get_keep_indices) ----------------
NMS_KEPT = np.array(
    [
        [1378.877, 244.895, 1642.197, 492.368],
        [1027.484, 157.819, 1267.016, 496.153],
        [1248.895, 499.751, 1486.717, 696.672],
        [1270.162, 785.694, 1576.480, 970.603],
    ],
    np.float32,
)


def test_nms_clustering() -> None:
    raw = np.loadtxt(DATA / "nms_raw_detections.csv", delimiter=",", dtype=np.float32)
    boxes, covs = raw[:, :4], raw[:, 4:].flatten()
    keep = tao_nms(boxes, covs, 0.3, score_threshold=0.2)  # TAO: min_height 4 (unused), Nt 0.3
    assert np.array_equal(boxes[keep], NMS_KEPT)  # order matters, as TAO's array_equal
    assert keep.tolist() == [40, 12, 57, 67]


def test_nms_algorithm_keeps_own_coverage_as_confidence() -> None:
    # Deliberate difference: TAO's cluster_with_nms reads each kept box's confidence from the
    # coverage array that get_keep_indices has sorted and zeroed in place, so these four boxes
    # come out of TAO with confidence 0.0 (computed by running TAO's code). cvlab keeps each
    # box's own coverage, which is what TAO means to report.
    raw = np.loadtxt(DATA / "nms_raw_detections.csv", delimiter=",", dtype=np.float32)
    config = ClassClusteringConfig(
        algorithm="nms",
        coverage_threshold=0.0,
        minimum_bounding_box_height=4,
        nms_iou_threshold=0.3,
        nms_confidence_threshold=0.2,
    )
    for boxes, conf in (
        cluster_boxes(raw[:, :4], raw[:, 4], config),
        tao_cluster(raw[:, :4], raw[:, 4], config),
    ):
        assert np.array_equal(boxes, NMS_KEPT)
        np.testing.assert_allclose(conf, [0.740, 0.737, 0.380, 0.212], rtol=1e-6)


# --- DN/postprocessor/tests/test_hybrid_clustering.py (utilities.cluster_with_hybrid) ----------
def _read_person_cells(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``read_kitti_labels`` + ``generate_test_fixture``: person rows, box and last column."""
    with open(DATA / name) as f:
        rows = [r for r in csv.reader(f, delimiter=" ") if r and r[0].lower() == "person"]
    boxes = np.asarray([[float(v) for v in r[4:8]] for r in rows], np.float32)
    return boxes, np.asarray([float(r[-1]) for r in rows], np.float32)


HYBRID = ClassClusteringConfig(  # the test's BboxHandlerConfig text proto, class "person"
    algorithm="hybrid",
    nms_iou_threshold=0.3,
    nms_confidence_threshold=0.2,
    coverage_threshold=0.005,
    dbscan_confidence_threshold=0.9,
    dbscan_eps=0.3,
    dbscan_min_samples=1,
    minimum_bounding_box_height=4,
)


def test_dbscan_nms_hybrid() -> None:
    raw_boxes, raw_cov = _read_person_cells("labels_raw.txt")
    candidates, candidate_cov = _read_person_cells("labels_dbscan_cluster_candidates.txt")
    expected, _ = _read_person_cells("labels_nms_output.txt")  # last column: not a coverage
    assert (len(raw_boxes), len(candidates), len(expected)) == (6240, 335, 16)
    # TAO's test hands the raw cells to cluster_with_hybrid without its coverage threshold
    # (some cells are exactly 0.005): cvlab's threshold 0 keeps them all, as there
    assert raw_cov.min() > 0
    boxes, conf = cluster_boxes(
        raw_boxes, raw_cov, dataclasses.replace(HYBRID, coverage_threshold=0.0)
    )
    assert np.array_equal(boxes, expected)  # order matters, as TAO's array_equal
    # NMS alone over TAO's candidate cells gives the same 16 boxes
    keep = tao_nms(candidates, candidate_cov, 0.3, 0.2)
    assert np.array_equal(candidates[keep], expected)
    # Deliberate difference: cvlab's confidences are the cells' own coverages, in descending
    # order; TAO returns 0.0 for all but one box (0.043), read back from its zeroed array
    np.testing.assert_allclose(
        conf,
        [0.980, 0.978, 0.946, 0.938, 0.925, 0.924, 0.923, 0.912]
        + [0.903, 0.890, 0.705, 0.661, 0.572, 0.563, 0.332, 0.306],
        rtol=1e-6,
    )


# --- DN/postprocessor/tests/test_build_clustering_config.py, test_build_postprocessing_config.py
CLUSTERING_SPEC = """
postprocessing_config {
  target_class_config {
    key: "car"
    value: {
      clustering_config {
        coverage_threshold: 0.5
        dbscan_eps: 0.125
        dbscan_min_samples: 1
        minimum_bounding_box_height: 4
        clustering_algorithm: DBSCAN
      }
      confidence_config {
        confidence_threshold: 0.75
        confidence_model_filename: "car_mlp.hdf5"
      }
    }
  }
  target_class_config {
    key: "pedestrian"
    value: {
      clustering_config {
        coverage_threshold: 0.25
        minimum_bounding_box_height: 2
        nms_iou_threshold: 0.40
        clustering_algorithm: NMS
      }
    }
  }
}
"""


def test_build_clustering_config(tmp_path: Path) -> None:
    path = tmp_path / "spec.txt"
    path.write_text(CLUSTERING_SPEC)
    for tao_training in (False, True):
        cfg = load_training_postprocessing(path, tao_training=tao_training)
        car, pedestrian = cfg.classes["car"], cfg.classes["pedestrian"]
        assert (car.coverage_threshold, car.dbscan_eps, car.dbscan_min_samples) == (0.5, 0.125, 1)
        assert (car.minimum_bounding_box_height, car.algorithm) == (4, "dbscan")
        assert (pedestrian.coverage_threshold, pedestrian.minimum_bounding_box_height) == (0.25, 2)
        assert pedestrian.algorithm == "nms" and pedestrian.nms_iou_threshold == 0.4
        # test_build_postprocessing_config: the confidence_config threshold (TAO's model
        # filename is not used by its training either)
        assert car.output_confidence_threshold == 0.75


@pytest.mark.parametrize(
    ("args", "fields"),
    [  # ClusteringConfig's positional arguments: coverage, eps, min_samples, min height,
        # algorithm, nms_iou, dbscan confidence, nms confidence
        ((2.0, 0.5, 0.5, 1, 0, 0.4, 0.1, 0.2), {"coverage_threshold"}),
        ((0.5, 2.0, 0.5, 1, 0, 0.2, 0.1, 0.2), {"dbscan_eps"}),
        ((0.5, 0.5, -1.0, 1, 0, 0.2, 0.1, 0.2), {"dbscan_min_samples"}),
        ((0.5, 0.5, 0.5, -1, 0, 0.2, 0.1, 0.2), {"minimum_bounding_box_height"}),
        # NMS: min_samples unchecked; TAO stops at the height, cvlab lists the IoU 1.5 too
        (
            (0.5, 0.5, -1.0, -1, 1, 1.5, 0.1, 0.2),
            {"minimum_bounding_box_height", "nms_iou_threshold"},
        ),
    ],
)
def test_clustering_config_limits(args, fields) -> None:
    names = (
        "coverage_threshold",
        "dbscan_eps",
        "dbscan_min_samples",
        "minimum_bounding_box_height",
        "algorithm",
        "nms_iou_threshold",
        "dbscan_confidence_threshold",
        "nms_confidence_threshold",
    )
    values = dict(zip(names, args, strict=True))
    values["algorithm"] = {0: "dbscan", 1: "nms", 2: "hybrid"}[values["algorithm"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 0.5 is a legacy float min_samples
        cfg = ClassClusteringConfig(**values)
    assert {f for f, _ in cfg.problems()} == fields
    with pytest.raises(
        ConfigError, match=f"field '{sorted(fields)[0]}'|field '{sorted(fields)[-1]}'"
    ):
        PostprocessingConfig({"car": cfg})


def test_clustering_config_limits_hybrid(tmp_path: Path) -> None:
    # TAO: ClusteringConfig(0.5, 0.5, 0.75, 4, 2, 0.5, 0.1, 0.2) raises NotImplementedError
    # (HYBRID): its training and evaluation cannot use it. cvlab refuses it in the same place
    # (a training spec read for TAO's validation) and offers it at inference, as TAO's inference.
    text = CLUSTERING_SPEC.replace("clustering_algorithm: NMS", "clustering_algorithm: HYBRID")
    path = tmp_path / "spec.txt"
    path.write_text(text)
    with pytest.raises(
        ConfigError, match="class 'pedestrian': field 'clustering_algorithm'.*HYBRID"
    ):
        load_training_postprocessing(path, tao_training=True)
    assert load_training_postprocessing(path).classes["pedestrian"].algorithm == "hybrid"


def test_dbscan_eps_is_limited_for_the_iou_criterion_only() -> None:
    # TAO: dbscan_eps must be in [0, 1] (1 - IoU); cvlab's dbscan_legacy uses a Euclidean
    # distance between rows of the 1 - IoU matrix, where 2.0 is meaningful
    assert "dbscan_eps" in dict(ClassClusteringConfig(dbscan_eps=2.0).problems())
    assert ClassClusteringConfig(dbscan_eps=1.0).problems() == []
    assert ClassClusteringConfig(dbscan_eps=0.0, algorithm="hybrid").problems() == []
    assert ClassClusteringConfig(dbscan_eps=2.0, algorithm="dbscan_legacy").problems() == []


# --- DN/postprocessor/tests/test_postprocessing.py (_filter_by_confidence) ---------------------
def test_filter_by_confidence_keeps_the_threshold() -> None:
    # frame 0: car 0.8 [0,0,16,16] and car 0.2 [0,0,12,12]; frame 1: car 0.7 [0,0,10,10];
    # threshold 0.5 keeps [[frame0[0]], frame1] (>=, as TAO)
    config = ClassClusteringConfig(
        algorithm="nms",
        coverage_threshold=0.0,
        minimum_bounding_box_height=0,
        nms_iou_threshold=1.0,
        output_confidence_threshold=0.5,
    )
    frame0 = cluster_boxes([[0, 0, 16, 16], [0, 0, 12, 12]], [0.8, 0.2], config)
    frame1 = cluster_boxes([[0, 0, 10, 10]], [0.7], config)
    _check(frame0, [[0, 0, 16, 16]], [0.8])
    _check(frame1, [[0, 0, 10, 10]], [0.7])
    _check(cluster_boxes([[0, 0, 10, 10]], [0.5], config), [[0, 0, 10, 10]], [0.5])


# --- DN/objectives/tests/test_bbox_objective.py (BboxObjective.predictions_to_absolute) --------
# TestObjective's geometry: a 5x6 output grid, stride 16 -> an 80x96 input; scale 35, offset 0.5
GRID_W, GRID_H, STRIDE = 5, 6, 16


def test_bbox_predictions_to_absolute_coordinates() -> None:
    ltrb = np.ones((4, GRID_H, GRID_W), np.float32)
    grid = decode_detectnet(
        np.ones((1, GRID_H, GRID_W), np.float32), ltrb, model_size=(80, 96), stride=STRIDE
    )
    x = np.tile(np.arange(GRID_W, dtype=np.float32) * STRIDE + 0.5, (GRID_H, 1))
    y = np.tile(np.arange(GRID_H, dtype=np.float32) * STRIDE + 0.5, (GRID_W, 1)).T
    x1 = np.minimum(np.maximum(x - 35, 0.0), 80)
    y1 = np.minimum(np.maximum(y - 35, 0.0), 96)
    x2 = np.minimum(np.maximum(x + 35, x1), 80)
    y2 = np.minimum(np.maximum(y + 35, y1), 96)
    expected = np.stack([x1, y1, x2, y2], -1).reshape(-1, 4)  # cvlab's cells: row-major
    np.testing.assert_allclose(grid.boxes[0], expected)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ([1.1, 21.1, 42.1, 66.666], [1.1, 21.1, 42.1, 66.666]),  # unchanged
        ([-10.1, -30.0, 150.0, 140.0], [0.0, 0.0, 5 * 16, 6 * 16]),  # clipped to the frame
        ([-10.1, 30.2, 50.0, 20.2], [0.0, 30.2, 50.0, 30.2]),  # negative height: y2 -> y1
        ([30.2, 50.0, 20.2, 60.0], [30.2, 50.0, 30.2, 60.0]),  # negative width: x2 -> x1
    ],
)
def test_bbox_roundtrip(label, expected) -> None:
    # label -> target distances of every cell ((gx - x1) / 35, ...) -> decode; TAO checks the
    # cells its rasterizer covers, here every cell predicts the label (atol 1e-5 as TAO)
    gx = np.arange(GRID_W, dtype=np.float32) * STRIDE + 0.5
    gy = np.arange(GRID_H, dtype=np.float32) * STRIDE + 0.5
    gx, gy = np.meshgrid(gx, gy)
    x1, y1, x2, y2 = np.float32(label)
    ltrb = np.stack([(gx - x1) / 35, (gy - y1) / 35, (x2 - gx) / 35, (y2 - gy) / 35])
    grid = decode_detectnet(
        np.ones((1, GRID_H, GRID_W), np.float32),
        ltrb.astype(np.float32),
        model_size=(80, 96),
        stride=STRIDE,
    )
    np.testing.assert_allclose(grid.boxes[0], np.tile(expected, (GRID_H * GRID_W, 1)), atol=1e-5)
