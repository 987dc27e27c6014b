"""Draw detections on images: per-class colours, a line width that is honoured, optional labels.

Example:
    >>> import numpy as np
    >>> from cvlab.detections import Detections
    >>> d = Detections([[10, 10, 50, 90]], [0.95], [0], ("person",), (100, 100))
    >>> out = draw_detections(np.zeros((100, 100, 3), np.uint8), d, {"person": (0, 255, 0)},
    ...                       linewidth=3, show_labels=False)
    >>> out[50, 10].tolist(), out[50, 13].tolist()
    ([0, 255, 0], [0, 0, 0])
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cvlab.detections import Detections
from cvlab.fileio import atomic_write_bytes
from cvlab.inference.clustering_config import DEFAULT_PALETTE, PostprocessingConfig

Color = tuple[int, int, int]


def colors_from_config(config: PostprocessingConfig) -> dict[str, Color]:
    """``class name -> (R, G, B)`` from the ``bbox_color`` of each class."""
    return {name: tuple(cfg.bbox_color) for name, cfg in config.classes.items()}


def _color_for(name: str, index: int, colors: Mapping[str, Color] | None) -> Color:
    if colors and name in colors:
        return tuple(int(c) for c in colors[name])
    return DEFAULT_PALETTE[index % len(DEFAULT_PALETTE)]


def draw_detections(
    rgb: np.ndarray,
    detections: Detections,
    colors: Mapping[str, Color] | None = None,
    linewidth: int = 4,
    show_labels: bool = True,
    *,
    copy: bool = True,
) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3 uint8) with every box drawn (``copy=False``: drawn on ``rgb``
    itself when it is a contiguous, writable uint8 array; the same pixels).

    The box outline is ``linewidth`` pixels thick and lies inside the box: rows
    ``y1 .. y1+linewidth-1`` and columns ``x1 .. x1+linewidth-1`` (likewise at the far edges),
    so thin boxes near the border are not cut off. Labels show class and confidence.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    out = np.ascontiguousarray(rgb, dtype=np.uint8)
    if copy or not out.flags.writeable:
        out = out.copy()
    h, w = out.shape[:2]
    lw = max(int(linewidth), 1)
    for det in detections:
        color = _color_for(det.class_name, det.class_id, colors)
        # plain int arithmetic (np.clip on scalars cost a quarter of an overlay's drawing)
        x1 = min(max(int(round(det.x1)), 0), w - 1)
        y1 = min(max(int(round(det.y1)), 0), h - 1)
        x2 = min(max(int(round(det.x2)), 0), w - 1)
        y2 = min(max(int(round(det.y2)), 0), h - 1)
        if x2 < x1 or y2 < y1:
            continue
        t = min(lw, x2 - x1 + 1, y2 - y1 + 1)
        out[y1 : y1 + t, x1 : x2 + 1] = color
        out[y2 - t + 1 : y2 + 1, x1 : x2 + 1] = color
        out[y1 : y2 + 1, x1 : x1 + t] = color
        out[y1 : y2 + 1, x2 - t + 1 : x2 + 1] = color
        if show_labels:
            text = f"{det.class_name} {det.confidence:.2f}"
            scale = max(0.4, min(h, w) / 1000.0)
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            ty = y1 - 2 if y1 - th - base - 2 >= 0 else min(y1 + t + th + 2, h - 1)
            cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty + base // 2), color, -1)
            ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
            cv2.putText(out, text, (x1, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, 1)
    return out


def show_detections(
    rgb: np.ndarray,
    detections: Detections,
    colors: Mapping[str, Color] | None = None,
    linewidth: int = 4,
    show_labels: bool = True,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Show the overlay with matplotlib (inline in notebooks); returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        h, w = rgb.shape[:2]
        _, ax = plt.subplots(figsize=(10, 10 * h / max(w, 1)))
    ax.imshow(draw_detections(rgb, detections, colors, linewidth, show_labels))
    ax.set_axis_off()
    ax.set_title(title if title is not None else repr(detections), fontsize=9)
    return ax


def overlay_size(image_size: tuple[int, int], max_size: tuple[int, int] | None) -> tuple[int, int]:
    """``(width, height)`` of an overlay of an ``image_size`` frame fitted inside ``max_size``
    (aspect ratio kept, never enlarged; ``None``: full size).

    >>> overlay_size((1920, 1080), (960, 960)), overlay_size((640, 480), (960, 540))
    ((960, 540), (640, 480))
    """
    w, h = int(image_size[0]), int(image_size[1])
    if max_size is None:
        return w, h
    scale = min(1.0, max_size[0] / w, max_size[1] / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def fit_frame(
    image: np.ndarray, original_size: tuple[int, int], max_size: tuple[int, int] | None
) -> np.ndarray:
    """The frame an overlay is drawn on: ``image`` (a frame of an ``original_size`` image,
    possibly decoded smaller) resized to :func:`overlay_size` (never enlarged; ``image`` itself
    when it already has that size). Area averaging for reductions to 1/2 or less, bilinear
    above (5x faster there). The pipeline fits each frame as soon as it is decoded, which keeps
    the frames waiting for their answer small; :func:`save_overlay` then draws on it as it is.

    >>> fit_frame(np.zeros((1080, 1920, 3), np.uint8), (1920, 1080), (960, 544)).shape
    (540, 960, 3)
    """
    h, w = image.shape[:2]
    tw, th = overlay_size(original_size, max_size)
    tw, th = min(tw, w), min(th, h)  # a reduced decode may be a few pixels short: never enlarge
    if (tw, th) == (w, h):
        return image
    area = tw * 2 <= w or th * 2 <= h
    return cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)


def save_overlay(
    path: str | os.PathLike,
    image: np.ndarray,
    detections: Detections,
    colors: Mapping[str, Color] | None = None,
    linewidth: int = 4,
    show_labels: bool = True,
    quality: int = 95,
    *,
    bgr: bool = False,
    max_size: tuple[int, int] | None = None,
    in_place: bool = False,
) -> Path:
    """Write the overlay as an image (JPEG unless the suffix says PNG), atomically.

    ``image``: the frame, RGB (``bgr=True``: OpenCV's BGR order, saves two colour
    conversions), at its original size or smaller (a reduced-scale decode): boxes, in pixels of
    ``detections.image_size``, are scaled to it. ``max_size``: the overlay is fitted inside
    this ``(width, height)`` (:func:`overlay_size`) before the boxes are drawn, so
    ``linewidth`` is in overlay pixels. ``quality``: JPEG quality (1-100). ``in_place``: the
    boxes may be drawn on ``image`` itself (the caller hands the frame over), which saves a
    copy of it; the file is the same.

    >>> import tempfile, pathlib, cv2
    >>> d = Detections([[100, 100, 500, 900]], [0.9], [0], ("person",), (1000, 1000))
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "o.png"
    >>> frame = np.zeros((500, 500, 3), np.uint8)  # BGR, decoded at half scale
    >>> _ = save_overlay(out, frame, d, {"person": (0, 0, 255)}, 2, False, bgr=True,
    ...                  max_size=(250, 400))
    >>> image = cv2.imread(str(out))  # BGR: the blue box edge at x = 100 / 4
    >>> image.shape, image[100, 25].tolist(), image[100, 27].tolist()
    ((250, 250, 3), [255, 0, 0], [0, 0, 0])
    """
    path = Path(path)
    suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png") else ".jpg"
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be 1-100, got {quality}")
    h, w = image.shape[:2]
    original = detections.image_size or (w, h)
    fitted = fit_frame(image, original, max_size)
    if fitted is not image:
        image, in_place = fitted, True  # a new array of our own
    th, tw = image.shape[:2]
    if (tw, th) != tuple(original):
        detections = detections.scaled(tw / original[0], th / original[1], (tw, th))
    if bgr:  # draw in BGR: colours reversed, no conversion of the frame
        names = detections.class_names
        given = colors or {}
        colors = {n: tuple(_color_for(n, i, given))[::-1] for i, n in enumerate(names)}
        drawn = draw_detections(
            image, detections, colors, linewidth, show_labels, copy=not in_place
        )
    else:
        drawn = cv2.cvtColor(
            draw_detections(image, detections, colors, linewidth, show_labels, copy=not in_place),
            cv2.COLOR_RGB2BGR,
        )
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if suffix != ".png" else []
    ok, encoded = cv2.imencode(suffix, drawn, params)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the overlay")
    return atomic_write_bytes(path, encoded.tobytes())
