"""The files of an inference run: output names, the frame writer and the done-list.

Layout, as the lab's client writes it: ``OUT/infer_labels/<name>.txt`` (16-field KITTI lines)
and ``OUT/infer_images/<name>.jpg`` (the overlay), where ``<name>`` is the image's stem. Images
whose stems collide (``a.jpg``, ``a.JPG``, ``a.png``) keep their whole file name instead
(``a.jpg.txt``, ``a.JPG.txt``, ``a.png.txt``) so that no output overwrites another
(:func:`output_names`); names that would still collide are refused before anything runs.

Each frame's outputs are written as a unit by :class:`FrameWriter`: the overlay first, then the
label, each atomically (:mod:`cvlab.fileio`), then one line ``<name>\\t<image>`` appended to
``OUT/infer_done.txt`` (the done-list; in its fields and the failed list's, a backslash, tab,
newline or carriage return is written ``\\\\``, ``\\t``, ``\\n``, ``\\r``: :func:`list_line`). So a label file means its frame is complete, and an
interrupted run leaves the done-list naming every frame it finished (``--resume`` skips the
images it names, matched by path, not by output name);
the hidden temporary files a killed run may leave are removed by the next run into the folder.
At the end of a run, ``OUT/infer_failed.txt`` lists every frame that got no outputs, one
``<name>\\t<image>\\t<why>`` line each (an unreadable image, a failed request): done-list plus
failed list = every image (:func:`write_failed_list`; no such file when nothing failed).
Writing happens on worker threads behind a bounded queue: the request path only queues a frame,
and memory stays flat however many images there are.

Example:
    >>> output_names(["x/a.jpg", "x/a.png", "x/b.jpg"])
    {'x/a.jpg': 'a.jpg', 'x/a.png': 'a.png', 'x/b.jpg': 'b'}
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvlab.errors import CvlabError

if TYPE_CHECKING:  # the command line imports this module: it stays light
    import numpy as np

    from cvlab.detections import Detections

LABELS_DIR = "infer_labels"
IMAGES_DIR = "infer_images"
DONE_LIST = "infer_done.txt"
FAILED_LIST = "infer_failed.txt"
#: JPEG quality of the overlays by default: PIL's default, which the lab's client saves with.
OVERLAY_QUALITY = 75
#: what ``cvlab infer`` fits its overlays inside by default: the model input (960x540 for a
#: 1280x720 or 1920x1080 frame and PeopleNet): a fraction of a full-size overlay's encode
#: (``cvlab bench client``), the same labels; ``full`` keeps the image's size, as the lab's
#: client does (docs/tao_fidelity.md)
OVERLAY_SIZE = "model"


class OutputNameCollision(CvlabError, ValueError):
    """Two images would write the same output files."""


def is_case_insensitive(directory: str | os.PathLike) -> bool:
    """Whether file names in ``directory`` (an existing folder) ignore case (a probe file)."""
    fd, probe = tempfile.mkstemp(dir=directory, prefix=".cvlab-CaseProbe-")
    os.close(fd)
    try:
        return os.path.exists(os.path.join(directory, os.path.basename(probe).lower()))
    finally:
        os.unlink(probe)


def output_names(paths: Sequence[str], *, case_insensitive: bool = False) -> dict[str, str]:
    """``image path -> output name``: the stem, or the file name where stems collide.

    ``case_insensitive``: the output folder ignores case, so ``A.jpg`` and ``a.png`` collide.
    Raises :class:`OutputNameCollision` (before any request) when names still collide: the same
    file listed twice, or same-named files from different folders.

    >>> output_names(["a.jpg", "a.JPG", "a.png", "b.png"])
    {'a.jpg': 'a.jpg', 'a.JPG': 'a.JPG', 'a.png': 'a.png', 'b.png': 'b'}
    >>> output_names(["x/a.jpg", "y/a.jpg"])
    Traceback (most recent call last):
    ...
    cvlab.triton.outputs.OutputNameCollision: x/a.jpg and y/a.jpg would both write a.jpg.txt: \
