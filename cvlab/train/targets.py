"""DetectNet_v2 training targets, rasterised as TAO's ``BboxRasterizer`` builds them.

Per box (in model-input pixels) and class ``c``:

* **coverage** ``cov[c]``: a soft ellipse centred at ``cov_center`` of the box with semi-axes
  ``cov_radius * box half-size`` in grid cells (clamped to ``bbox_min_radius``), each grid cell's
  value the fraction of its 4x4 sub-samples inside the ellipse. A wider *deadzone* ellipse
  (``deadzone_radius`` interpolates between coverage ellipse and box) clears what boxes drawn
  earlier left there; boxes are drawn in ascending ``ymax`` (closer objects last, on top).
* **bbox** ``bbox[4c:4c+4]``: ``L, T, R, B`` = distances from the grid-cell centre
  ``(16*j + 0.5, 16*i + 0.5)`` to the box edges divided by ``bbox_norm`` (35), written only where
  the coverage is > 0 (TAO's pass-through gradient mode).
* **cov_norm** ``cov_norm[c]``: ``1 / max(4 * rx * ry, 1)`` (coverage-ellipse area in cells),
  multiplied by the coverage (TAO's multiply-by-coverage gradient mode); it weights the bbox loss.

Example:
    >>> import numpy as np
    >>> cov, bbox, norm = build_targets([np.array([[16, 16, 80, 112]], np.float32)], (160, 128))
    >>> cov.shape, bbox.shape, round(float(cov.max()), 2)
    ((1, 8, 10), (4, 8, 10), 0.94)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SUBSAMPLES = 4


@dataclass(frozen=True)
class TargetClassConfig:
    """TAO ``bbox_rasterizer_config.target_class_config`` values for one class."""

    cov_center_x: float = 0.5
    cov_center_y: float = 0.5
    cov_radius_x: float = 0.4
    cov_radius_y: float = 0.4
    bbox_min_radius: float = 1.0


@dataclass(frozen=True)
class RasterizerConfig:
    """Rasteriser settings: per-class ellipse parameters, deadzone, stride and bbox scale."""

    target_class: TargetClassConfig = TargetClassConfig()
    deadzone_radius: float = 0.67
    stride: int = 16
    bbox_norm: float = 35.0
    offset: float = 0.5
    per_class: tuple[TargetClassConfig, ...] | None = None

    def for_class(self, index: int) -> TargetClassConfig:
        if self.per_class is not None:
            return self.per_class[index]
        return self.target_class


def ellipse_parameters(
    box: np.ndarray, cfg: TargetClassConfig, deadzone_radius: float, stride: int
) -> tuple[float, float, float, float, float, float, float]:
    """``(cx, cy, cov_rx, cov_ry, dead_rx, dead_ry, inv_area)`` in grid cells for one box.

    Follows TAO ``BboxRasterizer.bbox_from_rumpy_params`` step by step.
    """
    xmin, ymin, xmax, ymax = (float(v) / stride for v in box)
    cx = xmin + cfg.cov_center_x * (xmax - xmin)
    cy = ymin + cfg.cov_center_y * (ymax - ymin)
    sx = cx - xmin if cfg.cov_center_x < 0.5 else xmax - cx
    sy = cy - ymin if cfg.cov_center_y < 0.5 else ymax - cy
    csx = max(cfg.cov_radius_x * sx, 0.1)
    csy = max(cfg.cov_radius_y * sy, 0.1)
    mr = cfg.bbox_min_radius
    # Constrain x keeping the aspect ratio, then y.
    csx, csy = max(csx, mr), (mr * csy / csx if csx < mr else csy)
    csx, csy = (mr * csx / csy if csy < mr else csx), max(csy, mr)
    dsx = max((1.0 - deadzone_radius) * csx + deadzone_radius * sx, csx)
    dsy = max((1.0 - deadzone_radius) * csy + deadzone_radius * sy, csy)
    inv_area = 1.0 / max(csx * csy * 4.0, 1.0)
    return cx, cy, csx, csy, dsx, dsy, inv_area


def _subsample_fractions(
    cx: float, cy: float, rx: float, ry: float, dx: float, dy: float, grid: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    """Fraction of each cell's 4x4 sub-samples inside the coverage and the deadzone ellipses."""
    gh, gw = grid
    x0, x1 = max(int(np.floor(cx - dx)), 0), min(int(np.ceil(cx + dx)) + 1, gw)
    y0, y1 = max(int(np.floor(cy - dy)), 0), min(int(np.ceil(cy + dy)) + 1, gh)
    window = (slice(y0, max(y1, y0)), slice(x0, max(x1, x0)))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0)), np.zeros((0, 0)), window
    sub = (np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES
    xs = (np.arange(x0, x1)[:, None] + sub[None, :]).reshape(-1)  # (w*4,)
    ys = (np.arange(y0, y1)[:, None] + sub[None, :]).reshape(-1)  # (h*4,)
    u = ((xs - cx) / dx)[None, :]
    v = ((ys - cy) / dy)[:, None]
    dead = (u * u + v * v) <= 1.0
    ru, rv = rx / dx, ry / dy
    inside = ((u / ru) ** 2 + (v / rv) ** 2) <= 1.0
    h, w = y1 - y0, x1 - x0

    def frac(mask: np.ndarray) -> np.ndarray:
        return mask.reshape(h, SUBSAMPLES, w, SUBSAMPLES).mean(axis=(1, 3))

    return frac(inside), frac(dead), window


def build_targets(
    boxes_per_class: Sequence[np.ndarray],
    input_size: tuple[int, int],
    config: RasterizerConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise the boxes of one image into ``(cov [C,gh,gw], bbox [4C,gh,gw], cov_norm [C,gh,gw])``.

    Args:
        boxes_per_class: for each class, an ``(N, 4)`` array of ``x1, y1, x2, y2`` in pixels of
            the model input (already resized/augmented).
        input_size: model input ``(width, height)``.
        config: rasteriser settings (TAO defaults).
    """
    config = config or RasterizerConfig()
    width, height = input_size
    gh, gw = height // config.stride, width // config.stride
    num_classes = len(boxes_per_class)
    cov = np.zeros((num_classes, gh, gw), np.float32)
    bbox = np.zeros((4 * num_classes, gh, gw), np.float32)
    norm = np.zeros((num_classes, gh, gw), np.float32)
    gx = np.arange(gw, dtype=np.float32) * config.stride + config.offset
    gy = np.arange(gh, dtype=np.float32) * config.stride + config.offset
    for c, boxes in enumerate(boxes_per_class):
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes = boxes[valid]
        cls_cfg = config.for_class(c)
        for box in boxes[np.argsort(boxes[:, 3], kind="stable")]:
            cx, cy, rx, ry, dx, dy, inv_area = ellipse_parameters(
                box, cls_cfg, config.deadzone_radius, config.stride
            )
            inside, dead, (ys, xs) = _subsample_fractions(cx, cy, rx, ry, dx, dy, (gh, gw))
            if inside.size == 0:
                continue
            keep = 1.0 - dead
            cov[c, ys, xs] = cov[c, ys, xs] * keep + inside
            norm[c, ys, xs] = norm[c, ys, xs] * keep + inside * inv_area
            covered = inside > 0
            cx_px, cy_px = gx[xs][None, :], gy[ys][:, None]
            ltrb = (cx_px - box[0], cy_px - box[1], box[2] - cx_px, box[3] - cy_px)
            for k, value in enumerate(ltrb):
                channel = bbox[4 * c + k, ys, xs]
                bbox[4 * c + k, ys, xs] = np.where(covered, value / config.bbox_norm, channel)
        # Pass-through bbox targets exist only where some coverage is left.
        bbox[4 * c : 4 * c + 4] *= (cov[c] > 0)[None]
    return cov, bbox, norm


def build_targets_from_arrays(
    boxes: np.ndarray,
    class_ids: np.ndarray,
    num_classes: int,
    input_size: tuple[int, int],
    config: RasterizerConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`build_targets` from flat ``boxes (N,4)`` and ``class_ids (N,)`` (ids < 0 ignored)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    class_ids = np.asarray(class_ids).reshape(-1)
    per_class = [boxes[class_ids == c] for c in range(num_classes)]
    return build_targets(per_class, input_size, config)


def tf_build_targets(boxes, class_ids, num_classes: int, input_size: tuple[int, int], config=None):
    """TensorFlow wrapper (``tf.numpy_function``) for use inside a ``tf.data`` map."""
    import tensorflow as tf

    width, height = input_size
    stride = (config or RasterizerConfig()).stride
    gh, gw = height // stride, width // stride

    def _run(b, c):
        return build_targets_from_arrays(b, c, num_classes, input_size, config)

    cov, bbox, norm = tf.numpy_function(
        _run, [boxes, class_ids], [tf.float32, tf.float32, tf.float32], stateful=False
    )
    cov.set_shape((num_classes, gh, gw))
    bbox.set_shape((4 * num_classes, gh, gw))
    norm.set_shape((num_classes, gh, gw))
    return cov, bbox, norm
