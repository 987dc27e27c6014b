"""Image files made for tests: hostile JPEGs for the decoders' limits."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def bomb_jpeg(path: Path, width: int, height: int) -> Path:
    """A real small JPEG whose frame header (SOF0) claims ``width`` x ``height``."""
    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path
