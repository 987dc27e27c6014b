"""TAO ``augmentation_config`` as TensorFlow ops on one example (image + boxes).

As TAO DetectNet_v2's default (multi-source) loader draws and applies it, per image:

* Spatial: one 3x3 matrix ``S`` (row vectors) mapping an output pixel to the source image,
  ``S = R . Z . T . F``: rotation about the canvas centre, zoom, translation, horizontal flip
  (TAO pre-multiplies each processor's matrix in the order flip, translate, zoom, rotate).

  - flip when ``U[0,1) < hflip_probability`` (``vflip_probability`` is ignored, as in TAO);
  - translation by whole pixels ``tx, ty ~ U{-max, ..., max}`` (``translate_max_*`` truncated to
    an int); output pixel ``p`` samples source ``p + t``;
  - zoom ``r ~ U[zoom_min, zoom_max)`` from a random window: ``t ~ U[0, W - W/r)`` per axis and
    source ``= (p - t) * r`` (``r > 1`` shrinks the image into a random place of the canvas,
    ``r < 1`` crops a random window of ``r * W``);
  - rotation ``a ~ U[radians(-m), radians(m))`` with ``m = rotate_rad_max``, when
    ``U[0,1) <= rotate_probability`` (a spec's 0/unset probability is 1.0, as TAO reads it).
    TAO's rotation processor takes degrees and DetectNet passes ``rotate_rad_max`` unchanged,
    so the spec value acts as **degrees**; cvlab follows TAO (a spec of 0.69 rotates by at most
    0.69 degrees, not 0.69 radians).

  The image is resampled bilinearly at pixel centres with background 0.5 (exact copies for
  flips and whole-pixel translations); each box's two corners ``(x1, y1)``, ``(x2, y2)`` go
  through ``S^-1`` and the new box is their per-axis min/max. Boxes are neither clipped nor
  dropped here (TAO's loader does neither after augmenting; parts outside the canvas
  rasterise nothing). Before augmenting, the data pipeline sorts each box's corners and drops
  boxes under 1 px, as TAO's loader does (:func:`cvlab.train.dataset.tao_label_boxes`).
* Colour (3 channels): one 4x4 matrix on ``[r, g, b, 1]`` rows, clipped to ``[0, 1]``, applying
  contrast, then hue/saturation, then brightness (TAO's order):

  - contrast ``c ~ TruncNormal(0, contrast_scale_max / 2)``: ``v' = (1 + c) v - c * center``;
  - hue ``h ~ TruncNormal(0, hue_rotation_max / 2)`` degrees and saturation
    ``s = 1 + U[-saturation_shift_max, saturation_shift_max)``, TAO's linear YIQ-like matrix;
  - brightness only when ``color_shift_stddev > 0``: one offset
    ``b ~ TruncNormal(0, color_shift_stddev)`` added to all three channels.

  Truncated normals are TensorFlow's (redrawn beyond two standard deviations).

Images are float32 RGB in ``[0, 1]``, ``[H, W, 3]``; boxes ``[N, 4]`` ``x1, y1, x2, y2`` px.

Example:
    >>> cfg = AugmentConfig(hflip_probability=1.0, translate_max_x=0, translate_max_y=0)
    >>> spatial_matrix(draw_spatial(cfg, 8, 4), 8, 4).numpy().tolist()
    [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [8.0, 0.0, 1.0]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The value of pixels sampled from outside the source image (TAO's ``background_value``).
BACKGROUND = 0.5

#: TAO's hue/saturation matrices (row-vector convention): ``K + s cos(h) A + s sin(h) B``.
_HUE_K = (
    (0.299, 0.299, 0.299, 0.0),
    (0.587, 0.587, 0.587, 0.0),
    (0.114, 0.114, 0.114, 0.0),
    (0.0, 0.0, 0.0, 1.0),
)
_HUE_A = (
    (0.701, -0.299, -0.299, 0.0),
    (-0.587, 0.413, -0.587, 0.0),
    (-0.114, -0.114, 0.886, 0.0),
    (0.0, 0.0, 0.0, 0.0),
)
_HUE_B = (
    (0.168, -0.328, 1.25, 0.0),
    (0.330, 0.035, -1.05, 0.0),
    (-0.497, 0.292, -0.203, 0.0),
    (0.0, 0.0, 0.0, 0.0),
)


@dataclass(frozen=True)
class AugmentConfig:
    """TAO ``augmentation_config`` (spatial + colour) values; defaults = TAO's default spec.

    Checked as TAO checks them (``ValueError`` naming the field).

    >>> AugmentConfig(zoom_min=0.0)
    Traceback (most recent call last):
    ...
    ValueError: augmentation_config: zoom_min must be > 0, got 0.0
    """

    hflip_probability: float = 0.5
    zoom_min: float = 1.0
    zoom_max: float = 1.0
    translate_max_x: float = 8.0
    translate_max_y: float = 8.0
    rotate_rad_max: float = 0.0
    rotate_probability: float = 1.0
    color_shift_stddev: float = 0.0
    hue_rotation_max: float = 25.0
    saturation_shift_max: float = 0.2
    contrast_scale_max: float = 0.1
    contrast_center: float = 0.5

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(
                f"augmentation_config: {name} must be {rule}, got {getattr(self, name)}"
            )

        if not 0.0 <= self.hflip_probability <= 1.0:
            raise bad("hflip_probability", "in [0, 1]")
        if not self.zoom_min > 0.0:
            raise bad("zoom_min", "> 0")
        if self.zoom_min > self.zoom_max:
            raise bad("zoom_max", f">= zoom_min ({self.zoom_min})")
        for name in ("translate_max_x", "translate_max_y", "color_shift_stddev"):
            if getattr(self, name) < 0.0:
                raise bad(name, ">= 0")
        if not 0.0 <= self.rotate_rad_max <= 360.0:
            raise bad("rotate_rad_max", "in [0, 360] (TAO takes it as degrees)")
        if not 0.0 <= self.rotate_probability <= 1.0:
            raise bad("rotate_probability", "in [0, 1]")
        if not 0.0 <= self.hue_rotation_max <= 360.0:
            raise bad("hue_rotation_max", "in [0, 360]")
        if not 0.0 <= self.saturation_shift_max <= 1.0:
            raise bad("saturation_shift_max", "in [0, 1]")
        if self.contrast_scale_max < 0.0:
            raise bad("contrast_scale_max", ">= 0")


# --- random draws ---------------------------------------------------------------------------
def draw_spatial(config: AugmentConfig, width: float, height: float, shape=()) -> dict:
    """The random spatial parameters of ``shape`` images (a dict of float32 tensors)."""
    import tensorflow as tf

    shape = list(shape)
    flip = tf.cast(tf.random.uniform(shape) < config.hflip_probability, tf.float32)
    mx, my = int(config.translate_max_x), int(config.translate_max_y)
    tx = tf.random.uniform(shape, -mx, mx + 1, dtype=tf.int32)
    ty = tf.random.uniform(shape, -my, my + 1, dtype=tf.int32)
    zoom = tf.random.uniform(shape, config.zoom_min, config.zoom_max)
    # U[0, W - W/r): negative for r < 1 (the window then starts inside the source).
    zx = tf.random.uniform(shape) * (width - width / zoom)
    zy = tf.random.uniform(shape) * (height - height / zoom)
    limit = math.radians(config.rotate_rad_max)
    angle = tf.random.uniform(shape, -limit, limit) if limit > 0 else tf.zeros(shape)
    rotate = tf.random.uniform(shape) <= config.rotate_probability
    return {
        "flip": flip,
        "translate_x": tf.cast(tx, tf.float32),
        "translate_y": tf.cast(ty, tf.float32),
        "zoom": zoom,
        "zoom_x": zx,
        "zoom_y": zy,
        "angle": tf.where(rotate, angle, 0.0),
    }


def draw_color(config: AugmentConfig, shape=()) -> dict:
    """The random colour parameters of ``shape`` images (a dict of float32 tensors)."""
    import tensorflow as tf

    shape = list(shape)

    def truncated(stddev: float):
        if stddev <= 0:
            return tf.zeros(shape)
        return tf.random.truncated_normal(shape, stddev=stddev)

    s = config.saturation_shift_max
    saturation = 1.0 + (tf.random.uniform(shape, -s, s) if s > 0 else tf.zeros(shape))
    return {
        "contrast": truncated(config.contrast_scale_max / 2.0),
        "hue": truncated(config.hue_rotation_max / 2.0),
        "saturation": saturation,
        "brightness": truncated(config.color_shift_stddev),
    }


# --- matrices -------------------------------------------------------------------------------
def _matrix(rows):
    import tensorflow as tf

    return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)


def spatial_matrix(params: dict, width: float, height: float):
    """``S = R . Z . T . F`` (``[..., 3, 3]``, row vectors, output pixel -> source pixel)."""
    import tensorflow as tf

    h = params["flip"]
    zero, one = tf.zeros_like(h), tf.ones_like(h)
    flip = _matrix([[one - 2.0 * h, zero, zero], [zero, one, zero], [h * width, zero, one]])
    tx, ty = params["translate_x"], params["translate_y"]
    translate = _matrix([[one, zero, zero], [zero, one, zero], [tx, ty, one]])
    r = params["zoom"]
    zx, zy = params["zoom_x"], params["zoom_y"]
    zoom = _matrix([[r, zero, zero], [zero, r, zero], [-zx * r, -zy * r, one]])
    a = params["angle"]
    cos, sin = tf.cos(a), tf.sin(a)
    x_t = height * sin / 2.0 - width * cos / 2.0 + width / 2.0
    y_t = -height * cos / 2.0 + height / 2.0 - width * sin / 2.0
    rotate = _matrix([[cos, sin, zero], [-sin, cos, zero], [x_t, y_t, one]])
    return rotate @ zoom @ translate @ flip


def color_matrix(params: dict, contrast_center: float):
    """``Contrast . HueSaturation . Brightness`` (``[..., 4, 4]``, on ``[r, g, b, 1]`` rows)."""
    import tensorflow as tf

    c = params["contrast"]
    zero, one = tf.zeros_like(c), tf.ones_like(c)
    scale, bias = one + c, -c * contrast_center
    contrast = _matrix(
        [
            [scale, zero, zero, zero],
            [zero, scale, zero, zero],
            [zero, zero, scale, zero],
            [bias, bias, bias, one],
        ]
    )
    angle = params["hue"] * (math.pi / 180.0)
    sch = (params["saturation"] * tf.cos(angle))[..., None, None]
    ssh = (params["saturation"] * tf.sin(angle))[..., None, None]
    hue = tf.constant(_HUE_K) + sch * tf.constant(_HUE_A) + ssh * tf.constant(_HUE_B)
    b = params["brightness"]
    brightness = _matrix(
        [[one, zero, zero, zero], [zero, one, zero, zero], [zero, zero, one, zero], [b, b, b, one]]
    )
    return contrast @ hue @ brightness


# --- applying them --------------------------------------------------------------------------
def warp_image(image, matrix):
    """Resample ``image [H, W, C]`` through ``matrix`` (bilinear at pixel centres, background
    :data:`BACKGROUND`), as TAO's spatial-transform op does."""
    import tensorflow as tf

    s = matrix
    # TAO samples source (p + 0.5) . S - 0.5 for output pixel index p; TF takes index -> index.
    transform = tf.stack(
        [
            s[0, 0],
            s[1, 0],
            0.5 * s[0, 0] + 0.5 * s[1, 0] + s[2, 0] - 0.5,
            s[0, 1],
            s[1, 1],
            0.5 * s[0, 1] + 0.5 * s[1, 1] + s[2, 1] - 0.5,
            0.0,
            0.0,
        ]
    )
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform[None],
        output_shape=tf.shape(image)[:2],
        fill_value=BACKGROUND,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )[0]


