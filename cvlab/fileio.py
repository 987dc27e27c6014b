"""Atomic file writes (a temporary file in the target's folder, then a rename) and the image lister.

Readers (Triton polling a repository, a notebook watching metrics.csv, a re-run resuming work)
never see a half-written file, and a failure leaves the previous file (or none) in place. Every
write cvlab makes goes through here: text, bytes, images (OpenCV), matplotlib figures and
notebooks; :func:`list_images` is the one way a folder of images is listed.

Example:
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_text(d / "sub" / "a.txt", "hello").read_text()
    'hello'
    >>> atomic_write_image(d / "b.PNG", np.zeros((4, 6, 3), np.uint8)).name
    'b.PNG'
    >>> [p.name for p in list_images(d)]
    ['b.PNG']
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

#: File suffixes taken as images by :func:`list_images` (compared in lower case).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` when the block succeeds.

    ``suffix`` (default: ``path``'s own) keeps writers that choose a format by file name happy
    (``model.save``, ``to_csv``). On an exception the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix if suffix is None else suffix
    )
    os.close(fd)
    os.unlink(tmp)  # writers create it themselves; some refuse to overwrite
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_image(
    path: str | os.PathLike,
    image: Any,
    *,
    bgr: bool = False,
    quality: int | None = None,
    params: Sequence[int] = (),
) -> Path:
    """Encode ``image`` with OpenCV in the format of ``path``'s suffix and write it atomically.

    ``image``: ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (uint8, or uint16 where
    the format allows it, e.g. PNG/TIFF); ``bgr=True`` when it is already in OpenCV's BGR(A)
    order. ``quality`` is the JPEG quality (OpenCV's default, 95, when None); ``params`` are
    further ``cv2.IMWRITE_*`` pairs. The bytes are those ``cv2.imwrite`` would write. Raises
    :class:`OSError` when OpenCV cannot encode it; returns the path.
    """
    import cv2
    import numpy as np

    path = Path(path)
    image = np.asarray(image)
    if not bgr and image.ndim == 3 and image.shape[2] in (3, 4):
        image = cv2.cvtColor(
            image, cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        )
    flags = [int(v) for v in params]
    if quality is not None:
        flags += [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    try:
        ok, encoded = cv2.imencode(path.suffix, image, flags)
    except cv2.error as exc:  # no encoder for the suffix, or an unsupported array
        raise OSError(f"{path}: OpenCV could not encode the image: {exc}") from None
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image")
    return atomic_write_bytes(path, encoded.tobytes())


def atomic_save_figure(path: str | os.PathLike, fig: Any, **savefig_kwargs: Any) -> Path:
    """``fig.savefig(path, **savefig_kwargs)`` atomically (the format follows the suffix)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    return Path(path)


def atomic_write_notebook(path: str | os.PathLike, nb: Any) -> Path:
    """Write a notebook (an ``nbformat`` node) to ``path`` atomically."""
    import nbformat

    with atomic_path(path) as tmp:
        nbformat.write(nb, str(tmp))
    return Path(path)


def list_images(
    directory: str | os.PathLike, suffixes: Iterable[str] = IMAGE_SUFFIXES
) -> list[Path]:
    """Files directly in ``directory`` whose suffix, in any case, is one of ``suffixes``, sorted.

    Raises :class:`NotADirectoryError` when ``directory`` is not a folder.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory}: not a directory")
    wanted = {s.lower() for s in suffixes}
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in wanted)
