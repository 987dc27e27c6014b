"""Image files: size from the header, RGB loading, reduced-scale JPEG decoding, 16-bit thermal.

One error class, :class:`UnreadableImageError`, for any image that is missing, truncated (a JPEG
cut short is refused, never decoded with grey rows), not an image, or larger than PIL's
decompression-bomb limit (:data:`MAX_PIXELS`). Writing images is
:func:`cvlab.fileio.atomic_write_image`.

EXIF orientation: one rule for every reader here, the one OpenCV's ``imread`` follows by
default: the pixels are turned upright as the EXIF Orientation tag says, and the size is the
upright size (a 1920x1080 JPEG tagged Orientation=6 is a 1080x1920 frame), whether it is decoded
in full or at a reduced scale or only its header read (:func:`image_size`). Boxes, labels and
overlays are therefore all in the upright frame. (TAO's TFRecords keep the stored frame:
:func:`cvlab.formats.tfrecords` asks for ``image_size(path, oriented=False)``.)

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


#: the most pixels an image may have: PIL's decompression-bomb limit (2 x its default
#: ``MAX_IMAGE_PIXELS``, 178.9 MP); a larger image is an :class:`ImageTooLargeError`, not a crash
MAX_PIXELS = 2 * 89_478_485
#: EXIF Orientation -> OpenCV operations turning the stored pixels upright (PIL's exif_transpose)
_ORIENT = {
    2: lambda a: cv2.flip(a, 1),
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: cv2.flip(a, 0),
    5: lambda a: cv2.transpose(a),
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: cv2.flip(cv2.transpose(a), -1),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


class UnreadableImageError(CvlabError, OSError):
    """An image file that is missing, truncated, corrupt or not an image; ``path`` names it."""

    def __init__(self, path: str | os.PathLike, reason: str = "cannot decode image") -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across worker processes despite the 2-argument __init__
        return (type(self), (self.path, self.reason))


class ImageTooLargeError(UnreadableImageError):
    """An image over :data:`MAX_PIXELS`: refused before its pixels are decoded."""


def _header(
    path: str | os.PathLike, data: bytes | None = None
) -> tuple[tuple[int, int], str | None, int]:
    """``((width, height), PIL format name, EXIF orientation)`` from the file header (PIL opens
    lazily), the size as stored; ``data``: the file's bytes, already read (``path`` then only
    names it in errors). An image over :data:`MAX_PIXELS` is refused."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as im:
            (width, height), fmt = im.size, im.format
            orientation = 1
            # a PNG's EXIF is read only from before its pixels: PIL would decode the image
            # to look after them
            if fmt in ("JPEG", "MPO", "TIFF") or (fmt == "PNG" and "exif" in im.info):
                try:
                    orientation = int(im.getexif().get(0x0112, 1) or 1)
                except Exception:  # noqa: BLE001 - a broken EXIF block: OpenCV ignores it too
                    orientation = 1
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            path, f"too large to decode (decompression-bomb guard): {exc}"
        ) from None
    except (OSError, ValueError) as exc:
        raise UnreadableImageError(path, f"cannot read image header: {exc}") from None
    if width * height > MAX_PIXELS:  # PIL's guard, when PIL's own limit was raised
        raise ImageTooLargeError(
            path,
            f"too large to decode: {width}x{height} = {width * height} pixels, over "
            f"{MAX_PIXELS} (PIL's decompression-bomb limit)",
        )
    return (int(width), int(height)), fmt, orientation if orientation in _ORIENT else 1


def _upright(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The ``(width, height)`` of a stored ``size`` once turned upright."""
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; :class:`UnreadableImageError` when it is missing or cannot be read."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        if path.is_symlink():
            target = os.readlink(path)
            raise UnreadableImageError(path, f"broken symbolic link (to {target})") from None
        raise UnreadableImageError(path, "no such file") from None
    except OSError as exc:
        raise UnreadableImageError(path, f"cannot read: {exc.strerror or exc}") from None


def _decode(path: Path, data: bytes, flag: int, orientation: int = 1) -> np.ndarray:
    """``cv2.imdecode`` of a file's bytes, turned upright by ``orientation``;
    :class:`UnreadableImageError` when it fails.

    ``imdecode`` refuses a JPEG cut short (``imread`` would fill the missing rows with grey and
    call it a frame): such a file is unreadable, whichever reader meets it. OpenCV's own EXIF
    handling is off (``IMREAD_IGNORE_ORIENTATION``): the orientation from the header is applied
    here, the same for every flag."""
    if flag != cv2.IMREAD_UNCHANGED:
        flag |= cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag) if data else None
    if image is None or image.size == 0:
        raise UnreadableImageError(path, "cannot decode image (truncated, corrupt or not an image)")
    turn = _ORIENT.get(orientation)
    return turn(image) if turn is not None else image


def _load(path: Path, flag: int) -> np.ndarray:
    """Header check (size limit, orientation), then the upright decode of the whole file."""
    data = _read_bytes(path)
    try:
        _, _, orientation = _header(path, data)
    except ImageTooLargeError:
        raise
    except UnreadableImageError:
        orientation = 1  # a format PIL does not know: OpenCV may still decode it
    return _decode(path, data, flag, orientation)


def image_size(path: str | os.PathLike, *, oriented: bool = True) -> tuple[int, int]:
    """``(width, height)`` from the file header only, without decoding pixels: the upright size
    (EXIF orientation applied, see the module docstring) unless ``oriented=False``.

    Raises :class:`UnreadableImageError` for a missing file or one that is not an image.
    """
    size, _, orientation = _header(path)
    return _upright(size, orientation) if oriented else size


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
    return to_rgb8(_load(Path(path), cv2.IMREAD_UNCHANGED), bgr)


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
    data = _read_bytes(path)  # read once: the header and the pixels come from these bytes
    try:
        size, fmt, orientation = _header(path, data)
    except ImageTooLargeError:
        raise
    except UnreadableImageError:
        size, fmt, orientation = None, None, 1  # _decode below says what is wrong with the file
    if fmt == "JPEG" and size is not None:
        width, height = _upright(size, orientation)
        for factor, reduced in _REDUCED_FLAGS:
            rw, rh = -(-width // factor), -(-height // factor)
            if (
                rw >= REDUCED_DECODE_MIN_FRACTION * input_size[0]
                and rh >= REDUCED_DECODE_MIN_FRACTION * input_size[1]
            ):
                image = _decode(path, data, reduced, orientation)
                return to_rgb8(image, bgr), (width, height)
    image = to_rgb8(_decode(path, data, cv2.IMREAD_UNCHANGED, orientation), bgr)
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
    image = _load(Path(path), flag)
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
