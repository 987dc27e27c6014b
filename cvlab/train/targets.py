"""DetectNet_v2 training targets, rasterised by TAO's per-cell rules (``RasterizeBbox``).

Two layers, both numpy (float32, the operation order of TAO's TensorFlow graph and C++ kernel):

* :func:`rasterize_boxes` is TAO's generic box rasteriser: every box carries a 3x3 matrix that
  maps output pixels into a space where its *deadzone* is the unit circle (or square), its
  coverage radii inside that space, and one linear gradient ``g = x*A + y*B + C`` per output
  channel. Per output cell (class by class, boxes in ascending ``sort_value``): coverage ``c`` and
  deadzone coverage ``a`` are the fractions of the cell's 4x4 sub-samples inside the shape
  (strict ``< 1``); a box whose ``a >= max coverage so far`` clears the cell, and then takes it if
  its ``c >= max coverage`` (``> 0``), writing ``g`` at the integer cell corner ``(x, y)``
  (multiplied by ``c`` for coverage-mode channels). The later box replaces; nothing is blended.
* :func:`build_targets` is TAO's ``BboxRasterizer`` for DetectNet_v2 labels: boxes scaled to the
  output grid, ellipse matrices from ``cov_center``/``cov_radius``/``bbox_min_radius``/
  ``deadzone_radius`` (:func:`ellipse_matrices`), sort value = ``ymax`` (lower boxes on top), and
  three objectives: ``cov`` (coverage), ``cov_norm`` (coverage / max(4*rx*ry, 1)) and ``bbox``
  (``L, T, R, B`` = distances from ``(16*x + offset, 16*y + offset)`` to the edges / ``scale``,
  pass-through).

Example:
    >>> import numpy as np
    >>> cov, bbox, norm = build_targets([np.array([[16, 16, 80, 112]], np.float32)], (160, 128))
    >>> cov.shape, bbox.shape, float(cov.max())
    ((1, 8, 10), (4, 8, 10), 0.9375)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SUBSAMPLES = 4
DRAW_RECTANGLE, DRAW_ELLIPSE = 0, 1
GRADIENT_PASSTHROUGH, GRADIENT_MULTIPLY_BY_COVERAGE = 0, 1
_F32 = np.float32


@dataclass(frozen=True)
class TargetClassConfig:
    """TAO ``bbox_rasterizer_config.target_class_config`` values for one class (validated as TAO).

    >>> TargetClassConfig(cov_center_x=1.1)
    Traceback (most recent call last):
    ...
    ValueError: bbox_rasterizer_config: cov_center_x must be in [0, 1], got 1.1
    """

    cov_center_x: float = 0.5
    cov_center_y: float = 0.5
    cov_radius_x: float = 0.4
    cov_radius_y: float = 0.4
    bbox_min_radius: float = 1.0

    def __post_init__(self) -> None:
        for name in ("cov_center_x", "cov_center_y"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"bbox_rasterizer_config: {name} must be in [0, 1], got {getattr(self, name)}"
                )
        for name in ("cov_radius_x", "cov_radius_y", "bbox_min_radius"):
            if not getattr(self, name) > 0.0:
                raise ValueError(
                    f"bbox_rasterizer_config: {name} must be > 0, got {getattr(self, name)}"
                )


@dataclass(frozen=True)
class RasterizerConfig:
    """Rasteriser settings: per-class ellipse parameters, deadzone, stride and bbox scale."""

    target_class: TargetClassConfig = TargetClassConfig()
    deadzone_radius: float = 0.67
    stride: int = 16
    bbox_norm: float = 35.0
    offset: float = 0.5
    per_class: tuple[TargetClassConfig, ...] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.deadzone_radius <= 1.0:
            raise ValueError(
                f"bbox_rasterizer_config: deadzone_radius must be in [0, 1], "
                f"got {self.deadzone_radius}"
            )

    def for_class(self, index: int) -> TargetClassConfig:
        if self.per_class is not None:
            return self.per_class[index]
        return self.target_class


# --- the generic rasteriser (TAO RasterizeBbox) -----------------------------------------------
def _window(matrix: np.ndarray, radii: np.ndarray, height: int, width: int) -> tuple[int, ...]:
    """``(y0, y1, x0, x1)``: the output cells one box can touch (its shape's bounding box)."""
    a = matrix[:2, :2].astype(np.float64)
    t = matrix[2, :2].astype(np.float64)
    det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
    if det == 0.0:
        return 0, height, 0, width
    r = max(1.0, float(radii[0]), float(radii[1]))
    corners = np.array([[-r, -r], [r, -r], [-r, r], [r, r]]) - t
    pts = corners @ np.linalg.inv(a)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    x0, x1 = int(np.floor(lo[0])) - 1, int(np.ceil(hi[0])) + 1
    y0, y1 = int(np.floor(lo[1])) - 1, int(np.ceil(hi[1])) + 1
    return max(y0, 0), min(y1, height), max(x0, 0), min(x1, width)


def _coverages(
    matrix: np.ndarray, radii: np.ndarray, flag: int, window: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Deadzone and shape coverage ``(a, c)`` of the cells in ``window`` (4x4 sub-samples)."""
    y0, y1, x0, x1 = window
    sub = (np.arange(SUBSAMPLES, dtype=_F32) + _F32(0.5)) * _F32(1.0 / SUBSAMPLES)
    fx = (np.arange(x0, x1, dtype=_F32)[:, None] + sub[None, :]).reshape(1, -1)
    fy = (np.arange(y0, y1, dtype=_F32)[:, None] + sub[None, :]).reshape(-1, 1)
    m = matrix.astype(_F32)
    tx = fx * m[0, 0] + fy * m[1, 0] + m[2, 0]
    ty = fx * m[0, 1] + fy * m[1, 1] + m[2, 1]
    txc = tx * (_F32(1.0) / _F32(radii[0]))
    tyc = ty * (_F32(1.0) / _F32(radii[1]))
    if flag & 1:
        dead = tx * tx + ty * ty < 1.0
        inside = txc * txc + tyc * tyc < 1.0
    else:
        dead = (np.abs(tx) < 1.0) & (np.abs(ty) < 1.0)
        inside = (np.abs(txc) < 1.0) & (np.abs(tyc) < 1.0)
    h, w = y1 - y0, x1 - x0
    scale = _F32(1.0 / (SUBSAMPLES * SUBSAMPLES))

    def fraction(mask: np.ndarray) -> np.ndarray:
        counts = mask.reshape(h, SUBSAMPLES, w, SUBSAMPLES).sum(axis=(1, 3))
        return counts.astype(_F32) * scale

    return fraction(dead), fraction(inside)


def rasterize_boxes(
    num_classes: int,
    height: int,
    width: int,
    class_ids: Sequence[int] | np.ndarray,
    matrices: np.ndarray,
    gradients: np.ndarray,
    coverage_radii: np.ndarray,
    flags: Sequence[int] | np.ndarray,
    sort_values: Sequence[float] | np.ndarray,
    gradient_flags: Sequence[int],
) -> np.ndarray:
    """One image's boxes -> ``(num_classes, G, height, width)`` float32, as TAO's op.

    Args:
        class_ids: ``(N,)`` class of each box, in ``[0, num_classes)``.
        matrices: ``(N, 3, 3)`` row-vector matrices (output pixel -> deadzone space).
        gradients: ``(N, G, 3)`` per box and channel ``(A, B, C)`` of ``x*A + y*B + C``.
        coverage_radii: ``(N, 2)`` coverage radii inside the deadzone space.
        flags: ``(N,)`` :data:`DRAW_ELLIPSE` or :data:`DRAW_RECTANGLE`.
        sort_values: ``(N,)`` drawing order (ascending; ties keep the input order).
        gradient_flags: ``(G,)`` :data:`GRADIENT_MULTIPLY_BY_COVERAGE` or
            :data:`GRADIENT_PASSTHROUGH` per channel.
    """
    num_gradients = len(gradient_flags)
    out = np.zeros((num_classes, num_gradients, height, width), _F32)
    class_ids = np.asarray(class_ids, np.int64).reshape(-1)
    if class_ids.size == 0:
        return out
    matrices = np.asarray(matrices, _F32).reshape(-1, 3, 3)
    gradients = np.asarray(gradients, _F32).reshape(-1, num_gradients, 3)
    radii = np.asarray(coverage_radii, _F32).reshape(-1, 2)
    flags = np.asarray(flags).reshape(-1)
    sort_values = np.asarray(sort_values, _F32).reshape(-1)
    if ((class_ids < 0) | (class_ids >= num_classes)).any():
        raise ValueError(f"class ids must be in [0, {num_classes}), got {class_ids.tolist()}")
    multiply = np.array([bool(f & 1) for f in gradient_flags])[:, None, None]
    best = np.zeros((num_classes, height, width), _F32)
    finite = np.isfinite(matrices).all(axis=(1, 2)) & np.isfinite(radii).all(axis=1)
    for i in np.argsort(sort_values, kind="stable"):
        if not finite[i]:
            continue
        window = _window(matrices[i], radii[i], height, width)
        y0, y1, x0, x1 = window
        if y1 <= y0 or x1 <= x0:
            continue
        dead, cov = _coverages(matrices[i], radii[i], int(flags[i]), window)
        c = class_ids[i]
        cur = best[c, y0:y1, x0:x1]
        pixels = out[c, :, y0:y1, x0:x1]
        clear = (dead >= cur) & (dead > 0)
        cur = np.where(clear, _F32(0), cur)
        pixels = np.where(clear[None], _F32(0), pixels)
        take = (cov >= cur) & (cov > 0)
        px = np.arange(x0, x1, dtype=_F32)[None, None, :]
        py = np.arange(y0, y1, dtype=_F32)[None, :, None]
        g = gradients[i][:, :, None, None]
        values = px * g[:, 0] + py * g[:, 1] + g[:, 2]
        values = np.where(multiply, values * cov[None], values)
        out[c, :, y0:y1, x0:x1] = np.where(take[None], values, pixels)
        best[c, y0:y1, x0:x1] = np.where(take, cov, cur)
    return out


# --- DetectNet_v2 labels -> rasteriser inputs (TAO BboxRasterizer + objectives) ----------------
def ellipse_matrices(
    xmin,
    ymin,
    xmax,
    ymax,
    cov_center_x,
    cov_center_y,
    cov_radius_x,
    cov_radius_y,
    bbox_min_radius,
    deadzone_radius: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(matrices (N,3,3), coverage_radii (N,2), inv_bbox_area (N,))`` of boxes in output cells.

    The coverage ellipse is centred at ``cov_center`` of the box with semi-axes
    ``cov_radius * (distance from the centre to the nearest edge)`` (at least 0.1, then scaled
    up to ``bbox_min_radius`` keeping the aspect ratio); the deadzone ellipse interpolates
    between it and the box by ``deadzone_radius``. The matrix maps a point into the deadzone's
    unit circle; ``inv_bbox_area = 1 / max(4 * rx * ry, 1)``.

    >>> m, r, inv = ellipse_matrices(1, 2, 3, 4, 0.5, 0.5, 0.6, 0.6, 0.5, 1.0)
    >>> m[0].tolist(), r[0].tolist(), round(float(inv[0]), 4)
    ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-2.0, -3.0, 1.0]], [0.6000000238418579, 0.6000000238418579], 0.6944)
    """
    xmin, ymin, xmax, ymax = (np.asarray(v, _F32).reshape(-1) for v in (xmin, ymin, xmax, ymax))
    ccx, ccy, crx, cry, minr = (
        np.broadcast_to(np.asarray(v, _F32), xmin.shape)
        for v in (cov_center_x, cov_center_y, cov_radius_x, cov_radius_y, bbox_min_radius)
    )
    cx = xmin + ccx * (xmax - xmin)
    cy = ymin + ccy * (ymax - ymin)
    sx = np.where(ccx < 0.5, cx - xmin, xmax - cx)
    sy = np.where(ccy < 0.5, cy - ymin, ymax - cy)
    csx = np.maximum(crx * sx, _F32(0.1))
    csy = np.maximum(cry * sy, _F32(0.1))
    # Scale up to the minimum radius keeping the aspect ratio: x first, then y.
    csx, csy = np.maximum(csx, minr), np.where(csx < minr, minr * csy / csx, csy)
    csx, csy = np.where(csy < minr, minr * csx / csy, csx), np.maximum(csy, minr)
    dz = float(deadzone_radius)
    dsx = np.maximum(_F32(1.0 - dz) * csx + _F32(dz) * sx, csx)
    dsy = np.maximum(_F32(1.0 - dz) * csy + _F32(dz) * sy, csy)
    oodsx, oodsy = _F32(1.0) / dsx, _F32(1.0) / dsy
    n = xmin.shape[0]
    mats = np.zeros((n, 3, 3), _F32)
    mats[:, 0, 0], mats[:, 1, 1], mats[:, 2, 2] = oodsx, oodsy, 1.0
    mats[:, 2, 0], mats[:, 2, 1] = -cx * oodsx, -cy * oodsy
    radii = np.stack([csx * oodsx, csy * oodsy], axis=1)
    inv_area = _F32(1.0) / np.maximum(csx * csy * _F32(4.0), _F32(1.0))
    return mats, radii, inv_area


def gradient_from_endpoints(sx, sy, svalue, ex, ey, evalue) -> np.ndarray:
    """``(N, 3)`` coefficients ``(A, B, C)`` of the linear ramp from ``svalue`` at ``(sx, sy)``
    to ``evalue`` at ``(ex, ey)`` (squared edge length clamped at 0.01 for degenerate boxes)."""
    sx, sy, svalue, ex, ey, evalue = np.broadcast_arrays(
        *(np.asarray(v, _F32) for v in (sx, sy, svalue, ex, ey, evalue))
    )
    dx, dy = ex - sx, ey - sy
    length2 = np.maximum(dx * dx + dy * dy, _F32(0.01))
    dvalue = (evalue - svalue) / length2
    dvx, dvy = dvalue * dx, dvalue * dy
    return np.stack([dvx, dvy, svalue - (dvx * sx + dvy * sy)], axis=-1).astype(_F32)


def bbox_gradients(
    xmin,
    ymin,
    xmax,
    ymax,
    input_size: tuple[int, int],
    grid: tuple[int, int],
    scale: float,
    offset: float,
) -> np.ndarray:
    """``(N, 4, 3)`` pass-through gradients of the ``L, T, R, B`` bbox targets (output-cell
    coordinates in, ``(x*stride + offset - x1) / scale`` etc. out, at the cell corner)."""
    xmin, ymin, xmax, ymax = (np.asarray(v, _F32).reshape(-1) for v in (xmin, ymin, xmax, ymax))
    (in_w, in_h), (gh, gw) = input_size, grid
    dx = (xmax - xmin) * _F32(float(in_w) / (float(gw) * scale))
    dy = (ymax - ymin) * _F32(float(in_h) / (float(gh) * scale))
    o = _F32(offset / scale)
    zero = np.zeros_like(xmin)
    return np.stack(
        [
            gradient_from_endpoints(xmin, zero, o, xmax, zero, dx + o),
            gradient_from_endpoints(zero, ymin, o, zero, ymax, dy + o),
            gradient_from_endpoints(xmin, zero, dx - o, xmax, zero, -o),
            gradient_from_endpoints(zero, ymin, dy - o, zero, ymax, -o),
        ],
        axis=1,
    )


def grid_size(input_size: tuple[int, int], stride: int) -> tuple[int, int]:
    """``(gh, gw)`` of the targets for a model input ``(width, height)``."""
    return input_size[1] // stride, input_size[0] // stride


def build_targets(
    boxes_per_class: Sequence[np.ndarray],
    input_size: tuple[int, int],
    config: RasterizerConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise one image's boxes into ``(cov [C,gh,gw], bbox [4C,gh,gw], cov_norm [C,gh,gw])``.

    Args:
        boxes_per_class: for each class, an ``(N, 4)`` array of ``x1, y1, x2, y2`` in pixels of
            the model input (after augmentation). Every finite box is drawn, as TAO's
            rasterizer does; the data pipeline has already sorted each box's corners and
            dropped boxes under 1 px, as TAO's loader does
            (:func:`cvlab.train.dataset.tao_label_boxes`).
        input_size: model input ``(width, height)``.
        config: rasteriser settings (TAO defaults).
    """
    config = config or RasterizerConfig()
    width, height = input_size
    gh, gw = grid_size(input_size, config.stride)
    num_classes = len(boxes_per_class)
    per_class = [np.asarray(b, _F32).reshape(-1, 4) for b in boxes_per_class]
    boxes = np.concatenate(per_class) if per_class else np.zeros((0, 4), _F32)
    class_ids = np.concatenate([np.full(len(b), c) for c, b in enumerate(per_class)] or [[]])
    keep = np.isfinite(boxes).all(axis=1)
    boxes, class_ids = boxes[keep], class_ids[keep].astype(np.int64)
    cfgs = [config.for_class(int(c)) for c in class_ids]

    def param(name: str) -> np.ndarray:
        return np.array([getattr(c, name) for c in cfgs], _F32)

    xmin = boxes[:, 0] * _F32(gw / width)
    ymin = boxes[:, 1] * _F32(gh / height)
    xmax = boxes[:, 2] * _F32(gw / width)
    ymax = boxes[:, 3] * _F32(gh / height)
    mats, radii, inv_area = ellipse_matrices(
        xmin,
        ymin,
        xmax,
        ymax,
        param("cov_center_x"),
        param("cov_center_y"),
        param("cov_radius_x"),
        param("cov_radius_y"),
        param("bbox_min_radius"),
        config.deadzone_radius,
    )
    n = len(boxes)
    constant = np.zeros((n, 2, 3), _F32)
    constant[:, 0, 2], constant[:, 1, 2] = 1.0, inv_area  # cov, cov_norm
    bbox = bbox_gradients(
        xmin, ymin, xmax, ymax, input_size, (gh, gw), config.bbox_norm, config.offset
    )
    cover, passthrough = GRADIENT_MULTIPLY_BY_COVERAGE, GRADIENT_PASSTHROUGH
    out = rasterize_boxes(
        num_classes,
        gh,
        gw,
        class_ids,
        mats,
        np.concatenate([constant, bbox], axis=1),
        radii,
        np.full(n, DRAW_ELLIPSE),
        ymax,
        [cover, cover] + [passthrough] * 4,
    )
    return out[:, 0], out[:, 2:].reshape(4 * num_classes, gh, gw), out[:, 1]


def build_targets_from_arrays(
    boxes: np.ndarray,
    class_ids: np.ndarray,
    num_classes: int,
    input_size: tuple[int, int],
    config: RasterizerConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`build_targets` from flat ``boxes (N,4)`` and ``class_ids (N,)`` (ids < 0 ignored)."""
    boxes = np.asarray(boxes, _F32).reshape(-1, 4)
    class_ids = np.asarray(class_ids).reshape(-1)
    per_class = [boxes[class_ids == c] for c in range(num_classes)]
    return build_targets(per_class, input_size, config)


def tf_build_targets(boxes, class_ids, num_classes: int, input_size: tuple[int, int], config=None):
    """TensorFlow wrapper (``tf.numpy_function``) for use inside a ``tf.data`` map."""
    import tensorflow as tf

    gh, gw = grid_size(input_size, (config or RasterizerConfig()).stride)

    def _run(b, c):
        return build_targets_from_arrays(b, c, num_classes, input_size, config)

    cov, bbox, norm = tf.numpy_function(
        _run, [boxes, class_ids], [tf.float32, tf.float32, tf.float32], stateful=False
    )
    cov.set_shape((num_classes, gh, gw))
    bbox.set_shape((4 * num_classes, gh, gw))
    norm.set_shape((num_classes, gh, gw))
    return cov, bbox, norm
