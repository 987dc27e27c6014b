"""Thermal image I/O: header-only size reading, 8/16-bit loading, resize, atomic JPEG writing.

16-bit normalisation (FLIR v1 ``thermal_16_bit/*.tiff``, raw radiometric counts): each image is
stretched linearly from its own 1st to 99th percentile onto 0-255 and clipped
(:func:`normalize_16bit`). Per-image percentiles are robust to a few very hot or cold pixels and
follow FLIR's own automatic gain control, which produced the 8-bit JPEGs.

Example:
    >>> import numpy as np
    >>> raw = np.linspace(7000, 9000, 640 * 512).reshape(512, 640).astype(np.uint16)
    >>> g = normalize_16bit(raw)
    >>> g.dtype, int(g.min()), int(g.max())
    (dtype('uint8'), 0, 255)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from cvlab.errors import CvlabError
from cvlab.fileio import atomic_write_bytes

ImageType = Literal["8bit", "16bit"]
JPEG_QUALITY = 95


class UnreadableImageError(CvlabError, OSError):
    """An image file that is missing or cannot be decoded."""


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` from the file header only (PIL opens lazily; no pixel decoding)."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError) as exc:
        raise UnreadableImageError(f"{path}: cannot read image header: {exc}") from None


def normalize_16bit(raw: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Per-image percentile stretch of a 16-bit thermal frame to uint8 (see module docstring)."""
    lo, hi = np.percentile(raw, (low, high))
    if hi <= lo:
        return np.zeros(raw.shape[:2], np.uint8)
    scaled = (raw.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def load_thermal(path: str | os.PathLike, image_type: ImageType = "8bit") -> np.ndarray:
    """Grey uint8 ``(H, W)`` frame from an 8-bit JPEG/PNG or a 16-bit TIFF (normalised)."""
    flag = cv2.IMREAD_UNCHANGED if image_type == "16bit" else cv2.IMREAD_GRAYSCALE
    image = cv2.imread(str(path), flag)
    if image is None:
        raise UnreadableImageError(f"{path}: missing or not a decodable image")
    if image_type == "16bit":
        if image.ndim == 3:
            image = image[..., 0]
        if image.dtype != np.uint16:
            raise UnreadableImageError(f"{path}: expected a 16-bit image, got {image.dtype}")
        image = normalize_16bit(image)
    return image


def to_training_image(grey: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Resize a grey frame to ``(width, height)`` and repeat it on 3 channels (BGR order)."""
    if grey.ndim == 3:
        grey = cv2.cvtColor(grey, cv2.COLOR_BGR2GRAY)
    if (grey.shape[1], grey.shape[0]) != tuple(output_size):
        h_in = grey.shape[0]
        interp = cv2.INTER_AREA if output_size[1] < h_in else cv2.INTER_LINEAR
        grey = cv2.resize(grey, tuple(output_size), interpolation=interp)
    return cv2.merge([grey, grey, grey])


def write_jpeg_atomic(
    path: str | os.PathLike, image: np.ndarray, quality: int = JPEG_QUALITY
) -> None:
    """Encode to JPEG in memory, write a temporary file, rename: never a half-written image."""
    path = Path(path)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    atomic_write_bytes(path, buf.tobytes())
