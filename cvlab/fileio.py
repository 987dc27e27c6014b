"""Atomic file writes (a temporary file in the target's folder, then a rename) and the image lister.

Readers (Triton polling a repository, a notebook watching metrics.csv, a re-run resuming work)
never see a half-written file, and a failure leaves the previous file (or none) in place. Every
write cvlab makes goes through here: text, bytes, images (OpenCV), matplotlib figures and
notebooks; :func:`list_images` is the one way a folder of images is listed, and
:func:`safe_path` the one check on a file name that comes from remote or dataset content. A set
of files that only makes sense complete (TFRecord shards and their manifest) is written into a
new folder that takes the old one's place at the end (:func:`atomic_directory`). A folder one run
writes at a time is held with :func:`lock_directory`.

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
import itertools
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PureWindowsPath
from typing import Any

from cvlab.errors import CvlabError

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
    tmp = path.with_name(
        f".{path.stem}.{_temporary_tag()}{path.suffix if suffix is None else suffix}"
    )
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: this process's part of temporary names (unique across hosts sharing a folder)
_PROCESS_TAG = secrets.token_hex(4)
_sequence = itertools.count()


def _temporary_tag() -> str:
    """A name part no other write uses (process, thread, sequence): no file needs creating and
    removing to reserve it, as :func:`tempfile.mkstemp` does, which costs as much as writing a
    KITTI label (the writer threads of ``cvlab infer`` write two files per frame).

    >>> _temporary_tag() != _temporary_tag()
    True
    """
    return f"{_PROCESS_TAG}-{os.getpid()}-{threading.get_ident()}-{next(_sequence)}"


#: :func:`_temporary_tag` as a pattern (its pid is the writer's)
_TAG = r"[0-9a-f]{8}-(?P<pid>\d+)-\d+-\d+"
#: the name of a temporary file or folder of an atomic write still under way (or left by a kill)
_UNFINISHED = re.compile(rf"^\..*\.{_TAG}(\.[^.]*)?$|^\..*\.tmp$")


def is_unfinished_write(name: str) -> bool:
    """True for the name of an atomic write's temporary file or folder (never content to read,
    copy or upload).

    >>> is_unfinished_write(f".model.{_temporary_tag()}.onnx"), is_unfinished_write(".x.tmp")
    (True, True)
    >>> is_unfinished_write("model.onnx"), is_unfinished_write(".flir-split.json")
    (False, False)
    """
    return bool(_UNFINISHED.match(name))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new, empty folder beside ``path``; it takes ``path``'s place when the block succeeds.

    The folder is filled under a dot name, ``.<name>.<tag>.tmp``, which globs (Python's, TAO's)
    and listers that skip dot names never take for content. Whatever is at ``path`` (an earlier
    complete folder) stays untouched until the block has succeeded; then it is renamed aside (a
    dot name too), the new folder renamed in (with the old one's permissions), and the old one
    deleted. Readers find the old folder, for an instant none, then the new one, never a
    half-written one. On an exception (Ctrl-C included) the new folder is removed and ``path``
    is as it was. When ``path`` is a symbolic link, the folder it points to is replaced and the
    link kept. What a killed writer (SIGKILL) left is cleaned up first
    (:func:`recover_directory`).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_directory(d / "set") as tmp:
    ...     _ = (tmp / "a").write_text("complete")
    >>> try:
    ...     with atomic_directory(d / "set") as tmp:
    ...         _ = (tmp / "b").write_text("half")
    ...         raise OSError("disk full")
    ... except OSError:
    ...     pass
    >>> sorted(str(p.relative_to(d)) for p in d.rglob("*"))
    ['set', 'set/a']
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(path)
    tag = _temporary_tag()
    tmp, old = (path.with_name(f".{path.name}.{tag}.{what}") for what in ("tmp", "old"))
    tmp.mkdir()
    if path.is_dir():
        shutil.copymode(path, tmp)  # the folder keeps its permissions
    try:
        yield tmp
        if os.path.lexists(path):
            os.rename(path, old)
        os.rename(tmp, path)
    except BaseException:
        # Decided by what is on disk, not by how far this block got (a signal can come anywhere).
        if os.path.lexists(old) and not os.path.lexists(path):
            os.rename(old, path)  # the previous folder goes back
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_entry(old)  # still there only when the swap was complete
        raise
    _remove_entry(old)


_SWAP_LEFTOVER = re.compile(rf"^\.(?P<name>.+)\.(?P<tag>{_TAG})\.(?P<kind>tmp|old)$")


def recover_directory(path: str | os.PathLike) -> list[str]:
    """Clean up after :func:`atomic_directory` writers of ``path`` that were killed (SIGKILL, a
    power cut) and had no chance to. Folders of live processes are left alone. For a dead
    writer's folders:

    - killed while filling: its half-filled ``.tmp`` folder is deleted;
    - killed between its two renames (``path`` is missing; the previous folder is aside as
      ``.old`` and the new, complete one still ``.tmp``): the new one takes ``path``, as the
      writer meant, and the old one is deleted.

    Returns what it did (``"removed <name>"`` / ``"restored <name>"``); :func:`atomic_directory`
    calls it first.
    """
    path = Path(path)
    done: list[str] = []
    if not path.parent.is_dir():
        return done
    dead: dict[str, dict[str, Path]] = {}  # tag -> {"tmp": ..., "old": ...}
    for entry in sorted(path.parent.iterdir()):
        found = _SWAP_LEFTOVER.match(entry.name)
        if found and found["name"] == path.name and not pid_alive(int(found["pid"])):
            dead.setdefault(found["tag"], {})[found["kind"]] = entry
    for entries in dead.values():
        if "old" in entries and "tmp" in entries and not os.path.lexists(path):
            os.rename(entries.pop("tmp"), path)  # the block had succeeded: the new folder
            done.append(f"restored {path.name}")
        for entry in entries.values():
            _remove_entry(entry)
            done.append(f"removed {entry.name}")
    return done


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (in this PID namespace): the
    owner of a leftover temporary file or folder is dead when this is False.

    >>> pid_alive(os.getpid())
    True
    """
    try:
        state = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError, ValueError):
        return False
    return state not in ("Z", "X")


