"""DetectNet_v2 cost (TAO weighted BCE + cov_norm-weighted L1, autoweighting) and LR schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from cvlab.train.losses import (
    CostConfig,
    Objective,
    TargetClassCost,
    autoweight,
    component_costs,
    total_cost,
    weighted_bce,
)
from cvlab.train.schedule import SoftStartAnnealingSchedule, make_optimizer


def test_weighted_bce_by_hand():
    target = tf.constant([1.0, 0.0, 0.7, 0.3])
    pred = tf.constant([0.8, 0.2, 0.5, 0.5])
    got = weighted_bce(target, pred, 0.05).numpy()
    eps = 1e-5
    bce = lambda t, p: -(t * math.log(p + eps) + (1 - t) * math.log(1 - p + eps))  # noqa: E731
    expect = [0.05 * bce(1, 0.8), 0.95 * bce(0, 0.2), 0.05 * bce(0.7, 0.5), 0.95 * bce(0.3, 0.5)]
    np.testing.assert_allclose(got, expect, rtol=1e-5)


def test_component_and_total_costs():
    rng = np.random.default_rng(0)
    cov_t = (rng.random((2, 2, 3, 4)) > 0.7).astype(np.float32)
    norm = cov_t * 0.25
    bbox_t = rng.random((2, 8, 3, 4)).astype(np.float32)
    targets = {
        "cov": tf.constant(cov_t),
        "bbox": tf.constant(bbox_t),
        "cov_norm": tf.constant(norm),
    }
    cov_p = np.clip(cov_t * 0.9 + 0.05, 0, 1).astype(np.float32)
    bbox_p = (bbox_t + 0.1).astype(np.float32)
    cfg = CostConfig(
        [
            TargetClassCost("person", class_weight=1.0, coverage_foreground_weight=0.05),
            TargetClassCost("bag", class_weight=3.0, coverage_foreground_weight=0.5),
        ]
    )
    costs = component_costs(targets, (tf.constant(cov_p), tf.constant(bbox_p)), 2, cfg)
    # bbox: mean over 4 channels of cov_norm * 0.1 = 0.1 * mean(cov_norm)
    for c, name in enumerate(("person", "bag")):
        assert float(costs[name]["bbox"]) == pytest.approx(0.1 * norm[:, c].mean(), rel=1e-4)
        fg = cfg.target_classes[c].coverage_foreground_weight
        expect = weighted_bce(tf.constant(cov_t[:, c]), tf.constant(cov_p[:, c]), fg).numpy().mean()
        assert float(costs[name]["cov"]) == pytest.approx(expect, rel=1e-5)
    class_w = cfg.normalised_class_weights()
    obj_w = cfg.normalised_objective_weights()
    assert class_w == {"person": 0.25, "bag": 0.75}
    assert obj_w["person"] == pytest.approx({"cov": 1 / 11, "bbox": 10 / 11})
    total = float(total_cost(costs, class_w, obj_w))
    expect = sum(
        class_w[n]
        * (obj_w[n]["cov"] * float(costs[n]["cov"]) + obj_w[n]["bbox"] * float(costs[n]["bbox"]))
        for n in ("person", "bag")
    )
    assert total == pytest.approx(expect, rel=1e-6)
    # A perfect bbox prediction costs nothing.
    perfect = component_costs(targets, (tf.constant(cov_p), tf.constant(bbox_t)), 2, cfg)
    assert float(perfect["person"]["bbox"]) == 0.0


def test_autoweighting_as_tao_hook():
    cfg = CostConfig(
        [
            TargetClassCost(
                "cat", objectives=[Objective("cov", 4.0, 2.0), Objective("bbox", 1.0, 1.0)]
            )
        ],
        max_objective_weight=0.9,
        min_objective_weight=0.01,
    )
    assert cfg.normalised_objective_weights() == {"cat": {"cov": 0.8, "bbox": 0.2}}
    got = autoweight({"cat": {"cov": 0.5, "bbox": 0.25}}, {"cat": {"cov": 0.8, "bbox": 0.2}}, cfg)
    # raw: cov 2/0.5 = 4, bbox 1/0.25 = 4 -> 0.5 each
    assert got == {"cat": {"cov": 0.5, "bbox": 0.5}}
    got = autoweight({"cat": {"cov": 1.0, "bbox": 0.001}}, {"cat": {"cov": 0.8, "bbox": 0.2}}, cfg)
    assert got["cat"]["bbox"] == pytest.approx(0.9)  # clipped at max_objective_weight
    assert got["cat"]["cov"] == pytest.approx(0.01)  # clipped at min_objective_weight
    # Zero costs keep the current weights.
    same = autoweight({"cat": {"cov": 0.0, "bbox": 0.0}}, {"cat": {"cov": 0.3, "bbox": 0.7}}, cfg)
    assert same == {"cat": {"cov": 0.3, "bbox": 0.7}}


def test_bad_cost_config_is_named():
    cfg = CostConfig([TargetClassCost("person", class_weight=0.0)])
    with pytest.raises(ValueError, match="class_weight"):
        cfg.normalised_class_weights()


def test_soft_start_annealing_by_hand():
    s = SoftStartAnnealingSchedule(1e-6, 1e-2, soft_start=0.2, annealing=0.6, total_steps=1000)
    lr = lambda step: float(s(step))  # noqa: E731
    assert lr(0) == pytest.approx(1e-6, rel=1e-4)
    # Exponential ramp: halfway through soft start is the geometric mean.
    assert lr(100) == pytest.approx(1e-4, rel=1e-4)
    assert lr(200) == pytest.approx(1e-2, rel=1e-4)
    assert lr(400) == pytest.approx(1e-2, rel=1e-6)
    assert lr(600) == pytest.approx(1e-2, rel=1e-6)
    # Annealing from 0.6 to 1.0: at 0.8 the geometric mean again, at the end min_lr.
    assert lr(800) == pytest.approx(1e-4, rel=1e-4)
    assert lr(1000) == pytest.approx(1e-6, rel=1e-4)
    assert lr(5000) == pytest.approx(1e-6, rel=1e-4)  # clamped after the end
    values = [lr(i) for i in range(0, 1001, 50)]
    peak = values.index(max(values))
    assert all(a <= b + 1e-12 for a, b in zip(values[:peak], values[1 : peak + 1], strict=True))
    again = SoftStartAnnealingSchedule.from_config(s.get_config())
    assert float(again(300)) == lr(300)


def test_schedule_validation_and_adam():
    with pytest.raises(ValueError, match="soft_start"):
        SoftStartAnnealingSchedule(1e-6, 1e-3, soft_start=0.8, annealing=0.5, total_steps=10)
    with pytest.raises(ValueError, match="min_learning_rate"):
        SoftStartAnnealingSchedule(1e-2, 1e-3, soft_start=0.1, annealing=0.5, total_steps=10)
    s = SoftStartAnnealingSchedule(1e-5, 1e-3, soft_start=0.0, annealing=1.0, total_steps=10)
    opt = make_optimizer(s)
    var = tf.Variable([1.0])
    opt.apply_gradients([(tf.constant([1.0]), var)])
    # Adam's first step moves by about lr in the gradient's opposite direction.
    assert float(var.numpy()[0]) == pytest.approx(1.0 - 1e-3, rel=1e-3)