rename one of them or run them separately
    """

    def key(name: str) -> str:
        return name.casefold() if case_insensitive else name

    stems = [Path(p).stem for p in paths]
    count = Counter(key(s) for s in stems)
    names = {}
    owner: dict[str, str] = {}
    for path, stem in zip(paths, stems, strict=True):
        if path in names:
            raise OutputNameCollision(f"{path} is listed twice: give each image once")
        name = Path(path).name if count[key(stem)] > 1 else stem
        other = owner.setdefault(key(name), path)
        if other != path:
            raise OutputNameCollision(
                f"{other} and {path} would both write {name}.txt: rename one of them or run "
                "them separately"
            )
        names[path] = name
    return names


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}


def list_line(*fields: str) -> str:
    """One line of the done-list or the failed list: ``fields`` tab-separated, each with its
    backslashes, tabs, newlines and carriage returns escaped (file names may hold them).

    >>> list_line("a\\tb", "x/a\\tb.jpg")
    'a\\\\tb\\tx/a\\\\tb.jpg\\n'
    >>> split_line(list_line("a\\tb", "x/a\\tb.jpg"))
    ['a\\tb', 'x/a\\tb.jpg']
    >>> split_line("old\\\\slash\\n")  # an unknown escape (an older cvlab's list) stays
    ['old\\\\slash']
    """
    return "\t".join("".join(_ESCAPES.get(c, c) for c in str(f)) for f in fields) + "\n"


def split_line(line: str) -> list[str]:
    """The fields of a line written by :func:`list_line`."""

    def unescape(match: re.Match) -> str:  # an unknown escape (a list of an older cvlab) stays
        return _UNESCAPES.get(match.group(1), match.group(0))

    return [re.sub(r"\\(.)", unescape, raw) for raw in line.rstrip("\n").split("\t")]


def read_done_list(output_path: str | os.PathLike) -> dict[str, str]:
    """``output name -> image`` of the frames a run into ``output_path`` finished, keeping only
    those whose label file (written last) is there."""
    out = Path(output_path)
    done_file = out / DONE_LIST
    if not done_file.is_file():
        return {}
    done = {}
    with open(done_file, encoding="utf-8", errors="replace", newline="") as handle:
        for line in handle:  # "\n" ends a line, nothing else (names may hold \x0c, \x1c...)
            if not line.endswith("\n"):
                continue  # the last line of a killed run, cut short
            name, image = [*split_line(line), ""][:2]
            if name and (out / LABELS_DIR / f"{name}.txt").is_file():
                done[name] = image
    return done


def is_done(image: str, name: str, done: dict[str, str]) -> bool:
    """Whether the done-list ``done`` (:func:`read_done_list`) names ``image`` under ``name``:
    the same output name AND the same image file (another folder's ``cam.jpg`` is not done)."""
    listed = done.get(name)
    return listed is not None and os.path.abspath(listed) == os.path.abspath(image)


def prepare_output_folder(output_path: str | os.PathLike, *, images: bool, resume: bool) -> None:
    """Make the output folders, remove the hidden temporary files a killed run left, and start
    an empty done-list unless ``resume`` (it is then only appended to, ``O_APPEND``: each line
    lands at the end, whichever process writes it)."""
    out = Path(output_path)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: the output path is a file, not a folder")
    folders = ((out / LABELS_DIR, ".txt"), (out / IMAGES_DIR, ".jpg") if images else None)
    for folder, suffix in filter(None, folders):
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f".*{suffix}"):  # a killed run's half-written files
            stale.unlink(missing_ok=True)
    if not resume:
        open(out / DONE_LIST, "w").close()  # noqa: SIM115


