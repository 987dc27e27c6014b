"""Image files: size from the header, RGB loading, reduced-scale JPEG decoding, 16-bit thermal.

One error class, :class:`UnreadableImageError`, for any image that is missing, truncated or not
an image. Writing images is :func:`cvlab.fileio.atomic_write_image`.

RGB loading (:func:`load_image`): every OpenCV-decodable file becomes ``(H, W, 3)`` uint8 RGB
(grey and RGBA become 3 channels, 16-bit keeps its high byte). For a model input,
:func:`load_image_for_model` decodes a large JPEG at 1/2, 1/4 or 1/8 scale instead.

16-bit thermal normalisation (FLIR v1 ``thermal_16_bit/*.tiff``, raw radiometric counts): each
image is stretched linearly from its own 1st to 99th percentile onto 0-255 and clipped
(:func:`normalize_16bit`). Per-image percentiles are robust to a few very hot or cold pixels and
follow FLIR's own automatic gain control, which produced the 8-bit JPEGs.

Example:
    >>> import tempfile, pathlib
    >>> import cv2, numpy as np
    >>> path = str(pathlib.Path(tempfile.mkdtemp()) / "frame.png")
    >>> raw = np.linspace(7000, 9000, 64 * 48).reshape(48, 64).astype(np.uint16)
    >>> cv2.imwrite(path, raw)
    True
    >>> image_size(path)
    (64, 48)
    >>> load_image(path).shape
    (48, 64, 3)
    >>> g = load_thermal(path, "16bit")
    >>> g.dtype, int(g.min()), int(g.max())
    (dtype('uint8'), 0, 255)
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from cvlab.detectnet import PEOPLENET_INPUT_SIZE
from cvlab.errors import CvlabError

ImageType = Literal["8bit", "16bit"]
#: JPEG quality of the prepared training images.
JPEG_QUALITY = 95

#: JPEG decoding at 1/2, 1/4 or 1/8 scale (DCT-domain, an area average) is used when the
#: reduced image still has at least this fraction of the model input's width and height.
REDUCED_DECODE_MIN_FRACTION = 0.98
_REDUCED_FLAGS = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)


class UnreadableImageError(CvlabError, OSError):
    """An image file that is missing, truncated, corrupt or not an image; ``path`` names it."""

    def __init__(self, path: str | os.PathLike, reason: str = "cannot decode image") -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across worker processes despite the 2-argument __init__
        return (type(self), (self.path, self.reason))


def _header(
    path: str | os.PathLike, data: bytes | None = None
) -> tuple[tuple[int, int], str | None]:
    """``((width, height), PIL format name)`` from the file header (PIL opens lazily); ``data``:
    the file's bytes, already read (``path`` then only names it in errors)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as im:
            return (int(im.size[0]), int(im.size[1])), im.format
    except (OSError, ValueError) as exc:
        raise UnreadableImageError(path, f"cannot read image header: {exc}") from None


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; :class:`UnreadableImageError` when it is missing or cannot be read."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise UnreadableImageError(path, "no such file") from None
    except OSError as exc:
        raise UnreadableImageError(path, f"cannot read: {exc.strerror or exc}") from None


def _decode(path: Path, data: bytes, flag: int) -> np.ndarray:
    """``cv2.imdecode`` of a file's bytes; :class:`UnreadableImageError` when it fails.

    ``imdecode`` refuses a JPEG cut short in its scan, which ``imread`` decodes (the missing
    rows grey): such a file is read again with ``imread``, so both read the same files."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag) if data else None
    if image is None or image.size == 0:
        image = cv2.imread(str(path), flag)
    if image is None or image.size == 0:
        raise UnreadableImageError(path, "cannot decode image (corrupt or not an image)")
    return image


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` from the file header only, without decoding pixels.

    Raises :class:`UnreadableImageError` for a missing file or one that is not an image.
    """
    return _header(path)[0]


def to_rgb8(image: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Any OpenCV-decoded array (gray, BGR, BGRA; 8 or 16 bit) -> ``(H, W, 3)`` uint8 RGB.

    ``bgr=True`` keeps OpenCV's BGR order (no colour conversion for a BGR image).
    """
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR if bgr else cv2.COLOR_BGRA2RGB)
    return image if bgr else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_image(path: str | os.PathLike, bgr: bool = False) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (BGR with ``bgr``).

    Raises :class:`UnreadableImageError` when the file is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise UnreadableImageError(path, "no such file")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise UnreadableImageError(path, "cannot decode image (corrupt or not an image)")
    return to_rgb8(image, bgr)


def load_image_for_model(
    path: str | os.PathLike,
    input_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    bgr: bool = False,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Read an image for a model of ``input_size``: ``(rgb, original (width, height))``.

    A JPEG at least twice the model size is decoded at a reduced scale (libjpeg's DCT scaling,
    which averages pixel blocks, so it also anti-aliases): a 1920x1080 frame for a 960x544 model
    is decoded at 960x540, which is much faster than a full decode followed by a resize. Other
    files are read in full with :func:`load_image`. Boxes are later scaled to the original size.
    ``bgr=True`` returns OpenCV's BGR order (saves a colour conversion; see preprocess_image).
    """
    path = Path(path)
    if path.suffix.lower() not in (".jpg", ".jpeg"):
        rgb = load_image(path, bgr)
        return rgb, (rgb.shape[1], rgb.shape[0])
    data = _read_bytes(path)  # read once: the header and the pixels come from these bytes
    try:
        (width, height), fmt = _header(path, data)
    except UnreadableImageError:
        fmt = None  # _decode below says what is wrong with the file
    flag = cv2.IMREAD_UNCHANGED  # as load_image
    if fmt == "JPEG":
        for factor, reduced in _REDUCED_FLAGS:
            rw, rh = -(-width // factor), -(-height // factor)
            if (
                rw >= REDUCED_DECODE_MIN_FRACTION * input_size[0]
                and rh >= REDUCED_DECODE_MIN_FRACTION * input_size[1]
            ):
                return to_rgb8(_decode(path, data, reduced), bgr), (width, height)
    image = to_rgb8(_decode(path, data, flag), bgr)
    return image, (image.shape[1], image.shape[0])


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
        raise UnreadableImageError(path, "missing or not a decodable image")
    if image_type == "16bit":
        if image.ndim == 3:
            image = image[..., 0]
        if image.dtype != np.uint16:
            raise UnreadableImageError(path, f"expected a 16-bit image, got {image.dtype}")
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
