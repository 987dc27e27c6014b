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
    ellipse_matrices,
)

BOX = np.array([[16, 16, 80, 112]], np.float32)  # 4 x 6 cells at stride 16


def test_ellipse_matrices_by_hand():
    # The box in grid cells: (1, 1)-(5, 7).
    mats, radii, inv_area = ellipse_matrices(1, 1, 5, 7, 0.5, 0.5, 0.4, 0.4, 1.0, 0.67)
    # centre (3, 4) cells; half sizes 2 and 3; radii 0.4*2=0.8 -> scaled to 1 keeping the
    # aspect: ry = 1 * 1.2 / 0.8 = 1.5; deadzone = 0.33*r + 0.67*half size.
    dx, dy = 0.33 * 1.0 + 0.67 * 2.0, 0.33 * 1.5 + 0.67 * 3.0
    np.testing.assert_allclose(
        mats[0], [[1 / dx, 0, 0], [0, 1 / dy, 0], [-3 / dx, -4 / dy, 1]], rtol=1e-6
    )
    np.testing.assert_allclose(radii[0], [1.0 / dx, 1.5 / dy], rtol=1e-6)
    assert float(inv_area[0]) == pytest.approx(1.0 / 6.0)


def test_single_box_coverage_bbox_and_norm_by_hand():
    cov, bbox, norm = build_targets([BOX], (160, 128))
    assert cov.shape == (1, 8, 10) and bbox.shape == (4, 8, 10) and norm.shape == (1, 8, 10)
    covered = cov[0] > 0
    # The ellipse x in [2, 4], y in [2.5, 5.5] cells: columns 2-3, rows 2-5 only.
    assert set(zip(*np.nonzero(covered), strict=True)) == {
        (r, c) for r in range(2, 6) for c in (2, 3)
    }
    # Cell (row 3, col 2): sub-samples x 2.125..2.875, y 3.125..3.875; inside when
    # (x-3)^2 + ((y-4)/1.5)^2 < 1 -> 15 of 16 (the corner x=2.125, y=3.125 is out).
    assert cov[0, 3, 2] == pytest.approx(15 / 16)
    assert cov.max() <= 1.0 and cov.min() >= 0.0
    # bbox: L,T,R,B from the cell corner mapped to the input (16*j + 0.5) / 35, only where
    # covered.
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
    # bbox_min_radius 1 cell: a tiny box still gets coverage, and so does the zero-width one
    # (TAO draws every box it is given; its converters drop degenerate labels beforehand).
    assert cov[0].sum() > 0.5
    assert cov[0, :, 0].sum() > 0
    assert norm.max() <= 1.0 / 4.0 + 1e-6
    # Zero width: TAO's L and R ramps degenerate to the constant offset/scale.
    np.testing.assert_allclose(bbox[0, :3, 0], 0.5 / 35, rtol=1e-6)


def test_overlapping_boxes_replace_not_blend():
    # Two equal boxes side by side, overlapping by half: every covered cell holds exactly one
    # box's coverage and distances. The lower box (larger ymax, drawn last) takes a cell when
    # its deadzone coverage (>= its coverage) reaches the upper box's coverage.
    upper = np.array([16, 16, 80, 80], np.float32)
    lower = np.array([48, 20, 112, 84], np.float32)
    cfg = RasterizerConfig(target_class=TargetClassConfig(cov_radius_x=1.0, cov_radius_y=1.0))
    cov, bbox, _ = build_targets([np.stack([lower, upper])], (128, 112), cfg)
    alone = [build_targets([b[None]], (128, 112), cfg) for b in (upper, lower)]
    same_as = [(cov[0] == a[0][0]) & (bbox == a[1]).all(axis=0) for a in alone]
    covered = cov[0] > 0
    assert (same_as[0] | same_as[1])[covered].all()
    cov_upper, cov_lower = alone[0][0][0], alone[1][0][0]
    lower_wins = (cov_upper > 0) & (cov_lower >= cov_upper)
    assert lower_wins.any() and same_as[1][lower_wins].all()


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
