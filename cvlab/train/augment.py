"""TAO ``augmentation_config`` as TensorFlow ops on one example (image + boxes).

Spatial: horizontal flip with ``hflip_probability``, random zoom in ``[zoom_min, zoom_max]``
about the image centre and a random translation of up to ``translate_max_x/y`` pixels (one
affine warp, boxes moved with it, clipped and dropped when smaller than ``min_bbox_width/height``).
Colour: hue rotation (degrees), saturation shift, contrast scale about ``contrast_center`` and a
brightness offset. Images are float32 RGB in ``[0, 1]``, ``[H, W, 3]``; boxes ``[N, 4]`` xyxy px.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentConfig:
    """TAO ``augmentation_config`` (spatial + colour) values; defaults follow the TAO samples."""

    hflip_probability: float = 0.5
    zoom_min: float = 1.0
    zoom_max: float = 1.0
    translate_max_x: float = 8.0
    translate_max_y: float = 8.0
    hue_rotation_max: float = 25.0
    saturation_shift_max: float = 0.2
    contrast_scale_max: float = 0.1
    contrast_center: float = 0.5
    brightness_shift_max: float = 0.05
    min_bbox_width: float = 1.0
    min_bbox_height: float = 1.0


def spatial_augment(image, boxes, config: AugmentConfig):
    """Random flip + zoom + translation applied to the image and the boxes alike."""
    import tensorflow as tf

    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    flip = tf.random.uniform([]) < config.hflip_probability
    zoom = tf.random.uniform([], config.zoom_min, config.zoom_max + 1e-9)
    dx = tf.random.uniform([], -config.translate_max_x, config.translate_max_x + 1e-9)
    dy = tf.random.uniform([], -config.translate_max_y, config.translate_max_y + 1e-9)
    # Forward map: x' = s * x + tx, with an optional flip x -> W - x first.
    sx = tf.where(flip, -zoom, zoom)
    tx = tf.where(flip, zoom * width, 0.0) + (1.0 - zoom) * width / 2.0 + dx
    ty = (1.0 - zoom) * height / 2.0 + dy
    # ImageProjectiveTransform takes the inverse map (output -> input) in pixel indices, whose
    # centres sit at index + 0.5 in the continuous coordinates the boxes use.
    inverse = tf.stack(
        [
            1.0 / sx,
            0.0,
            (0.5 - tx) / sx - 0.5,
            0.0,
            1.0 / zoom,
            (0.5 - ty) / zoom - 0.5,
            0.0,
            0.0,
        ]
    )
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=inverse[None],
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )[0]
    x1 = sx * boxes[:, 0] + tx
    x2 = sx * boxes[:, 2] + tx
    y1 = zoom * boxes[:, 1] + ty
    y2 = zoom * boxes[:, 3] + ty
    new = tf.stack(
        [
            tf.clip_by_value(tf.minimum(x1, x2), 0.0, width),
            tf.clip_by_value(y1, 0.0, height),
            tf.clip_by_value(tf.maximum(x1, x2), 0.0, width),
            tf.clip_by_value(y2, 0.0, height),
        ],
        axis=1,
    )
    keep = ((new[:, 2] - new[:, 0]) >= config.min_bbox_width) & (
        (new[:, 3] - new[:, 1]) >= config.min_bbox_height
    )
    return warped, new, keep


def color_augment(image, config: AugmentConfig):
    """Random hue rotation, saturation shift, contrast scale and brightness offset."""
    import tensorflow as tf

    if config.hue_rotation_max > 0:
        delta = config.hue_rotation_max / 360.0
        image = tf.image.adjust_hue(image, tf.random.uniform([], -delta, delta))
    if config.saturation_shift_max > 0:
        shift = tf.random.uniform([], -config.saturation_shift_max, config.saturation_shift_max)
        image = tf.image.adjust_saturation(image, 1.0 + shift)
    if config.contrast_scale_max > 0:
        scale = 1.0 + tf.random.uniform([], -config.contrast_scale_max, config.contrast_scale_max)
        image = (image - config.contrast_center) * scale + config.contrast_center
    if config.brightness_shift_max > 0:
        image = image + tf.random.uniform(
            [], -config.brightness_shift_max, config.brightness_shift_max
        )
    return tf.clip_by_value(image, 0.0, 1.0)


def augment_example(image, boxes, class_ids, config: AugmentConfig):
    """Spatial then colour augmentation; returns ``(image, boxes, class_ids)`` with small boxes dropped."""
    import tensorflow as tf

    image, boxes, keep = spatial_augment(image, boxes, config)
    image = color_augment(image, config)
    return image, tf.boolean_mask(boxes, keep), tf.boolean_mask(class_ids, keep)