class DirectoryLocked(CvlabError, RuntimeError):
    """Another process holds the folder's lock (see :func:`lock_directory`)."""


@contextlib.contextmanager
def lock_directory(
    path: str | os.PathLike, what: str = "cvlab", *, handles: list[int] | None = None
) -> Iterator[Path]:
    """Hold an exclusive lock on folder ``path`` inside the block.

    A second holder is refused at once with :class:`DirectoryLocked` naming the folder. The lock
    is an ``flock`` on the folder itself (no lock file): it goes with its process, so a killed
    run never leaves the folder locked. A folder that did not exist is created, and removed
    again if it is still empty at the end (a run that failed before writing leaves nothing).
    ``handles``: the lock's file descriptor is appended to it, for child processes to inherit
    (``subprocess.Popen(pass_fds=handles)``); the lock belongs to the open folder, so it is
    then held until every process holding the descriptor (this one, its children) has closed
    it or exited.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with lock_directory(d, "cvlab infer"):
    ...     with lock_directory(d, "cvlab infer"):
    ...         pass
    Traceback (most recent call last):
    ...
    cvlab.fileio.DirectoryLocked: ... is in use by another cvlab infer: wait for it to finish \
or write elsewhere
    """
    import fcntl

    folder = Path(path)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DirectoryLocked(
                f"{folder} is in use by another {what}: wait for it to finish or write elsewhere"
            ) from None
        if handles is not None:
            handles.append(fd)
        try:
            yield folder
        finally:
            if created:
                with contextlib.suppress(OSError):  # not empty: the run wrote something
                    folder.rmdir()
    finally:
        os.close(fd)  # releases the lock


def _remove_entry(path: Path) -> None:
    """Delete a folder (with its content) or a file; nothing when there is none."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)  # a dot name: a leftover is never read as data
    else:
        path.unlink(missing_ok=True)


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
    directory: str | os.PathLike,
    suffixes: Iterable[str] = IMAGE_SUFFIXES,
    *,
    broken_links: bool = False,
) -> list[Path]:
    """Files directly in ``directory`` whose suffix, in any case, is one of ``suffixes``, sorted.

    ``broken_links=True`` also lists symbolic links whose target is missing (a reader then
    reports each one, rather than it vanishing from the list). Raises
    :class:`NotADirectoryError` when ``directory`` is not a folder.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory}: not a directory")
    wanted = {s.lower() for s in suffixes}
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix.lower() in wanted
        and (p.is_file() or (broken_links and p.is_symlink() and not p.exists()))
    )


class UnsafePathError(CvlabError, ValueError):
    """A file name from remote or dataset content would be written outside its destination."""


def safe_path(root: str | os.PathLike, name: str, *, links: bool = True) -> Path:
    r"""``root / name`` when ``name`` (a relative name from a bucket, an annotation file, a
    manifest) stays inside ``root``; :class:`UnsafePathError` naming it otherwise.

    Refused: empty names, absolute names (``/etc/x``, and ``\x`` or ``C:x`` made on Windows),
    names with a ``..`` part (``\`` counts as a separator there too) or a NUL byte, names with
    an empty part (``a//b``; a bucket name ``dl//tmp/x`` below the prefix ``dl`` is ``/tmp/x``),
    and, with ``links`` (for writing), names that resolve outside ``root`` through a symbolic
    link already there. ``links=False`` checks the name on its face only: for reading a
    dataset whose folders may be the user's own links to elsewhere.

    >>> safe_path("/data/out", "images/a.jpg").as_posix()
    '/data/out/images/a.jpg'
    >>> for bad in ("../x", "/tmp/x.txt", "a//b", "a/..\\..\\b", "", "C:x"):
    ...     try:
    ...         safe_path("/data/out", bad)
    ...     except UnsafePathError as exc:
    ...         print(exc)
    '../x': a '..' part would leave /data/out
    '/tmp/x.txt': an absolute name would leave /data/out
    'a//b': an empty part in the name (refused in /data/out)
    'a/..\\..\\b': a '..' part would leave /data/out
    '': an empty name is no file in /data/out
    'C:x': an absolute name would leave /data/out
    """
    root = Path(root)
    text = str(name)
    if not text:
        raise UnsafePathError(f"{text!r}: an empty name is no file in {root}")
    if text.startswith("/") or PureWindowsPath(text).anchor:
        raise UnsafePathError(f"{text!r}: an absolute name would leave {root}")
    if ".." in text.replace("\\", "/").split("/"):
        raise UnsafePathError(f"{text!r}: a '..' part would leave {root}")
    if "\0" in text:
        raise UnsafePathError(f"{text!r}: a NUL byte in the name (refused in {root})")
    parts = text.split("/")
    if "" in parts[:-1] or parts[-1] in ("", "."):
        raise UnsafePathError(f"{text!r}: an empty part in the name (refused in {root})")
    target = root.joinpath(*parts)
    if links and not target.resolve().is_relative_to(root.resolve()):
        raise UnsafePathError(f"{text!r}: resolves outside {root} (through a symbolic link)")
    return target
