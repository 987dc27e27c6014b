"""TAO-style AP: hand-computed golden cases and a cross-check against faster-coco-eval."""

from __future__ import annotations

import numpy as np
import pytest

from cvlab.detections import Detections
from cvlab.formats.kitti import write_kitti
from cvlab.train.evaluate import (
    BoxLimits,
    average_precision,
    box_iou,
    evaluate_detections,
    evaluate_kitti_dirs,
)

NAMES = ("person", "bag")
SIZE = (640, 480)


def dets(boxes, conf=None, cls=None, names=NAMES) -> Detections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return Detections(
        boxes,
        np.ones(n) if conf is None else conf,
        np.zeros(n, int) if cls is None else cls,
        names,
        SIZE,
    )


def test_perfect_predictions_give_ap_one_in_both_modes():
    gt = [dets([[10, 10, 50, 90], [100, 100, 140, 200]])]
    pred = [dets([[10, 10, 50, 90], [100, 100, 140, 200]], [0.9, 0.8])]
    for mode in ("INTEGRATE", "SAMPLE"):
        res = evaluate_detections(pred, gt, ["person"], mode=mode)
        assert res.mean_ap == pytest.approx(1.0)
        row = res.per_class.iloc[0]
        assert (row.tp, row.fp, row.num_gt, row.num_pred) == (2, 0, 2, 2)


def test_golden_tp_fp_tp_sequence():
    # 2 GT; predictions by confidence: TP, FP, TP -> precision 1, .5, 2/3; recall .5, .5, 1
    gt = [dets([[0, 0, 20, 40], [100, 0, 120, 40]])]
    pred = [dets([[0, 0, 20, 40], [300, 300, 320, 340], [100, 0, 120, 40]], [0.9, 0.8, 0.7])]
    integ = evaluate_detections(pred, gt, ["person"], mode="INTEGRATE")
    # envelope: 1.0 on (0, .5], 2/3 on (.5, 1]
    assert integ.mean_ap == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    sample = evaluate_detections(pred, gt, ["person"], mode="SAMPLE")
    # recall points 0..0.5 (6 of them) see precision 1; 0.6..1.0 (5) see 2/3
    assert sample.mean_ap == pytest.approx((6 * 1.0 + 5 * 2 / 3) / 11)
    curve = integ.pr_curves["person"]
    np.testing.assert_allclose(curve.precision, [1.0, 0.5, 2 / 3])
    np.testing.assert_allclose(curve.recall, [0.5, 0.5, 1.0])


def test_false_positive_first_then_true_positive():
    gt = [dets([[0, 0, 20, 40]])]
    pred = [dets([[200, 200, 220, 240], [0, 0, 20, 40]], [0.95, 0.5])]
    for mode in ("INTEGRATE", "SAMPLE"):
        assert evaluate_detections(pred, gt, ["person"], mode=mode).mean_ap == pytest.approx(0.5)


def test_each_ground_truth_is_matched_once_duplicates_are_false_positives():
    gt = [dets([[0, 0, 20, 40]])]
    pred = [dets([[0, 0, 20, 40], [1, 1, 21, 41]], [0.9, 0.8])]
    row = evaluate_detections(pred, gt, ["person"]).per_class.iloc[0]
    assert (row.tp, row.fp) == (1, 1)
    assert row.precision == pytest.approx(0.5)
    assert row.recall == pytest.approx(1.0)


def test_iou_threshold_boundary_and_per_class_thresholds():
    gt = [dets([[0, 0, 10, 10]])]
    pred = [dets([[0, 0, 10, 5]], [0.9])]  # IoU exactly 0.5
    assert box_iou(gt[0].xyxy, pred[0].xyxy[0])[0] == pytest.approx(0.5)
    assert evaluate_detections(pred, gt, ["person"], iou_threshold=0.5).mean_ap == 1.0
    assert evaluate_detections(pred, gt, ["person"], iou_threshold={"person": 0.6}).mean_ap == 0.0
    with pytest.raises(ValueError, match="'person' has no IoU threshold"):
        evaluate_detections(pred, gt, ["person"], iou_threshold={"car": 0.5})


def test_evaluation_box_config_filters_ground_truth_and_predictions():
    # a 3-pixel-high GT is not evaluated; a 3-pixel-high prediction is dropped too
    gt = [dets([[0, 0, 20, 40], [50, 50, 70, 53]])]
    pred = [dets([[0, 0, 20, 40], [300, 300, 320, 303]], [0.9, 0.95])]
    row = evaluate_detections(pred, gt, ["person"]).per_class.iloc[0]
    assert (row.num_gt, row.num_pred, row.tp, row.fp) == (1, 1, 1, 0)
    assert row.ap == pytest.approx(1.0)
    # with min height 0 both count: the tiny FP ranks first, the tiny GT is missed
    res = evaluate_detections(pred, gt, ["person"], min_height=0, min_width=0)
    assert res.per_class.iloc[0].num_gt == 2
    assert res.mean_ap == pytest.approx(0.25)
    # maximum height per class
    limits = {"person": BoxLimits(min_height=4, min_width=4, max_height=30)}
    res = evaluate_detections(pred, gt, ["person"], box_limits=limits)
    assert res.per_class.iloc[0].num_gt == 0 and res.mean_ap == 0.0


def test_classes_are_separate_and_mean_is_over_classes():
    gt = [dets([[0, 0, 20, 40], [100, 0, 120, 40]], cls=[0, 1])]
    # the bag box predicted as a person is a person false positive (ranked after the TP)
    pred = [dets([[0, 0, 20, 40], [100, 0, 120, 40]], [0.9, 0.8], cls=[0, 0])]
    res = evaluate_detections(pred, gt, list(NAMES))
    assert res.ap == {"person": pytest.approx(1.0), "bag": 0.0}
    assert res.mean_ap == pytest.approx(0.5)
    assert res.per_class.set_index("class").loc["person", "fp"] == 1
    assert list(res.per_class.columns) == [
        "class",
        "ap",
        "precision",
        "recall",
        "num_gt",
        "num_pred",
        "tp",
        "fp",
    ]