class FrameWriter:
    """Writes each frame's overlay and KITTI label as a unit, on worker threads.

    :meth:`submit` queues a frame and returns at once (it blocks only while ``queue_size``
    frames wait, which bounds memory); ``workers`` threads draw and encode the overlay
    (OpenCV releases the GIL), write it atomically, then the label atomically, then append the
    frame to the done-list. :meth:`close` writes what is queued and raises the first write
    error; after a write error, :meth:`submit` raises it too, so the run stops.

    Args:
        output_path: the run's folder (``infer_labels/``, ``infer_images/``, the done-list).
        config: the clustering config (box colours and line width).
        images: write overlays (``False``: labels only).
        overlay_max_size: fit overlays inside this ``(width, height)``; None: full size.
        overlay_quality: JPEG quality of the overlays (1-100).
        resume: keep the done-list of an earlier run and append to it (else it starts empty).
        clean: prepare the folder (:func:`prepare_output_folder`); ``False`` when the caller
            did and other processes write into it (:mod:`cvlab.triton.workers`).
    """

    def __init__(
        self,
        output_path: str | os.PathLike,
        config: Any,
        *,
        images: bool = True,
        overlay_max_size: tuple[int, int] | None = None,
        overlay_quality: int = OVERLAY_QUALITY,
        show_labels: bool = True,
        workers: int = 2,
        queue_size: int = 16,
        resume: bool = False,
        clean: bool = True,
    ) -> None:
        from cvlab.viz.overlay import colors_from_config

        if not 1 <= int(overlay_quality) <= 100:
            raise ValueError(f"overlay quality must be 1-100, got {overlay_quality}")
        out = Path(output_path)
        self.output_path = out
        self.labels_dir = out / LABELS_DIR
        self.images_dir = out / IMAGES_DIR if images else None
        self.done_path = out / DONE_LIST
        if clean:
            prepare_output_folder(out, images=images, resume=resume)
        self.colors = colors_from_config(config)
        self.linewidth = getattr(config, "linewidth", 4)
        self.overlay_max_size = overlay_max_size
        self.overlay_quality = int(overlay_quality)
        self.show_labels = show_labels
        self.written = 0
        #: output names of the frames written this run
        self.done_names: set[str] = set()
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._done = open(self.done_path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_size)))
        self._threads = [
            threading.Thread(target=self._work, name=f"cvlab-writer-{i}", daemon=True)
            for i in range(max(1, int(workers)))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, detections: Detections, name: str, image: np.ndarray | None = None) -> None:
        """Queue one frame: its Detections, output name and decoded BGR frame (for the overlay,
        drawn on in place: the frame is handed over; without it the image file is read again)."""
        if self._error is not None:
            raise self._error
        self._queue.put((detections, name, image))

    def write(self, detections: Detections, name: str, image: np.ndarray | None = None) -> None:
        """Write one frame now, on the calling thread: overlay, then label, then done-list."""
        from cvlab.formats.kitti import write_kitti
        from cvlab.images import load_image
        from cvlab.viz.overlay import save_overlay

        if self.images_dir is not None and (image is not None or detections.image_path):
            bgr = image if image is not None else load_image(detections.image_path, bgr=True)
            save_overlay(
                self.images_dir / f"{name}.jpg",
                bgr,
                detections,
                colors=self.colors,
                linewidth=self.linewidth,
                show_labels=self.show_labels,
                quality=self.overlay_quality,
                bgr=True,
                max_size=self.overlay_max_size,
                in_place=image is not None,  # the decoded frame is handed over, never reused
            )
        write_kitti(self.labels_dir / f"{name}.txt", detections, with_confidence=True)
        line = list_line(name, detections.image_path or "")
        with self._lock:  # one write per line, flushed: the list is current after a kill
            self._done.write(line)
            self._done.flush()
            self.written += 1
            self.done_names.add(name)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:  # after an error, queued frames are dropped
                    self.write(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the submitting thread
                self._error = self._error or exc
            finally:
                self._queue.task_done()

    def close(self) -> None:
        """Write every queued frame, stop the threads, close the done-list; raise a write error."""
        if not self._threads:
            return
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        with contextlib.suppress(OSError):
            self._done.close()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def count_done(output_path: str | os.PathLike) -> int:
    """Lines of the done-list in ``output_path`` (0 when there is none)."""
    done = Path(output_path) / DONE_LIST
    if not done.is_file():
        return 0
    with open(done, encoding="utf-8") as handle:
        return sum(1 for _ in handle)


def write_failed_list(
    output_path: str | os.PathLike,
    failed: Sequence[tuple[str, str]],
    names: dict[str, str],
) -> Path | None:
    """Write ``OUT/infer_failed.txt``: one ``<name>\\t<image>\\t<why>`` line per ``(image, why)``
    in ``failed`` (``names``: image -> output name); remove a stale one when nothing failed.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> path = write_failed_list(out, [("x/b.jpg", "server went away")], {"x/b.jpg": "b"})
    >>> path.read_text()
    'b\\tx/b.jpg\\tserver went away\\n'
    >>> write_failed_list(out, [], {}), path.exists()
    (None, False)
    """
    from cvlab.fileio import atomic_write_text

    path = Path(output_path) / FAILED_LIST
    if not failed:
        path.unlink(missing_ok=True)
        return None
    lines = []
    for image, why in failed:
        reason = " ".join(str(why).split())  # one line, no tabs
        lines.append(list_line(names[image], image, reason))
    return atomic_write_text(path, "".join(lines))
