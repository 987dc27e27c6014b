"""TAO's validation AP (``convention="tao"``, :mod:`cvlab.train.validation`), against TAO's numbers.

TAO has no unit tests for ``DN/evaluation/compute_metrics.py`` (``DN`` =
``nvidia_tao_tf1/cv/detectnet_v2`` in NVIDIA/tao_tensorflow1_backend @ 2ec95cb). The expected
APs below were computed by running TAO's own ``ComputeMetrics`` (copied into a scratch directory,
imports stubbed; /work/notes/tao_postprocess.md section 8f), cases A-G and I. Case H (TAO's
``verbose=False`` path matches only the first prediction, a bug its evaluator never hits) is not
ported. ``DN/evaluation/tests/test_ground_truth.py`` is ported for what cvlab's ground truth
carries (classes and boxes; truncation, occlusion, ``is_cvip`` and the ``non_facing`` ->
``dontcare`` renaming do not exist in cvlab's TFRecords). ``test_early_stopping_hook.py`` tests
TAO's early-stopping schedule, which cvlab does not have: not ported.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.train import limit_tf_threads, tiny_dataset, tiny_train_config  # noqa: F401

from cvlab.detections import Detections
from cvlab.errors import ConfigError
from cvlab.formats.tao_spec import build_lab_spec
from cvlab.train.evaluate import BoxLimits, evaluate_detections, tao_average_precision
from cvlab.train.validation import (
    TaoValidation,
    ground_truth_detections,
    tao_detections_from_outputs,
)

CAR = ("car",)
OPEN = BoxLimits(0, 0, float("inf"), float("inf"))


def _dets(boxes, conf=None) -> Detections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    conf = np.ones(len(boxes)) if conf is None else conf
    return Detections(boxes, conf, np.zeros(len(boxes)), CAR, (1000, 1000))


def _tao_ap(gt, pred, conf, mode, limits=OPEN, iou=0.5) -> float:
    return evaluate_detections(
        [_dets(pred, conf)],
        [_dets(gt)],
        CAR,
        iou_threshold={"car": iou},
        mode=mode,
        box_limits={"car": limits},
        convention="tao",
    ).mean_ap


G3 = [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]
G10 = [[20 * i, 0, 20 * i + 10, 10] for i in range(10)]
EMPTY = np.zeros((0, 4))


@pytest.mark.parametrize(
    ("case", "gt", "pred", "conf", "sample", "integrate"),
    [
        (
            "A",
            G3,
            [[0, 0, 10, 10], [1, 1, 10, 10], [60, 60, 70, 70], [20, 20, 30, 30], [41, 41, 50, 50]],
            [0.9, 0.8, 0.7, 0.6, 0.5],
            0.7454545454545453,
            0.5,
        ),
        (
            "B",
            G3,
            [[60, 60, 70, 70], [0, 0, 10, 10], [20, 20, 30, 30]],
            [0.95, 0.9, 0.6],
            0.4242424242424242,
            0.3333333333333333,
        ),
        ("C", [[0, 0, 10, 10]], [[0, 0, 10, 10]], [0.9], 1.0, 0.0),
        ("D", G10, G10[:3], [0.90, 0.89, 0.88], 0.2727272727272727, 0.19999999999999998),
        ("E", G10, G10, [0.90 - 0.01 * i for i in range(10)], 1.0, 0.9),
        ("F", EMPTY, [[0, 0, 10, 10]], [0.9], 0.0, 0.0),
        ("G", [[0, 0, 10, 10]], EMPTY, np.zeros(0), 0.0, 0.0),
    ],
)
def test_compute_metrics_cases(case, gt, pred, conf, sample, integrate) -> None:
    assert _tao_ap(gt, pred, conf, "SAMPLE") == pytest.approx(sample, abs=1e-12), case
    assert _tao_ap(gt, pred, conf, "INTEGRATE") == pytest.approx(integrate, abs=1e-12), case


def test_exact_convention_differs_where_tao_has_quirks() -> None:
    # C: one perfect box is AP 1 exactly; TAO's INTEGRATE never counts the first recall step
    exact = evaluate_detections([_dets([[0, 0, 10, 10]], [0.9])], [_dets([[0, 0, 10, 10]])], CAR)
    assert exact.mean_ap == 1.0
    # D: recall 3/10 reaches the recall point 0.3 up to 1e-12; TAO's linspace point is
    # 0.30000000000000004, which 0.3 misses
    d = evaluate_detections(
        [_dets(G10[:3], [0.90, 0.89, 0.88])], [_dets(G10)], CAR, mode="SAMPLE", min_height=0
    )
    assert d.mean_ap == pytest.approx(4 / 11)


def test_box_filter_on_float_boxes_case_i() -> None:
    # evaluation_box_config min = max = 10 (height and width): GT [0,0,10,10] kept, GT
    # [0,0,9.9,10] dropped (w < 10), prediction [0,0,10,10.5] dropped (h > 10) before rounding
    limits = BoxLimits(10, 10, 10, 10)
    gt = [[0, 0, 10, 10], [0, 0, 9.9, 10]]
    pred = [[0, 0, 10, 10.5], [0, 0, 10, 10]]
    assert _tao_ap(gt, pred, [0.95, 0.9], "INTEGRATE", limits) == 0.0  # TAO: 0.0
    assert _tao_ap(gt, pred, [0.95, 0.9], "SAMPLE", limits) == 1.0


def test_rounding_half_to_even_and_plus_one_iou() -> None:
    # Python's round() on TAO's boxes: [0.5, 1.5, 10.5, 11.5] -> (0, 2, 10, 12)
    assert _tao_ap([[0, 2, 10, 12]], [[0.5, 1.5, 10.5, 11.5]], [0.9], "SAMPLE", iou=1.0) == 1.0
    # border pixels included: IoU([0,0,9,9], [5,5,14,14]) = 25 / 175 = 0.142857...
    assert _tao_ap([[0, 0, 9, 9]], [[5, 5, 14, 14]], [0.9], "SAMPLE", iou=25 / 175) == 1.0
    assert _tao_ap([[0, 0, 9, 9]], [[5, 5, 14, 14]], [0.9], "SAMPLE", iou=0.1429) == 0.0


def test_tao_average_precision_formulas() -> None:
    # INTEGRATE by hand on case A: recall levels 1/3, 2/3, 1 first reached at ranks 1, 4, 5;
    # widths 1/3 and 1/3 with heights max(p[0:3]) = 1 and max(p[3:4]) = 0.5; the precision 0.6
    # at recall 1 is never used (the envelope area would be 1/3 + 2/3 * 0.6 = 0.733)
    precision = np.array([1.0, 0.5, 1 / 3, 0.5, 0.6])
    recall = np.array([1, 1, 1, 2, 3]) / 3
    assert tao_average_precision(precision, recall, "INTEGRATE") == pytest.approx(0.5)
    assert tao_average_precision(np.array([0.0]), np.array([np.nan]), "SAMPLE") == 0.0
    with pytest.raises(ValueError, match="AP mode"):
        tao_average_precision(precision, recall, "VOC")


# --- DN/evaluation/tests/test_ground_truth.py ---------------------------------------------------
def test_ground_truth_no_objects_and_two_frames() -> None:
    frames = [
        ([], np.zeros((0, 4))),
        (["car", "car"], [[1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0]]),
    ]
    gts = [ground_truth_detections(c, b, (10, 10), CAR, (10, 10)) for c, b in frames]
    assert len(gts[0]) == 0
    np.testing.assert_array_almost_equal(gts[1].xyxy, [[1, 1, 2, 2], [3, 3, 4, 4]])
    assert gts[1].names == ["car", "car"]
    # a class that is not a target (TAO's '-1') is dropped; a mapping renames as training does
    van = ground_truth_detections(["van"], [[1, 1, 2, 2]], (10, 10), CAR, (10, 10))
    assert len(van) == 0
    mapped = ground_truth_detections(["VAN"], [[1, 1, 2, 2]], (10, 10), CAR, (10, 10), {"van": 0})
    assert mapped.names == ["car"]


# --- the spec's settings ------------------------------------------------------------------------
def test_settings_come_from_the_spec() -> None:
    exp = build_lab_spec("", "", class_names=("person", "car"))
    ev = exp.evaluation_config
    ev.average_precision_mode = ev.SAMPLE
    ev.minimum_detection_ground_truth_overlap["car"] = 0.7
    ev.evaluation_box_config["car"].minimum_height = 20
    cc = exp.postprocessing_config.target_class_config["car"].clustering_config
    cc.clustering_algorithm = cc.NMS
    cc.nms_iou_threshold = 0.4
    tao = TaoValidation.from_spec(exp)
    assert tao.mode == "SAMPLE"
    assert tao.iou_thresholds == {"person": 0.5, "car": pytest.approx(0.7)}  # float32, as TAO
    assert tao.box_limits["car"].min_height == 20
    car = tao.clustering.classes["car"]
    assert (car.algorithm, car.nms_iou_threshold) == ("nms", 0.4)
    person = tao.clustering.classes["person"]
    # as written (TAO's build_clustering_config would swap the two confidence thresholds)
    assert (person.dbscan_confidence_threshold, person.nms_confidence_threshold) == (0.9, 0.0)


def test_spec_errors_name_the_field() -> None:
    exp = build_lab_spec("", "", class_names=("person", "car"))
    del exp.evaluation_config.evaluation_box_config["car"]
    with pytest.raises(ConfigError, match=r"evaluation_config\.evaluation_box_config.*'car'"):
        TaoValidation.from_spec(exp)
    exp = build_lab_spec("", "")
    cc = exp.postprocessing_config.target_class_config["person"].clustering_config
    cc.clustering_algorithm = cc.HYBRID
    with pytest.raises(ConfigError, match="field 'clustering_algorithm'.*HYBRID"):
        TaoValidation.from_spec(exp)
    exp = build_lab_spec("", "")
    exp.postprocessing_config.target_class_config["person"].clustering_config.dbscan_eps = 1.5
    with pytest.raises(ConfigError, match=r"field 'dbscan_eps' must be in \[0, 1\]"):
        TaoValidation.from_spec(exp)


def test_tao_detections_are_in_model_pixels_and_clipped() -> None:
    # one 16x16 person predicted by a 2x2 block of cells of a 64x32 model input; the cells' box
    # reaches past the right edge: TAO clips x2 to 64 before clustering
    cov = np.zeros((1, 2, 4), np.float32)
    cov[0, :, 2:] = 0.6
    gx = np.arange(4, dtype=np.float32) * 16 + 0.5
    gy = np.arange(2, dtype=np.float32) * 16 + 0.5
    gx, gy = np.meshgrid(gx, gy)
    box = np.float32([40, 4, 70, 28])
    bbox = np.stack([(gx - box[0]), (gy - box[1]), (box[2] - gx), (box[3] - gy)]) / 35
    dets = tao_detections_from_outputs(
        cov, bbox.astype(np.float32), (64, 32), TaoValidation.lab_default(("person",))
    )
    assert dets.image_size == (64, 32)
    np.testing.assert_allclose(dets.xyxy, [[40, 4, 64, 28]], atol=1e-4)
    np.testing.assert_allclose(dets.confidence, [2.4], rtol=1e-6)


# --- validate(): both APs from one pass -----------------------------------------------------
def test_validate_reports_the_exact_and_the_tao_ap(tiny_dataset) -> None:  # noqa: F811
    # The model is replaced by an oracle that returns the validation frames' own training
    # targets (rasterised ground truth), so both APs are near perfect and their difference is
    # TAO's INTEGRATE, which never counts the first recall step.
    import dataclasses

    from cvlab.formats.tfrecords import split_folds
    from cvlab.train.dataset import make_dataset
    from cvlab.train.trainer import validate

    pattern, root = tiny_dataset
    config = tiny_train_config()
    _, val_files = split_folds(pattern, config.validation_fold)
    ds = make_dataset(
        val_files,
        root,
        config.class_names,
        config.model.input_size,
        2,
        training=False,
        rasterizer=config.rasterizer,
    )
    outputs = [(t["cov"], t["bbox"]) for _, t in ds]

    def oracle(images, training=False):
        return outputs.pop(0)

    result = validate(oracle, val_files, root, config, batch_size=2)
    columns = result.history_columns()
    assert set(columns) == {"mAP", "mAP_tao", "ap_person", "ap_tao_person"}
    assert result.exact.extra["convention"] == "exact" and result.tao.extra["convention"] == "tao"
    assert columns["mAP"] > 0.9
    # TAO filters boxes in model-input pixels (half the image size here): boxes under 4 px
    # there are not evaluated
    tao = result.tao.per_class.iloc[0]
    assert 0 < tao["num_gt"] <= result.exact.per_class.iloc[0]["num_gt"]
    # every TAO prediction is a true positive (precision 1 throughout): TAO's INTEGRATE is the
    # recall span from the first to the last true positive, one step short of the recall
    recall = result.tao.pr_curves["person"].recall
    assert tao["fp"] == 0 and tao["tp"] >= 2
    assert columns["mAP_tao"] == pytest.approx(recall[-1] - recall[0])
    assert columns["mAP_tao"] < columns["mAP"]
    # SAMPLE from the spec: the same matches, TAO's 11 points
    outputs[:] = [(t["cov"], t["bbox"]) for _, t in ds]
    exp = build_lab_spec("", "")
    exp.evaluation_config.average_precision_mode = exp.evaluation_config.SAMPLE
    config = dataclasses.replace(config, tao_validation=TaoValidation.from_spec(exp))
    sample = validate(oracle, val_files, root, config, batch_size=2)
    assert sample.tao.mode == "SAMPLE" and sample.tao.mean_ap > columns["mAP_tao"]
