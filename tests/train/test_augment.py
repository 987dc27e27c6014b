"""TAO's augmentation as cvlab applies it: matrices, resampling, boxes and the random draws.

Expected values are worked out by hand from the rules of TAO's default DetectNet_v2 loader
(NVIDIA/tao_tensorflow1_backend: ``cv/detectnet_v2/dataloader/drivenet_dataloader.py``,
``core/processors/augment/{spatial,color}.py``, ``core/lib/spatialtransform``). Distributions are
checked on many draws with fixed seeds (bounds exact, spreads within a few percent).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from cvlab.train.augment import (
    BACKGROUND,
    AugmentConfig,
    apply_color,
    augment_example,
    color_matrix,
    draw_color,
    draw_spatial,
    spatial_matrix,
    transform_boxes,
    warp_image,
)

W, H = 48, 32
# Spread of TF's truncated normal (cut at 2 sigma) relative to sigma.
TRUNCATED_STD = 0.8796


def params(**kw):
    base = dict(
        flip=0.0, translate_x=0.0, translate_y=0.0, zoom=1.0, zoom_x=0.0, zoom_y=0.0, angle=0.0
    )
    base.update(kw)
    return {k: tf.constant(v, tf.float32) for k, v in base.items()}


def colour(**kw):
    base = dict(contrast=0.0, hue=0.0, saturation=1.0, brightness=0.0)
    base.update(kw)
    return {k: tf.constant(v, tf.float32) for k, v in base.items()}


def random_image(seed=0, shape=(H, W, 3)):
    return tf.constant(np.random.default_rng(seed).random(shape, dtype=np.float32))


def test_flip_is_an_exact_mirror_and_moves_boxes():
    image = random_image()
    s = spatial_matrix(params(flip=1.0), W, H)
    np.testing.assert_array_equal(warp_image(image, s).numpy(), image.numpy()[:, ::-1])
    boxes = transform_boxes(tf.constant([[4.0, 2.0, 20.0, 30.0]]), s)
    np.testing.assert_allclose(boxes.numpy(), [[28.0, 2.0, 44.0, 30.0]])


def test_translation_by_whole_pixels_copies_pixels_and_fills_background():
    image = random_image(1)
    s = spatial_matrix(params(translate_x=3.0, translate_y=-2.0), W, H)
    out = warp_image(image, s).numpy()
    # Output pixel p samples source p + t: the content moves by (-3, +2).
    np.testing.assert_array_equal(out[2:, : W - 3], image.numpy()[: H - 2, 3:])
    assert (out[:2] == BACKGROUND).all() and (out[:, W - 3 :] == BACKGROUND).all()
    boxes = transform_boxes(tf.constant([[10.0, 10.0, 20.0, 25.0]]), s)
    np.testing.assert_allclose(boxes.numpy(), [[7.0, 12.0, 17.0, 27.0]])


def test_translation_draws_whole_pixels_in_the_inclusive_range():
    tf.random.set_seed(0)
    cfg = AugmentConfig(translate_max_x=3.7, translate_max_y=2.0)
    p = draw_spatial(cfg, W, H, shape=(4000,))
    tx, ty = p["translate_x"].numpy(), p["translate_y"].numpy()
    assert set(tx.tolist()) == {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}  # int(3.7) = 3
    assert set(ty.tolist()) == {-2.0, -1.0, 0.0, 1.0, 2.0}


def test_zoom_takes_a_random_window_not_the_centre():
    tf.random.set_seed(1)
    cfg = AugmentConfig(zoom_min=0.5, zoom_max=1.5, translate_max_x=0, translate_max_y=0)
    p = draw_spatial(cfg, W, H, shape=(4000,))
    r, zx = p["zoom"].numpy(), p["zoom_x"].numpy()
    assert r.min() >= 0.5 and r.max() < 1.5
    # t_x ~ U[0, W - W/r): between 0 and W - W/r whatever the sign.
    bound = W - W / r
    assert ((zx >= np.minimum(bound, 0) - 1e-4) & (zx <= np.maximum(bound, 0) + 1e-4)).all()
    # Not about the centre: for a given ratio the window's place varies across its range.
    near = np.abs(r - 0.6) < 0.02
    centre = (W - W / r[near]) / 2
    assert np.std(zx[near] - centre) > 0.2 * np.abs(centre).mean()


def test_zoom_in_window_moves_image_and_boxes_alike():
    image = np.zeros((H, W, 3), np.float32)
    image[8:16, 12:24] = 1.0  # a bright 12x8 block
    # r = 0.5, t = (-8, -4): output p samples source (p + (8, 4)) * 0.5, i.e. the 24x16
    # window starting at (4, 2), twice as large.
    s = spatial_matrix(params(zoom=0.5, zoom_x=-8.0, zoom_y=-4.0), W, H)
    out = warp_image(tf.constant(image), s).numpy()[..., 0]
    box = transform_boxes(tf.constant([[12.0, 8.0, 24.0, 16.0]]), s).numpy()[0]
    np.testing.assert_allclose(box, [16.0, 12.0, 40.0, 28.0], atol=1e-5)
    ys, xs = np.nonzero(out > 0.5)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (16, 40, 12, 28)


def test_zoom_out_leaves_background_around_the_image():
    image = random_image(2)
    s = spatial_matrix(params(zoom=2.0, zoom_x=10.0, zoom_y=4.0), W, H)
    out = warp_image(image, s).numpy()
    # The whole image shrinks to 24x16 placed at (10, 4); the rest is background.
    assert (out[:, :9] == BACKGROUND).all() and (out[:3] == BACKGROUND).all()
    assert (out[:, 35:] == BACKGROUND).all() and (out[21:] == BACKGROUND).all()
    box = transform_boxes(tf.constant([[0.0, 0.0, 48.0, 32.0]]), s).numpy()[0]
    np.testing.assert_allclose(box, [10.0, 4.0, 34.0, 20.0], atol=1e-5)


def test_rotation_limit_is_taken_as_degrees_as_tao_does():
    tf.random.set_seed(2)
    cfg = AugmentConfig(rotate_rad_max=30.0, rotate_probability=0.5)
    angles = draw_spatial(cfg, W, H, shape=(4000,))["angle"].numpy()
    assert np.abs(angles).max() <= math.radians(30.0) + 1e-6
    assert np.abs(angles).max() > math.radians(28.0)
    assert 0.4 < np.mean(angles == 0.0) < 0.6  # rotate_probability


def test_rotation_turns_about_the_canvas_centre_and_keeps_two_corners():
    s = spatial_matrix(params(angle=math.pi / 2), 32, 32)
    centre = transform_boxes(tf.constant([[16.0, 16.0, 16.0, 16.0]]), s).numpy()[0]
    np.testing.assert_allclose(centre, [16.0] * 4, atol=1e-4)
    # TAO transforms only the two stored corners of a box and takes their min/max.
    box = transform_boxes(tf.constant([[8.0, 12.0, 20.0, 16.0]]), s).numpy()[0]
    corners = np.array([[8.0, 12.0, 1.0], [20.0, 16.0, 1.0]]) @ np.linalg.inv(s.numpy())
    np.testing.assert_allclose(box, [*corners[:, :2].min(0), *corners[:, :2].max(0)], atol=1e-4)


def test_composition_order_rotate_zoom_translate_flip():
    p = params(flip=1.0, translate_x=2.0, zoom=0.5, zoom_x=-4.0, zoom_y=0.0)
    s = spatial_matrix(p, W, H).numpy()
    # Output pixel (x, y) -> zoom (x + 4, y) * 0.5 -> translate +2 -> flip W - x.
    x, y = 10.0, 6.0
    zx, zy = (x + 4.0) * 0.5 + 2.0, y * 0.5
    np.testing.assert_allclose(np.array([x, y, 1.0]) @ s, [W - zx, zy, 1.0], atol=1e-5)


def test_colour_steps_in_tao_order():
    v, c, b, centre = 0.3, 0.2, 0.1, 0.5
    image = tf.fill((2, 2, 3), v)
    m = color_matrix(colour(contrast=c, brightness=b), centre)
    out = apply_color(image, m).numpy()
    # Contrast first, brightness last: (1 + c) v - c * centre + b.
    np.testing.assert_allclose(out, (1 + c) * v - c * centre + b, rtol=1e-6)
    assert not np.isclose(out[0, 0, 0], (1 + c) * (v + b) - c * centre)


def test_hue_saturation_matrix():
    rgb = tf.constant([[[0.8, 0.2, 0.1]]])
    identity = apply_color(rgb, color_matrix(colour(), 0.5)).numpy()
    np.testing.assert_allclose(identity, rgb.numpy(), atol=1e-6)
    grey = apply_color(rgb, color_matrix(colour(saturation=0.0), 0.5)).numpy()
    np.testing.assert_allclose(grey, 0.299 * 0.8 + 0.587 * 0.2 + 0.114 * 0.1, rtol=1e-6)
    turned = apply_color(rgb, color_matrix(colour(hue=120.0), 0.5)).numpy()[0, 0]
    assert turned.argmax() != 0  # a third of a turn moves red away from the red channel


def test_colour_distributions():
    tf.random.set_seed(3)
    cfg = AugmentConfig(hue_rotation_max=20.0, saturation_shift_max=0.3, contrast_scale_max=0.4)
    p = {k: v.numpy() for k, v in draw_color(cfg, shape=(20000,)).items()}
    # Truncated normals with sigma = max / 2, cut at 2 sigma = max.
    for name, limit in (("hue", 20.0), ("contrast", 0.4)):
        assert np.abs(p[name]).max() <= limit
        assert np.std(p[name]) == pytest.approx(limit / 2 * TRUNCATED_STD, rel=0.03)
    sat = p["saturation"]
    assert sat.min() >= 0.7 and sat.max() < 1.3
    assert np.std(sat) == pytest.approx(0.6 / math.sqrt(12), rel=0.03)  # uniform
    # No brightness unless color_shift_stddev > 0.
    assert (p["brightness"] == 0).all()
    shifted = draw_color(AugmentConfig(color_shift_stddev=0.1), shape=(20000,))["brightness"]
    assert np.std(shifted.numpy()) == pytest.approx(0.1 * TRUNCATED_STD, rel=0.03)
    assert np.abs(shifted.numpy()).max() <= 0.2


def test_brightness_is_one_offset_for_all_channels():
    tf.random.set_seed(4)
    cfg = AugmentConfig(
        translate_max_x=0,
        translate_max_y=0,
        color_shift_stddev=0.1,
        hue_rotation_max=0.0,
        saturation_shift_max=0.0,
        contrast_scale_max=0.0,
    )
    image = tf.fill((4, 4, 3), 0.5)
    out, _, _ = augment_example(image, tf.zeros((0, 4)), tf.zeros((0,), tf.int64), cfg)
    out = out.numpy()
    assert np.ptp(out) < 1e-6 and abs(float(out[0, 0, 0]) - 0.5) > 1e-4


def test_augment_example_keeps_every_box_unclipped():
    tf.random.set_seed(5)
    cfg = AugmentConfig(hflip_probability=0.0, translate_max_x=6, translate_max_y=6)
    image = np.zeros((H, W, 3), np.float32)
    image[10:20, 10:20] = 1.0
    boxes = tf.constant([[10.0, 10.0, 20.0, 20.0], [-5.0, 0.0, 1.5, 40.0]])
    ids = tf.constant([0, 1], tf.int64)
    out, new_boxes, new_ids = augment_example(tf.constant(image), boxes, ids, cfg)
    assert new_ids.numpy().tolist() == [0, 1]
    shift = new_boxes.numpy() - boxes.numpy()
    # One whole-pixel shift for every box, even the one reaching outside the canvas.
    assert np.allclose(shift, shift[0]) and np.allclose(shift, np.round(shift))
    x1, y1, x2, y2 = new_boxes.numpy()[0]
    ys, xs = np.nonzero(out.numpy()[..., 0] > 0.75)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (x1, x2, y1, y2)


@pytest.mark.parametrize(
    "field,value",
    [
        ("hflip_probability", 1.5),
        ("zoom_min", 0.0),
        ("zoom_max", 0.5),
        ("translate_max_x", -1.0),
        ("rotate_rad_max", 400.0),
        ("rotate_probability", 1.1),
        ("hue_rotation_max", 361.0),
        ("saturation_shift_max", 1.5),
        ("color_shift_stddev", -0.1),
    ],
)
def test_values_out_of_tao_ranges_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        AugmentConfig(**{field: value})
