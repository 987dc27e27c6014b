"""TAO's objective and cost-function tests, ported to cvlab's targets, decoder and cost.

Ported from NVIDIA/tao_tensorflow1_backend (Apache-2.0; own test code, TAO's inputs and expected
values), all under ``nvidia_tao_tf1/cv/detectnet_v2/``:

* ``objectives/tests/test_bbox_objective.py``: the bbox label round trip (label -> bbox target
  gradients -> rasterised on a 5x6 grid -> absolute coordinates) and
  ``predictions_to_absolute`` of an all-ones prediction.
* ``objectives/tests/test_objective_set.py::test_get_objective_costs``: zero cost when the
  prediction equals the target.
* ``cost_function/tests/test_cost_function.py::test_cost_function``: 5 epochs x 2 minibatches of
  the cat/dog cost with auto-weighting; totals and updated objective weights.

Not ported: the ``Objective``/``TargetClass`` value checks of ``test_cost_function.py`` (spec
validation, done where the spec is read) and the visualisation/graph-construction tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from cvlab.inference.decode import decode_detectnet
from cvlab.train.losses import (
    CostConfig,
    Objective,
    TargetClassCost,
    autoweight,
    component_costs,
    total_cost,
)
from cvlab.train.targets import RasterizerConfig, TargetClassConfig, build_targets

# TAO's TestObjective: a 5x6 output grid at stride 16 (input 80x96), bbox scale 35, offset 0.5.
OUT_W, OUT_H, STRIDE, SCALE, OFFSET = 5, 6, 16, 35.0, 0.5
IN_W, IN_H = OUT_W * STRIDE, OUT_H * STRIDE
# Rasterised as TAO's check_label_roundtrip does: cov radius 1, min radius 1, centre 0.5,
# deadzone 1 (coverage radii 1 inside the deadzone space).
ROUND_TRIP = RasterizerConfig(
    target_class=TargetClassConfig(0.5, 0.5, 1.0, 1.0, 1.0), deadzone_radius=1.0
)


def tao_predictions_to_absolute(bbox: np.ndarray) -> np.ndarray:
    """TAO ``BboxObjective.predictions_to_absolute`` for one class: ``[4, H, W]`` -> absolute,
    with x2 clipped to ``[x1, W]`` and y2 to ``[y1, H]``."""
    gx = np.linspace(OFFSET, (OUT_W - 1) * IN_W / OUT_W + OFFSET, OUT_W)[None, :]
    gy = np.linspace(OFFSET, (OUT_H - 1) * IN_H / OUT_H + OFFSET, OUT_H)[:, None]
    d = bbox * SCALE
    x1 = np.clip(gx - d[0], 0, IN_W)
    y1 = np.clip(gy - d[1], 0, IN_H)
    x2 = np.clip(gx + d[2], x1, IN_W)
    y2 = np.clip(gy + d[3], y1, IN_H)
    return np.stack([x1, y1, x2, y2])


@pytest.mark.parametrize(
    "label,expected,cells",
    [
        # Regular box: unchanged.
        ([1.1, 21.1, 42.1, 66.666], [1.1, 21.1, 42.1, 66.666], 10),
        # Larger than the image: clipped to it.
        ([-10.1, -30.0, 150.0, 140.0], [0.0, 0.0, 80.0, 96.0], 30),
        # Negative height: y2 clipped up to y1.
        ([-10.1, 30.2, 50.0, 20.2], [0.0, 30.2, 50.0, 30.2], 15),
        # Negative width: x2 clipped up to x1.
        ([30.2, 50.0, 20.2, 60.0], [30.2, 50.0, 30.2, 60.0], 17),
    ],
)
def test_bbox_label_round_trip(label, expected, cells):
    cov, bbox, _ = build_targets([np.array([label], np.float32)], (IN_W, IN_H), ROUND_TRIP)
    assert bbox.shape == (4, OUT_H, OUT_W)
    drawn = bbox[0] != 0.0  # TAO compares the cells where the L target is non-zero
    # The number of cells is this port's own count (TAO only checks there are some).
    assert int(drawn.sum()) == cells
    decoded = tao_predictions_to_absolute(bbox)
    for k in range(4):
        np.testing.assert_allclose(decoded[k][drawn], expected[k], atol=1e-5)
    if label[0] <= label[2] and label[1] <= label[3]:
        # cvlab's decoder agrees with TAO's on upright boxes.
        grid = decode_detectnet(cov, bbox, model_size=(IN_W, IN_H), image_size=(IN_W, IN_H))
        got = grid.boxes[0].reshape(OUT_H, OUT_W, 4)[drawn]
        np.testing.assert_allclose(got, np.broadcast_to(expected, got.shape), atol=1e-4)


def test_predictions_to_absolute_of_all_ones():
    ones = np.ones((1, OUT_H, OUT_W), np.float32)
    grid = decode_detectnet(
        ones, np.ones((4, OUT_H, OUT_W), np.float32), model_size=(IN_W, IN_H), bbox_norm=SCALE
    )
    x = np.tile(np.arange(OUT_W, dtype=np.float32) * STRIDE + OFFSET, (OUT_H, 1))
    y = np.tile(np.arange(OUT_H, dtype=np.float32)[:, None] * STRIDE + OFFSET, (1, OUT_W))
    x1 = np.clip(x - SCALE, 0, IN_W)
    y1 = np.clip(y - SCALE, 0, IN_H)
    x2 = np.minimum(np.maximum(x + SCALE, x1), IN_W)
    y2 = np.minimum(np.maximum(y + SCALE, y1), IN_H)
    expected = np.stack([x1, y1, x2, y2], axis=-1).reshape(-1, 4)
    np.testing.assert_allclose(grid.boxes[0], expected, rtol=1e-6)
    np.testing.assert_allclose(
        tao_predictions_to_absolute(np.ones((4, OUT_H, OUT_W))),
        np.moveaxis(expected.reshape(OUT_H, OUT_W, 4), -1, 0),
    )


def test_objective_costs_are_zero_for_a_perfect_prediction():
    # TAO's test builds the target class from an empty proto: coverage_foreground_weight 0.
    cfg = CostConfig([TargetClassCost("car", coverage_foreground_weight=0.0)])
    one = tf.ones((1, 1, 1, 1))
    targets = {"cov": one, "cov_norm": one, "bbox": tf.ones((1, 4, 1, 1))}
    costs = component_costs(targets, (one, tf.ones((1, 4, 1, 1))), 1, cfg)
    assert float(costs["car"]["cov"]) == 0.0 and float(costs["car"]["bbox"]) == 0.0


# --- cost_function/tests/test_cost_function.py -------------------------------------------------
CAT_DOG = CostConfig(
    [
        TargetClassCost("cat", 1.0, 0.9, [Objective("cov", 4.0, 2.0), Objective("bbox", 1.0, 1.0)]),
        TargetClassCost("dog", 3.0, 0.5, [Objective("cov", 1.0, 1.0), Objective("bbox", 3.0, 3.0)]),
    ],
    enable_autoweighting=True,
    max_objective_weight=0.9999,
    min_objective_weight=0.0001,
)
# Total cost per minibatch and the weights after each epoch (cat cov, cat bbox, dog cov, dog
# bbox), as TAO's numpy expectation gives them for these inputs (computed in float64).
EXPECTED_TOTALS = [
    (2.3191650, 1.5114767), (1.0111043, 0.8500252), (0.3497076, 0.2720951),
    (0.1735916, 0.1132492), (0.0505491, -0.0000039),
]  # fmt: skip
EXPECTED_WEIGHTS = [
    (0.7537943, 0.2462057, 0.4787586, 0.5212414),
    (0.9249999, 0.0750001, 0.7872371, 0.2127629),
    (0.9407868, 0.0592132, 0.8265881, 0.1734119),
    (0.9494906, 0.0505094, 0.8493963, 0.1506037),
    (0.9544801, 0.0455199, 0.8628893, 0.1371107),
]


def _tao_expected_costs(cov_t, norm_t, bbox_t, cov_p, bbox_p, fg):
    eps = 1e-5
    bce = -(cov_t * np.log(cov_p + eps) + (1 - cov_t) * np.log(1 - cov_p + eps))
    cov_cost = np.mean(np.where(cov_t > 0.5, fg, 1 - fg) * bce)
    bbox_cost = np.mean(norm_t * np.abs(bbox_p - bbox_t))
    return cov_cost, bbox_cost


def test_cost_function_with_autoweighting_over_five_epochs():
    assert CAT_DOG.normalised_class_weights() == {"cat": 0.25, "dog": 0.75}
    weights = CAT_DOG.normalised_objective_weights()
    assert weights == {"cat": {"cov": 0.8, "bbox": 0.2}, "dog": {"cov": 0.25, "bbox": 0.75}}
    class_w = CAT_DOG.normalised_class_weights()
    # Batch 1, two classes, a 4x4 grid; every target is 1 on the centre 2x2 cells.
    target = np.zeros((1, 1, 4, 4), np.float32)
    target[..., 1:3, 1:3] = 1.0
    targets = {
        "cov": tf.constant(np.repeat(target, 2, axis=1)),
        "cov_norm": tf.constant(np.repeat(target, 2, axis=1)),
        "bbox": tf.constant(np.repeat(target, 8, axis=1)),
    }
    epochs, batches = 5, 2
    for epoch in range(epochs):
        sums = {n: {"cov": 0.0, "bbox": 0.0} for n in ("cat", "dog")}
        for batch in range(batches):
            # The network "learns": predictions close in on the targets batch after batch.
            v = (epoch * batches + batch) / (epochs * batches - 1)
            cov_p = np.zeros((1, 2, 4, 4), np.float32)
            bbox_p = np.zeros((1, 8, 4, 4), np.float32)
            cov_p[..., 1:3, 1:3] = v
            bbox_p[..., 1:3, 1:3] = 11.0 - 10.0 * v
            costs = component_costs(targets, (tf.constant(cov_p), tf.constant(bbox_p)), 2, CAT_DOG)
            total = float(total_cost(costs, class_w, weights))
            expected = 0.0
            for c, tc in enumerate(CAT_DOG.target_classes):
                cov_cost, bbox_cost = _tao_expected_costs(
                    target[0, 0],
                    target[0, 0],
                    np.repeat(target[0], 4, axis=0),
                    cov_p[0, c].astype(np.float64),
                    bbox_p[0, 4 * c : 4 * c + 4].astype(np.float64),
                    tc.coverage_foreground_weight,
                )
                sums[tc.name]["cov"] += float(costs[tc.name]["cov"])
                sums[tc.name]["bbox"] += float(costs[tc.name]["bbox"])
                assert float(costs[tc.name]["cov"]) == pytest.approx(cov_cost, rel=1e-5, abs=1e-7)
                assert float(costs[tc.name]["bbox"]) == pytest.approx(bbox_cost, rel=1e-6)
                w = weights[tc.name]
                expected += class_w[tc.name] * (w["cov"] * cov_cost + w["bbox"] * bbox_cost)
            np.testing.assert_almost_equal(total, expected, decimal=6)
            np.testing.assert_almost_equal(total, EXPECTED_TOTALS[epoch][batch], decimal=6)
        # End of epoch: TAO's CostAutoWeightHook (summed costs; the mean gives the same weights).
        means = {n: {o: s / batches for o, s in per.items()} for n, per in sums.items()}
        weights = autoweight(means, weights, CAT_DOG)
        got = (
            weights["cat"]["cov"],
            weights["cat"]["bbox"],
            weights["dog"]["cov"],
            weights["dog"]["bbox"],
        )
        np.testing.assert_almost_equal(got, EXPECTED_WEIGHTS[epoch], decimal=6)
