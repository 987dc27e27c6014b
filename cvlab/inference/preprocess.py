"""Image files -> the NCHW float32 tensor PeopleNet / DetectNet_v2 expects (OpenCV).

Each image is read as RGB (grayscale, 16-bit and RGBA inputs become 3-channel 8-bit), resized
to the model input (width, height) with bilinear interpolation, scaled by 1/255 and laid out
channels-first. The original size of each frame is kept so boxes can be scaled back.

Example:
    >>> import numpy as np
    >>> preprocess_image(np.zeros((1080, 1920, 3), np.uint8)).shape
    (3, 544, 960)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from cvlab.detectnet import PEOPLENET_INPUT_SIZE
from cvlab.errors import CvlabError

#: File suffixes taken as images (compared in lower case).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")
#: PeopleNet's input size, (width, height).
PEOPLENET_INPUT_SIZE: tuple[int, int] = PEOPLENET_INPUT_SIZE


class ImageReadError(CvlabError, OSError):
    """An image file that is missing, unreadable or corrupt."""

    def __init__(self, path: str | os.PathLike, reason: str = "cannot decode image") -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}")


@dataclass
class ImageBatch:
    """Preprocessed images.

    Attributes:
        tensor: ``[N, 3, H, W]`` float32 in [0, 1].
        original_sizes: ``(width, height)`` of each source image.
        paths: the files in ``tensor`` order.
        skipped: files that could not be read (``on_error="skip"``).
    """

    tensor: np.ndarray
    original_sizes: list[tuple[int, int]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def list_images(directory: str | os.PathLike) -> list[Path]:
    """Image files (jpg/jpeg/png, any case) directly in ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory}: not a directory")
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


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
    """Read an image file as ``(H, W, 3)`` uint8 RGB (BGR with ``bgr``); raises :class:`ImageReadError`."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "no such file")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageReadError(path, "cannot decode image (corrupt or not an image)")
    return to_rgb8(image, bgr)


#: JPEG decoding at 1/2, 1/4 or 1/8 scale (DCT-domain, an area average) is used when the
#: reduced image still has at least this fraction of the model input's width and height.
REDUCED_DECODE_MIN_FRACTION = 0.98
_REDUCED_FLAGS = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)


def jpeg_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(width, height)`` of a JPEG from its header alone (no pixel decoding); None if unknown."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return (int(im.size[0]), int(im.size[1])) if im.format == "JPEG" else None
    except (OSError, UnidentifiedImageError):
        return None


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
    if path.suffix.lower() in (".jpg", ".jpeg") and path.is_file():
        size = jpeg_size(path)
        if size is not None:
            width, height = size
            for factor, flag in _REDUCED_FLAGS:
                rw, rh = -(-width // factor), -(-height // factor)
                if (
                    rw >= REDUCED_DECODE_MIN_FRACTION * input_size[0]
                    and rh >= REDUCED_DECODE_MIN_FRACTION * input_size[1]
                ):
                    image = cv2.imread(str(path), flag)
                    if image is None or image.size == 0:
                        raise ImageReadError(path, "cannot decode image (corrupt or not an image)")
                    return to_rgb8(image, bgr), size
    rgb = load_image(path, bgr)
    return rgb, (rgb.shape[1], rgb.shape[0])


def preprocess_image(
    rgb: np.ndarray,
    input_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    out: np.ndarray | None = None,
    bgr: bool = False,
) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> ``[3, h, w]`` float32 scaled 1/255, where ``(w, h) = input_size``.

    ``out``: a ``[3, h, w]`` float32 array to write into (e.g. a shared-memory slot) instead of
    a new one. ``bgr``: the image is in OpenCV's BGR order; the tensor is RGB all the same.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        rgb = to_rgb8(rgb) if rgb.ndim == 2 else rgb
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    width, height = int(input_size[0]), int(input_size[1])
    if (rgb.shape[1], rgb.shape[0]) != (width, height):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    if out is None:
        out = np.empty((3, height, width), np.float32)
    elif out.shape != (3, height, width) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 [3, {height}, {width}], got {out.dtype} {out.shape}")
    # contiguous planes, then one uint8->float32 cast per plane and one in-place scale: about
    # twice as fast as a strided multiply of the interleaved image
    planes = cv2.split(rgb)
    for c, source in enumerate((2, 1, 0) if bgr else (0, 1, 2)):
        out[c] = planes[source]
    np.multiply(out, np.float32(1.0 / 255.0), out=out)
    return out


def preprocess_images(
    paths: Iterable[str | os.PathLike],
    input_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    on_error: Literal["skip", "raise"] = "skip",
    progress: bool = False,
    out: np.ndarray | None = None,
) -> ImageBatch:
    """Load and preprocess image files into one batch.

    Unreadable files raise :class:`ImageReadError` (``on_error="raise"``) or are left out with
    one warning listing them (``on_error="skip"``); they are reported in ``ImageBatch.skipped``.
    ``out``: a float32 ``[M, 3, H, W]`` array (``M >= len(paths)``) the images are written into
    without a copy (a shared-memory slot); ``tensor`` is then a view of its first rows.
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    paths = [str(p) for p in paths]
    width, height = int(input_size[0]), int(input_size[1])
    if out is not None and (
        out.ndim != 4 or out.shape[1:] != (3, height, width) or len(out) < len(paths)
    ):
        raise ValueError(
            f"out must be [>={len(paths)}, 3, {height}, {width}], got {list(out.shape)}"
        )
    tensors: list[np.ndarray] = []
    batch = ImageBatch(tensor=np.zeros((0, 3, height, width), np.float32))
    iterator: Sequence[str] | Iterable[str] = paths
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(paths, desc="preprocess", unit="img")
    for path in iterator:
        try:
            bgr, original_size = load_image_for_model(path, (width, height), bgr=True)
        except ImageReadError:
            if on_error == "raise":
                raise
            batch.skipped.append(path)
            continue
        row = None if out is None else out[len(tensors)]
        tensors.append(preprocess_image(bgr, (width, height), out=row, bgr=True))
        batch.original_sizes.append(original_size)
        batch.paths.append(path)
    if batch.skipped:
        warnings.warn(
            f"skipped {len(batch.skipped)} unreadable image(s): {', '.join(batch.skipped)}",
            UserWarning,
            stacklevel=2,
        )
    if out is not None:
        batch.tensor = out[: len(tensors)]
    elif tensors:
        batch.tensor = np.stack(tensors)
    return batch
