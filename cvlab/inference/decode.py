"""Decode DetectNet_v2 output grids into per-cell candidate boxes.

DetectNet_v2 predicts, on a grid with one cell per ``stride`` pixels of the model input, a
coverage value per class (``output_cov/Sigmoid``, ``[C, gh, gw]``) and four distances per class
(``output_bbox/BiasAdd``, ``[4C, gh, gw]``; channels ``4c..4c+3`` are left, top, right, bottom in
units of ``bbox_norm`` pixels). For the cell in column ``i``, row ``j`` the centre is
``gx = stride*i + offset``, ``gy = stride*j + offset`` and the box is
``(gx - bbox_norm*l, gy - bbox_norm*t, gx + bbox_norm*r, gy + bbox_norm*b)``, clipped to the
model frame as TAO's ``predictions_to_absolute`` clips it (``x1`` into ``[0, W]``, then ``x2``
into ``[x1, W]``; the same for ``y``: boxes are never inverted) and then scaled to the original
image.

Example (one class, a 2x2 grid of a 32x32 model input, all distances 0.1):
    >>> import numpy as np
    >>> g = decode_detectnet(np.ones((1, 2, 2), np.float32), np.full((4, 2, 2), 0.1, np.float32),
    ...                      model_size=(32, 32), image_size=(64, 64))
    >>> g.boxes[0, 3].tolist()  # cell (i=1, j=1): centre 16.5 -> [13.0, 13.0, 20.0, 20.0] * 2
    [26.0, 26.0, 40.0, 40.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cvlab.detectnet import PEOPLENET_INPUT_SIZE


@dataclass
class DecodedGrid:
    """Candidate boxes of every grid cell, per class.

    Attributes:
        boxes: ``(C, gh*gw, 4)`` float32 ``x1, y1, x2, y2`` in original-image pixels; cells are
            in row-major order (index ``j*gw + i``).
        coverage: ``(C, gh*gw)`` float32 coverage of each cell.
        grid_shape: ``(gh, gw)``.
        image_size: ``(width, height)`` of the original image.
        model_size: ``(width, height)`` of the model input.
    """

    boxes: np.ndarray
    coverage: np.ndarray
    grid_shape: tuple[int, int]
    image_size: tuple[int, int]
    model_size: tuple[int, int]

    @property
    def num_classes(self) -> int:
        return int(self.coverage.shape[0])


def expected_grid(model_size: tuple[int, int], stride: int) -> tuple[int, int]:
    """``(gh, gw)`` of the output grid for a model input ``(width, height)``."""
    w, h = model_size
    return (-(-int(h) // stride), -(-int(w) // stride))


@lru_cache(maxsize=32)
def _centres(gh: int, gw: int, stride: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    gx = (np.arange(gw, dtype=np.float32) * stride + offset).reshape(1, 1, gw)
    gy = (np.arange(gh, dtype=np.float32) * stride + offset).reshape(1, gh, 1)
    gx.setflags(write=False)
    gy.setflags(write=False)
    return gx, gy


def validate_outputs(
    cov: np.ndarray,
    bbox: np.ndarray,
    *,
    model_size: tuple[int, int],
    stride: int,
    num_classes: int | None = None,
) -> None:
    """Raise ``ValueError`` naming the tensor when shapes, channel counts or values are wrong."""
    if cov.ndim != 3 or bbox.ndim != 3:
        raise ValueError(
            f"expected output_cov/Sigmoid [C, gh, gw] and output_bbox/BiasAdd [4C, gh, gw], "
            f"got shapes {cov.shape} and {bbox.shape}"
        )
    if cov.size == 0 or bbox.size == 0:
        raise ValueError(f"empty output tensor: cov {cov.shape}, bbox {bbox.shape}")
    c = cov.shape[0]
    if bbox.shape[0] != 4 * c:
        raise ValueError(
            f"output_bbox/BiasAdd has {bbox.shape[0]} channels; expected 4 x {c} classes "
            f"of output_cov/Sigmoid = {4 * c}"
        )
    if num_classes is not None and c != num_classes:
        raise ValueError(f"output_cov/Sigmoid has {c} channels but there are {num_classes} classes")
    grid = expected_grid(model_size, stride)
    if cov.shape[1:] != grid or bbox.shape[1:] != grid:
        raise ValueError(
            f"output grid {cov.shape[1:]} (cov) / {bbox.shape[1:]} (bbox) does not match "
            f"model_size {tuple(model_size)} / stride {stride} = {grid} (gh, gw)"
        )
    for name, arr in (("output_cov/Sigmoid", cov), ("output_bbox/BiasAdd", bbox)):
        if not np.isfinite(arr).all():
            bad = int(np.size(arr) - np.isfinite(arr).sum())
            raise ValueError(f"{name} contains {bad} NaN/inf value(s)")


def decode_detectnet(
    cov: np.ndarray,
    bbox: np.ndarray,
    *,
    model_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    image_size: tuple[int, int] | None = None,
    stride: int = 16,
    bbox_norm: float = 35.0,
    offset: float = 0.5,
) -> DecodedGrid:
    """Boxes of every cell in original-image pixels (see the module docstring for the formula).

    Args:
        cov: ``[C, gh, gw]`` coverage.
        bbox: ``[4C, gh, gw]`` box distances.
        model_size: model input ``(width, height)``.
        image_size: original image ``(width, height)``; defaults to ``model_size``.
        stride, bbox_norm, offset: grid geometry (PeopleNet: 16, 35, 0.5).

    Raises:
        ValueError: wrong shapes or channel counts, empty tensors, NaN or inf values.
    """
    cov = np.asarray(cov, dtype=np.float32)
    bbox = np.asarray(bbox, dtype=np.float32)
    validate_outputs(cov, bbox, model_size=model_size, stride=stride)
    image_size = tuple(int(v) for v in (image_size or model_size))
    if image_size[0] <= 0 or image_size[1] <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    c, gh, gw = cov.shape
    mw, mh = float(model_size[0]), float(model_size[1])
    gx, gy = _centres(gh, gw, int(stride), float(offset))
    d = bbox.reshape(c, 4, gh, gw) * np.float32(bbox_norm)
    sx = np.float32(image_size[0] / mw)
    sy = np.float32(image_size[1] / mh)
    boxes = np.empty((c, gh, gw, 4), np.float32)
    np.subtract(gx, d[:, 0], out=boxes[..., 0])
    np.subtract(gy, d[:, 1], out=boxes[..., 1])
    np.add(gx, d[:, 2], out=boxes[..., 2])
    np.add(gy, d[:, 3], out=boxes[..., 3])
    # TAO's predictions_to_absolute order: x1, y1 into the frame, then x2 into [x1, W] and y2
    # into [y1, H], so every box keeps x2 >= x1 and y2 >= y1 (an inverted box becomes empty)
    np.clip(boxes[..., 0], 0.0, mw, out=boxes[..., 0])
    np.clip(boxes[..., 1], 0.0, mh, out=boxes[..., 1])
    np.minimum(np.maximum(boxes[..., 2], boxes[..., 0]), mw, out=boxes[..., 2])
    np.minimum(np.maximum(boxes[..., 3], boxes[..., 1]), mh, out=boxes[..., 3])
    boxes[..., 0::2] *= sx
    boxes[..., 1::2] *= sy
    return DecodedGrid(
        boxes=boxes.reshape(c, gh * gw, 4),
        coverage=cov.reshape(c, gh * gw),
        grid_shape=(gh, gw),
        image_size=image_size,
        model_size=(int(model_size[0]), int(model_size[1])),
    )
