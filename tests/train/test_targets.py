"""TAO-style target rasterisation: hand-computed cases and the decode round trip."""

from __future__ import annotations

import numpy as np
import pytest

from cvlab.inference.decode import decode_detectnet
from cvlab.train.targets import (
    RasterizerConfig,
    TargetClassConfig,
    build_targets,
    build_targets_from_arrays,
    ellipse_parameters,
)

BOX = np.array([[16, 16, 80, 112]], np.float32)  # 4 x 6 cells at stride 16


def test_ellipse_parameters_by_hand():
    cx, cy, rx, ry, dx, dy, inv_area = ellipse_parameters(BOX[0], TargetClassConfig(), 0.67, 16)
    # centre (3, 4) cells; half sizes 2 and 3; radii 0.4*2=0.8 -> clamped to 1 keeping the
    # aspect: ry = 1 * 1.2 / 0.8 = 1.5; deadzone = 0.33*r + 0.67*half size.
    assert (cx, cy) == (3.0, 4.0)
    assert rx == pytest.approx(1.0) and ry == pytest.approx(1.5)
    assert dx == pytest.approx(0.33 * 1.0 + 0.67 * 2.0)
    assert dy == pytest.approx(0.33 * 1.5 + 0.67 * 3.0)
    assert inv_area == pytest.approx(1.0 / 6.0)


def test_single_box_coverage_bbox_and_norm_by_hand():
    cov, bbox, norm = build_targets([BOX], (160, 128))
    assert cov.shape == (1, 8, 10) and bbox.shape == (4, 8, 10) and norm.shape == (1, 8, 10)
    covered = cov[0] > 0
    # The ellipse x in [2, 4], y in [2.5, 5.5] cells: columns 2-3, rows 2-5 only.
    assert set(zip(*np.nonzero(covered), strict=True)) == {
        (r, c) for r in range(2, 6) for c in (2, 3)
    }
    # Cell (row 3, col 2): sub-samples x 2.125..2.875, y 3.125..3.875; inside when
    # (x-3)^2 + ((y-4)/1.5)^2 <= 1 -> 15 of 16 (the corner x=2.125, y=3.125 is out).
    assert cov[0, 3, 2] == pytest.approx(15 / 16)
    assert cov.max() <= 1.0 and cov.min() >= 0.0
    # bbox: L,T,R,B from the cell centre (16*j + 0.5) / 35, only where covered.
    gx, gy = 16 * 2 + 0.5, 16 * 3 + 0.5
    np.testing.assert_allclose(
        bbox[:, 3, 2], np.array([gx - 16, gy - 16, 80 - gx, 112 - gy]) / 35.0, rtol=1e-6
    )
    assert (bbox[:, ~covered] == 0).all()
    # cov_norm = coverage * 1 / (4 * rx * ry)
    np.testing.assert_allclose(norm[0], cov[0] / 6.0, rtol=1e-6)


def test_round_trip_through_core_decode():
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(4):
        w, h = rng.uniform(20, 60), rng.uniform(40, 100)
        x1, y1 = rng.uniform(0, 320 - w), rng.uniform(0, 192 - h)
        boxes.append([x1, y1, x1 + w, y1 + h])
    boxes = np.array(boxes, np.float32)
    cov, bbox, _ = build_targets([boxes[:2], boxes[2:]], (320, 192))
    grid = decode_detectnet(cov, bbox, model_size=(320, 192), image_size=(320, 192))
    for c, cls_boxes in enumerate((boxes[:2], boxes[2:])):
        cells = np.flatnonzero(cov[c].reshape(-1) > 0)
        assert cells.size
        decoded = grid.boxes[c, cells]
        # Every covered cell decodes to exactly one of its class's boxes (clip aside).
        dist = np.abs(decoded[:, None, :] - np.clip(cls_boxes, 0, [320, 192, 320, 192])[None]).max(
            -1
        )
        assert (dist.min(axis=1) < 1e-3).all()
        assert set(dist.argmin(axis=1)) == set(range(len(cls_boxes))) or len(cls_boxes) == 1


def test_closer_box_drawn_last_wins_and_clears_deadzone():
    far = np.array([40, 20, 120, 100], np.float32)  # ymax 100
    near = np.array([48, 30, 112, 130], np.float32)  # ymax 130: drawn last
    results = []
    for order in ([far, near], [near, far]):
        cov, bbox, norm = build_targets([np.stack(order)], (160, 160))
        results.append((cov, bbox, norm))
        grid = decode_detectnet(cov, bbox, model_size=(160, 160), image_size=(160, 160))
        centre = 5 * 10 + 5  # cell (row 5, col 5), inside both ellipses
        np.testing.assert_allclose(grid.boxes[0, centre], near, atol=1e-3)
        cells = np.flatnonzero(cov[0].reshape(-1) > 0)
        decoded = grid.boxes[0, cells]
        is_near = np.abs(decoded - near).max(1) < 1e-3
        is_far = np.abs(decoded - far).max(1) < 1e-3
        assert (is_near | is_far).all() and is_near.sum() > is_far.sum()
    # The drawing order depends on ymax only, not on the label order.
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
    # The near box's deadzone lowers the far box's coverage even where the near box's own
    # coverage is zero.
    alone_far = build_targets([far[None]], (160, 160))[0][0]
    alone_near = build_targets([near[None]], (160, 160))[0][0]
    both = results[0][0][0]
    assert ((alone_far > 0) & (alone_near == 0) & (both < alone_far - 1e-6)).any()


def test_min_radius_and_degenerate_boxes():
    tiny = np.array([[50, 50, 52, 53], [10, 10, 10, 30]], np.float32)  # 2x3 px and zero width
    cov, bbox, norm = build_targets([tiny], (96, 96))
    # bbox_min_radius 1 cell: a tiny box still gets coverage; the degenerate one none.
    assert cov[0].sum() > 0.5
    assert cov[0, :, 0].sum() == 0
    assert norm.max() <= 1.0 / 4.0 + 1e-6


def test_flat_arrays_and_tf_wrapper_agree():
    import tensorflow as tf

    from cvlab.train.targets import tf_build_targets

    boxes = np.array([[10, 20, 60, 90], [70, 10, 150, 80]], np.float32)
    ids = np.array([1, 0])
    expect = build_targets_from_arrays(boxes, ids, 2, (160, 96))
    np.testing.assert_array_equal(
        expect[0][1], build_targets([boxes[1:], boxes[:1]], (160, 96))[0][1]
    )
    got = tf_build_targets(tf.constant(boxes), tf.constant(ids, tf.int64), 2, (160, 96))
    for a, b in zip(expect, got, strict=True):
        np.testing.assert_array_equal(a, b.numpy())


def test_per_class_config():
    cfg = RasterizerConfig(per_class=(TargetClassConfig(cov_radius_x=1.0, cov_radius_y=1.0),))
    wide, _, _ = build_targets([BOX], (160, 128), cfg)
    narrow, _, _ = build_targets([BOX], (160, 128))
    assert (wide[0] > 0).sum() > (narrow[0] > 0).sum()