def transform_boxes(boxes, matrix):
    """Boxes ``[N, 4]`` through ``matrix^-1``: both corners mapped, then per-axis min/max."""
    import tensorflow as tf

    inverse = tf.linalg.inv(matrix)
    ones = tf.ones_like(boxes[:, :1])
    p1 = tf.concat([boxes[:, 0:2], ones], axis=1) @ inverse
    p2 = tf.concat([boxes[:, 2:4], ones], axis=1) @ inverse
    return tf.stack(
        [
            tf.minimum(p1[:, 0], p2[:, 0]),
            tf.minimum(p1[:, 1], p2[:, 1]),
            tf.maximum(p1[:, 0], p2[:, 0]),
            tf.maximum(p1[:, 1], p2[:, 1]),
        ],
        axis=1,
    )


def apply_color(image, matrix):
    """``[r, g, b, 1] . matrix`` per pixel, clipped to ``[0, 1]``."""
    import tensorflow as tf

    rgb1 = tf.concat([image, tf.ones_like(image[..., :1])], axis=-1)
    out = tf.tensordot(rgb1, matrix, axes=[[2], [0]])[..., :3]
    return tf.clip_by_value(out, 0.0, 1.0)


def augment_example(image, boxes, class_ids, config: AugmentConfig):
    """Spatial then colour augmentation of one example; returns ``(image, boxes, class_ids)``."""
    import tensorflow as tf

    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    spatial = spatial_matrix(draw_spatial(config, width, height), width, height)
    image = warp_image(image, spatial)
    boxes = transform_boxes(tf.reshape(boxes, (-1, 4)), spatial)
    if image.shape[-1] == 3:
        image = apply_color(image, color_matrix(draw_color(config), config.contrast_center))
    return image, boxes, class_ids