def test_mismatched_lengths_and_bad_mode_are_clear_errors():
    with pytest.raises(ValueError, match="one of each per image"):
        evaluate_detections([dets([])], [], ["person"])
    with pytest.raises(ValueError, match="AP mode"):
        average_precision(np.array([1.0]), np.array([1.0]), "VOC")


def test_plot_pr_curves_returns_a_figure():
    gt = [dets([[0, 0, 20, 40], [100, 0, 120, 40]])]
    pred = [dets([[0, 0, 20, 40], [300, 300, 320, 340]], [0.9, 0.8])]
    fig = evaluate_detections(pred, gt, ["person"]).plot_pr_curves()
    assert len(fig.axes[0].lines) == 1
    assert "person" in fig.axes[0].get_legend().get_texts()[0].get_text()


def test_kitti_directories(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "pred").mkdir()
    write_kitti(tmp_path / "labels/a.txt", dets([[0, 0, 20, 40]]), with_confidence=False)
    write_kitti(tmp_path / "labels/b.txt", dets([[5, 5, 30, 60]]), with_confidence=False)
    write_kitti(tmp_path / "pred/a.txt", dets([[0, 0, 20, 40]], [0.7]), with_confidence=True)
    # b.txt has no predictions
    res = evaluate_kitti_dirs(tmp_path / "pred", tmp_path / "labels", progress=True)
    assert res.per_class.iloc[0].num_gt == 2
    assert res.mean_ap == pytest.approx(0.5)


# --- cross-check against COCO AP@0.5 (faster-coco-eval) ----------------------------------------
def _scene(rng: np.random.Generator, n_images: int, gt_per_image: int):
    """Ground-truth boxes on a grid (never overlapping, so matching is unambiguous) and noisy
    predictions: jittered true boxes (some far off: FP) plus random clutter."""
    gts, preds = [], []
    for _ in range(n_images):
        cells = rng.choice(12, gt_per_image, replace=False)
        gt_boxes = np.array([[(c % 4) * 150 + 10, (c // 4) * 150 + 10, 0, 0] for c in cells], float)
        gt_boxes[:, 2:] = gt_boxes[:, :2] + rng.uniform(40, 120, (gt_per_image, 2))
        keep = rng.random(gt_per_image) < 0.8
        jitter = (
            rng.normal(0, 6, (gt_per_image, 4))
            * np.where(rng.random(gt_per_image) < 0.2, 8, 1)[:, None]
        )
        pred_boxes = (gt_boxes + jitter)[keep]
        pred_boxes[:, 2:] = np.maximum(pred_boxes[:, 2:], pred_boxes[:, :2] + 5)  # keep x2 > x1
        clutter = rng.uniform(0, 400, (2, 2))
        clutter = np.hstack([clutter, clutter + rng.uniform(30, 90, (2, 2))])
        pred_boxes = np.vstack([pred_boxes, clutter])
        conf = rng.uniform(0.05, 1.0, len(pred_boxes))
        gts.append(dets(gt_boxes))
        preds.append(dets(pred_boxes, conf))
    return preds, gts


def _coco_ap50(preds: list[Detections], gts: list[Detections]) -> float:
    from faster_coco_eval import COCO, COCOeval_faster

    images, anns, results = [], [], []
    for i, (p, g) in enumerate(zip(preds, gts, strict=True)):
        images.append({"id": i + 1, "width": SIZE[0], "height": SIZE[1]})
        for x1, y1, x2, y2 in g.xyxy.tolist():
            w, h = x2 - x1, y2 - y1
            anns.append(
                {"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                 "bbox": [x1, y1, w, h], "area": w * h}
            )  # fmt: skip
        for (x1, y1, x2, y2), s in zip(p.xyxy.tolist(), p.confidence.tolist(), strict=True):
            results.append(
                {
                    "image_id": i + 1,
                    "category_id": 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": s,
                }
            )
    coco_gt = COCO()
    coco_gt.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person"}],
    }
    coco_gt.createIndex()
    coco_dt = coco_gt.loadRes(results)
    ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=lambda *a, **k: None)
    ev.params.maxDets = [1, 10, 100]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_integrate_ap_agrees_with_coco_ap50(seed):
    """COCO samples the same max-precision envelope at 101 recall points r = 0, 0.01, ..., 1:
    AP_coco = (p(0) + sum_k p(k/100)) / 101. When every recall step is a multiple of 0.01
    (here 25 ground-truth boxes: steps of 0.04) the envelope is constant on each (k/100 - .01,
    k/100], so sum_k p(k/100) / 100 is exactly the INTEGRATE area, and
    101 * AP_coco = p(0) + 100 * AP_integrate. Boxes never overlap, so greedy matching is the
    same in both (COCO would otherwise fall back to the next-best unmatched box)."""
    rng = np.random.default_rng(seed)
    preds, gts = _scene(rng, n_images=5, gt_per_image=5)
    res = evaluate_detections(preds, gts, ["person"], min_height=0, min_width=0)
    coco = _coco_ap50(preds, gts)
    p0 = float(res.pr_curves["person"].precision.max())
    assert 0.2 < res.mean_ap < 0.99  # a non-trivial case
    assert 101 * coco == pytest.approx(p0 + 100 * res.mean_ap, abs=1e-6)
    assert coco == pytest.approx(res.mean_ap, abs=0.011)
