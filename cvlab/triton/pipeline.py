"""THE inference path: image files -> Triton -> postprocessing -> Detections -> labels/overlays.

``cvlab infer``, the notebooks (:mod:`cvlab.lab`) and the deploy smoke test all run this one
path. :class:`~cvlab.triton.client.TritonDetectNetClient` is the transport (tensors in, raw
outputs out); here the raw outputs are clustered by a
:class:`~cvlab.inference.postprocess.DetectNetPostprocessor` into one
:class:`~cvlab.detections.Detections` per frame, and each frame's outputs are written as a unit
(:class:`~cvlab.triton.outputs.FrameWriter`), mirroring the tao-toolkit-triton-apps client
(``tao_client.py -m MODEL -x 1 -b 16 --mode DetectNet_v2 ...``): ``OUT/infer_labels/<stem>.txt``
(16-field KITTI lines; the last field is the cluster's confidence, the summed coverage of its
cells, so above 1 is normal) and ``OUT/infer_images/<stem>.jpg`` (boxes in the clustering
config's colours); file names are :func:`~cvlab.triton.outputs.output_names`.

Each frame is decoded once: the reading threads keep the decoded frame (at a reduced JPEG
scale when the overlay is smaller than the image) and hand it to the writer with its
Detections, so the overlay never reads the image again. Overlays are drawn, encoded and written
on writer threads behind a bounded queue, off the request path. Unreadable images are skipped
and listed with their reason (``unreadable="skip"``) or stop the run (``"raise"``).

Example:
    >>> summary = run_inference("images/", model="peoplenet", url="127.0.0.1:8000",
    ...                         output_path="out")  # doctest: +SKIP
    >>> summary.to_pandas().groupby("class").size()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.cli import EXIT_FAILED_REQUESTS, EXIT_OK, EXIT_SKIPPED_IMAGES
from cvlab.detections import Detections
from cvlab.detectnet import PEOPLENET_CLASSES
from cvlab.errors import ConfigError
from cvlab.fileio import lock_directory
from cvlab.triton.client import RequestError, TritonClientError, TritonDetectNetClient

SUPPORTED_MODES = ("DetectNet_v2",)
#: What to do with an image that cannot be read: leave it out and list it, or stop the run.
UNREADABLE = ("skip", "raise")
#: JPEG decoding floor for a full-size overlay: never decode at a reduced scale.
_FULL_DECODE = (1 << 30, 1 << 30)


class InferenceFailedError(TritonClientError):
    """Some requests failed; ``results`` holds the Detections of the frames that succeeded."""

    def __init__(self, errors: list[RequestError], results: list[Detections]):
        self.errors = errors
        self.results = results
        lines = "\n  ".join(str(e) for e in errors[:10])
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        super().__init__(
            f"{len(errors)} request(s) failed, {len(results)} frame(s) succeeded:\n  {lines}{more}"
        )


@dataclass
class Frame:
    """One answered image: its Detections and, when asked for, its raw output grids and its
    decoded frame (BGR uint8, only handed to ``on_result``, never kept)."""

    detections: Detections
    outputs: dict[str, np.ndarray] | None = None
    image: np.ndarray | None = None


@dataclass
class InferSummary:
    """What :func:`run_inference` did."""

    detections: list[Detections]
    errors: list[RequestError] = field(default_factory=list)
    labels_dir: Path | None = None
    images_dir: Path | None = None
    #: per image, the raw outputs (``keep_outputs=True``): the threshold tuner re-clusters them
    outputs: list[dict[str, np.ndarray]] | None = None
    input_size: tuple[int, int] | None = None
    #: ``(image, reason)`` of every unreadable image left out, in input order
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: the done-list (one ``<name>\t<image>`` line per finished frame)
    done_list: Path | None = None
    #: the frames without outputs (``<name>\t<image>\t<why>``); None when none failed
    failed_list: Path | None = None
    #: images written this run (label + overlay), and images an earlier run had done (resume)
    written: int = 0
    resumed: int = 0
    #: output name of each image whose stem collides with another's (its suffix kept)
    renamed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        """Answered images per second of wall time (reading to the last file written)."""
        return len(self.detections) / self.seconds if self.seconds > 0 else 0.0

    @property
    def without_outputs(self) -> list[tuple[str, str]]:
        """``(image, why)`` of every frame that got no outputs: unreadable images, then the
        frames of failed requests."""
        return [*self.skipped, *((p, e.message) for e in self.errors for p in e.paths)]

    @property
    def exit_status(self) -> int:
        """0: every image done; 1: some requests failed; 3: unreadable images were skipped."""
        if self.errors:
            return EXIT_FAILED_REQUESTS
        return EXIT_SKIPPED_IMAGES if self.skipped else EXIT_OK

    def to_pandas(self):
        """One row per box over all images (pandas DataFrame)."""
        import pandas as pd

        frames = [d.to_pandas() for d in self.detections]
        if not frames:
            return pd.DataFrame(columns=["image", "class", "confidence", "x1", "y1", "x2", "y2"])
        return pd.concat(frames, ignore_index=True)


def check_class_names(names: Sequence[str], option: str = "--class_list") -> tuple[str, ...]:
    """Class names as given, refused (:class:`~cvlab.errors.ConfigError`, one line) when one is
    empty, repeated or not KITTI-safe (lower case, no spaces:
    :func:`cvlab.formats.kitti.kitti_class_name` leaves it unchanged).

    >>> check_class_names("person,bag,face".split(","))
    ('person', 'bag', 'face')
    >>> check_class_names("person,,face".split(","))
    Traceback (most recent call last):
    ...
    cvlab.errors.ConfigError: --class_list: class 2 of 'person,,face' is empty
    >>> check_class_names(["Other Vehicle"])
    Traceback (most recent call last):
    ...
    cvlab.errors.ConfigError: --class_list: 'Other Vehicle' is not a KITTI-safe class name \
(lower case, no spaces): write 'other_vehicle'
    """
    from cvlab.formats.kitti import kitti_class_name

    names = tuple(str(n) for n in names)
    given = ",".join(names)
    if not names:
        raise ConfigError("no class names given", field=option)
    for i, name in enumerate(names, 1):
        if not name.strip():
            raise ConfigError(f"class {i} of {given!r} is empty", field=option)
        safe = kitti_class_name(name)
        if safe != name:
            raise ConfigError(
                f"{name!r} is not a KITTI-safe class name (lower case, no spaces): write {safe!r}",
                field=option,
            )
        if names.index(name) != i - 1:
            raise ConfigError(f"class {name!r} is given twice in {given!r}", field=option)
    return names


def parse_class_list(text: str, option: str = "--class_list") -> tuple[str, ...]:
    """``"person,bag,face"`` -> ``("person", "bag", "face")``, checked by
    :func:`check_class_names` (blanks around commas are dropped).

    >>> parse_class_list("person, bag ,face")
    ('person', 'bag', 'face')
    """
    return check_class_names([name.strip() for name in str(text).split(",")], option)


def collect_images(images: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """A directory (its jpg/png files, sorted), one file, or a list of files."""
    from cvlab.fileio import list_images

    if isinstance(images, str | os.PathLike):
        path = Path(images)
        if path.is_dir():  # a broken link is listed: its reader says so (a failed frame)
            found = [str(p) for p in list_images(path, broken_links=True)]
            if not found:
                raise FileNotFoundError(f"{path}: no .jpg/.jpeg/.png images")
            return found
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file or directory")
        return [str(path)]
    return [str(p) for p in images]


def default_postprocessor(
    model_size: tuple[int, int], num_classes: int, class_names: Sequence[str] | None = None
):
    """A DetectNetPostprocessor with default clustering for ``class_names`` (by default
    PeopleNet's classes for a 3-class model, ``person`` for a 1-class model such as the lab's
    IR model, ``class_<i>`` otherwise)."""
    from cvlab.inference.clustering_config import default_config
    from cvlab.inference.postprocess import DetectNetPostprocessor

    if class_names is None:
        defaults = {3: PEOPLENET_CLASSES, 1: ("person",)}
        class_names = defaults.get(num_classes, tuple(f"class_{i}" for i in range(num_classes)))
    return DetectNetPostprocessor(default_config(class_names), class_names, model_size=model_size)


def make_postprocessor(
    model_size: tuple[int, int],
    postprocessing_config: Any = None,
    class_list: Sequence[str] | None = None,
):
    """``(DetectNetPostprocessor, PostprocessingConfig)`` from a clustering prototxt path, a
    loaded :class:`~cvlab.inference.clustering_config.PostprocessingConfig`, or defaults for
    ``class_list``."""
    from cvlab.inference.clustering_config import (
        PostprocessingConfig,
        default_config,
        load_clustering_config,
    )
    from cvlab.inference.postprocess import DetectNetPostprocessor

    if isinstance(postprocessing_config, PostprocessingConfig):
        config = postprocessing_config
        if class_list:
            config = config.for_classes(tuple(class_list))
        names = config.class_names
    elif postprocessing_config:
        config = load_clustering_config(
            postprocessing_config, class_names=list(class_list) if class_list else None
        )
        names = tuple(class_list) if class_list else config.class_names
    else:
        names = tuple(class_list) if class_list else PEOPLENET_CLASSES
        config = default_config(names)
    return DetectNetPostprocessor(config, names, model_size=model_size), config


@contextlib.contextmanager
def opencv_single_threaded() -> Iterator[None]:
    """Run OpenCV single-threaded inside the block, then restore its thread count.

    The pipeline already works on several frames at once (reading, postprocessing and writer
    threads); OpenCV's own worker threads on top of that only compete with the server for the
    cores (``cvlab bench triton --end-to-end``).

    >>> import cv2
    >>> before = cv2.getNumThreads()
    >>> with opencv_single_threaded():
    ...     cv2.getNumThreads()
    1
    >>> cv2.getNumThreads() == before
    True
    """
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def infer_frames(
    client: TritonDetectNetClient,
    paths: Sequence[str | os.PathLike],
    postprocessor=None,
    batch_size: int | None = None,
    *,
    async_mode: bool = True,
    progress: bool = True,
    on_error: str = "raise",
    on_result: Callable[[Frame], None] | None = None,
    keep_outputs: bool = False,
    keep_images: bool = False,
    decode_size: tuple[int, int] | None = None,
    frame_size: tuple[int, int] | None = None,
    unreadable: str = "skip",
    on_skip: Callable[[str, str], None] | None = None,
) -> list[Frame]:
    """Every image through ``client`` and ``postprocessor``: one :class:`Frame` per answered
    image, in input order.

    ``on_result`` gets each :class:`Frame` as soon as its batch is answered and clustered (to
    write outputs while later batches are in flight), on the postprocessing thread; with
    ``keep_images`` its ``image`` is the frame the reading thread decoded (BGR;
    ``decode_size``: the smallest size a JPEG may be decoded at, default the model input;
    ``frame_size``: fitted inside this size as soon as decoded, the overlay's frame), handed
    over once and not kept. Failed requests:
    ``on_error="raise"`` raises :class:`InferenceFailedError` (holding the successful
    Detections) after every request has finished; ``"collect"`` returns the successful frames
    (the failures stay in ``client.errors``). Unreadable images: ``unreadable="skip"`` leaves
    them out and calls ``on_skip(path, reason)`` (from a reading thread; without ``on_skip``,
    a warning lists them); ``"raise"`` stops at the first with
    :class:`~cvlab.images.UnreadableImageError`.
    """
    from cvlab.inference.preprocess import preprocess_images

    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', got {on_error!r}")
    if unreadable not in UNREADABLE:
        raise ValueError(f"unreadable must be one of {', '.join(UNREADABLE)}, got {unreadable!r}")
    post = postprocessor or default_postprocessor(client.input_size, client.num_classes)
    answered: dict[int, list[Frame]] = {}
    decoded: dict[int, list[np.ndarray]] = {}  # batch index -> frames, until it is answered

    def load(index: int, chunk: list[str], out: np.ndarray | None):
        batch = preprocess_images(
            chunk,
            client.input_size,
            unreadable,
            out=out,
            keep_frames=keep_images,
            decode_size=decode_size,
            frame_size=frame_size,
            warn=on_skip is None,
        )
        if on_skip is not None:
            for path, reason in zip(batch.skipped, batch.reasons, strict=True):
                on_skip(path, reason)
        if batch.frames:
            for failed in list(client.errors):  # never answered: drop their frames
                decoded.pop(int(failed.request_id), None)
            decoded[index] = batch.frames
        return batch

    # clustering and ``on_result`` run on one postprocessing thread, so the thread that sends
    # requests (and, over HTTP, runs tritonclient's event loop) goes straight back to the
    # network; the bounded queue keeps memory flat when postprocessing falls behind
    handoff: queue.Queue = queue.Queue(maxsize=max(2, client.concurrency))
    failure: list[BaseException] = []

    def postprocess() -> None:
        while (item := handoff.get()) is not None:
            if failure:
                continue  # after an error, drain without work
            index, names, sizes, outputs, images = item
            try:
                dets = post.batch(outputs, sizes, names)
                answered[index] = [
                    Frame(d, {k: v[i] for k, v in outputs.items()} if keep_outputs else None)
                    for i, d in enumerate(dets)
                ]
                if on_result is not None:
                    for i, frame in enumerate(answered[index]):
                        image = images[i] if images is not None else None
                        on_result(Frame(frame.detections, frame.outputs, image))
            except BaseException as exc:  # noqa: BLE001 - raised on the sending thread
                failure.append(exc)

    def on_outputs(index: int, names: list[str], sizes: list, outputs: dict) -> None:
        if failure:
            raise failure[0]
        handoff.put((index, names, sizes, outputs, decoded.pop(index, None)))

    worker = threading.Thread(target=postprocess, name="cvlab-postprocess", daemon=True)
    with opencv_single_threaded():
        worker.start()
        try:
            errors = client.stream_images(
                paths, on_outputs, batch_size, async_mode=async_mode, progress=progress, load=load
            )
        finally:
            handoff.put(None)
            worker.join()
            decoded.clear()
    if failure:
        raise failure[0]
    frames = [f for key in sorted(answered) for f in answered[key]]
    if errors and on_error == "raise":
        raise InferenceFailedError(list(errors), [f.detections for f in frames])
    return frames


def detect_images(
    client: TritonDetectNetClient,
    paths: Sequence[str | os.PathLike],
    postprocessor=None,
    batch_size: int | None = None,
    **kwargs: Any,
) -> list[Detections]:
    """Detections of every image (see :func:`infer_frames` for the options)."""
    return [f.detections for f in infer_frames(client, paths, postprocessor, batch_size, **kwargs)]


def run_inference(
    images: str | os.PathLike | Sequence[str | os.PathLike],
    model: str,
    url: str = "127.0.0.1:8000",
    *,
    version: str = "",
    batch_size: int = 16,
    mode: str = "DetectNet_v2",
    protocol: str = "http",
    async_mode: bool = True,
    output_path: str | os.PathLike | None = None,
    postprocessing_config: Any = None,
    class_list: Sequence[str] | None = None,
    ssl: Any = False,
    concurrency: int = 4,
    timeout_s: float = 30.0,
    progress: bool = True,
    shared_memory: str = "auto",
    on_error: str = "collect",
    keep_outputs: bool = False,
    clamp_batch: bool = False,
    unreadable: str = "skip",
    write_images: bool = True,
    overlay_size: tuple[int, int] | str | None = None,
    overlay_quality: int | None = None,
    writers: int = 2,
    resume: bool = False,
    worker_of: dict[str, str] | None = None,
) -> InferSummary:
    """Run the lab's client: infer every image, write labels/overlays when ``output_path`` is set.

    ``postprocessing_config``: a clustering prototxt path or a loaded config (defaults for
    ``class_list`` when None). Failed requests are reported in ``InferSummary.errors``
    (``on_error="collect"``) or raised; the other frames are still written.
    ``keep_outputs`` keeps each image's raw output grids (for re-clustering without another
    request). ``clamp_batch`` lowers ``batch_size`` to the model's ``max_batch_size`` instead of
    refusing it. ``shared_memory``: input/output tensor transport, see
    :class:`~cvlab.triton.client.TritonDetectNetClient` (``auto`` uses it for a local server).

    Outputs (see :mod:`cvlab.triton.outputs`): ``write_images=False`` writes labels only;
    ``overlay_size`` fits overlays inside a ``(width, height)`` (a large JPEG may then be
    decoded once at a reduced scale for both), or ``"model"``: inside the model input, from
    the full-size decode, so the labels are those of a full-size run byte for byte
    (``cvlab infer``'s default, :data:`~cvlab.triton.outputs.OVERLAY_SIZE`), or
    ``None``/``"full"``: the image's size (the default here); and
    ``overlay_quality`` is their JPEG quality (default 75, as the lab's client). Output names
    are checked before any request (stems that collide keep their suffix, names that still
    collide are refused). ``resume`` skips the images an earlier run into ``output_path``
    finished (its done-list; the same image file, not only the same output name) and appends to
    that list. One run at a time writes into ``output_path``: another holding it is
    :class:`~cvlab.fileio.DirectoryLocked`. Interrupted, it lists the frames not done in
    ``infer_failed.txt``. ``unreadable``: ``"skip"`` leaves
    unreadable images out and lists them in ``InferSummary.skipped`` (the exit status says so),
    ``"raise"`` stops at the first one.

    ``worker_of``: this call is one worker of a run shared by several processes
    (:mod:`cvlab.triton.workers`), given the output names of the whole run; the caller holds
    the folder's lock, has prepared the folder and the done-list (appended to here), and
    writes the failed list.
    """
    from cvlab.triton.outputs import (
        OVERLAY_QUALITY,
        FrameWriter,
        is_case_insensitive,
        is_done,
        output_names,
        read_done_list,
        write_failed_list,
    )

    if mode not in SUPPORTED_MODES:
        raise ValueError(
            f"--mode {mode!r} is not supported; supported: {', '.join(SUPPORTED_MODES)}"
        )
    if unreadable not in UNREADABLE:
        raise ValueError(f"unreadable must be one of {', '.join(UNREADABLE)}, got {unreadable!r}")
    if class_list is not None:
        class_list = check_class_names(class_list)
    paths = collect_images(images)
    names: dict[str, str] = {}
    done: dict[str, str] = {}
    held = contextlib.ExitStack()
    if worker_of is not None:
        names = worker_of
    elif output_path is not None:  # before any request: names that collide are refused here
        out = Path(output_path)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"{out}: the output path is a file, not a folder")
        # one run at a time per folder: two would truncate each other's done-list and delete
        # each other's temporary files
        held.enter_context(lock_directory(out, "cvlab infer"))
        try:
            names = output_names(paths, case_insensitive=is_case_insensitive(out))
            done = read_done_list(out) if resume else {}
        except BaseException:
            held.close()
            raise
    summary = InferSummary(detections=[])
    summary.renamed = {p: n for p, n in names.items() if n != Path(p).stem}
    if done:
        todo = [p for p in paths if not is_done(p, names[p], done)]
        summary.resumed = len(paths) - len(todo)
        paths = todo
    start = time.perf_counter()
    with (
        held,
        TritonDetectNetClient(
            url,
            model,
            version,
            protocol,
            timeout_s=timeout_s,
            concurrency=concurrency,
            ssl=ssl,
            shared_memory=shared_memory,
        ) as client,
    ):
        overlay_box = _overlay_box(overlay_size, client.input_size)
        # "model" overlays are made from the frame decoded at full size, as a full-size overlay
        # run decodes it, so the labels are those of such a run byte for byte (a smaller
        # given size may decode a large JPEG at 1/2-1/8 scale: the tensor then differs a bit)
        decode_box = None if overlay_size == "model" else overlay_box
        if client.max_batch_size > 0 and batch_size > client.max_batch_size:
            if not clamp_batch:
                raise ValueError(
                    f"-b {batch_size} exceeds max_batch_size {client.max_batch_size} of model "
                    f"{model!r} on {url}"
                )
            batch_size = client.max_batch_size
        post, config = make_postprocessor(client.input_size, postprocessing_config, class_list)
        if class_list:
            source = "--class_list"
        elif isinstance(postprocessing_config, str | os.PathLike):
            source = f"the clustering config {postprocessing_config}"
        else:
            source = "the clustering config"
        client.check_classes(post.class_names, source)  # before the first request
        summary.input_size = client.input_size
        writer = None
        if output_path is not None:
            writer = FrameWriter(
                output_path,
                config,
                images=write_images,
                overlay_max_size=overlay_box,
                overlay_quality=OVERLAY_QUALITY if overlay_quality is None else overlay_quality,
                workers=writers,
                queue_size=max(2 * batch_size, 8),
                resume=resume or worker_of is not None,
                clean=worker_of is None,
            )
            summary.labels_dir, summary.images_dir = writer.labels_dir, writer.images_dir
            summary.done_list = writer.done_path
        overlays = writer is not None and writer.images_dir is not None
        skipped: dict[str, str] = {}
        lock = threading.Lock()

        def on_skip(path: str, reason: str) -> None:
            with lock:
                skipped[path] = reason

        def on_result(frame: Frame) -> None:
            writer.submit(frame.detections, names[frame.detections.image_path], frame.image)

        with opencv_single_threaded():  # the writers too, until the last overlay is written
            try:
                frames = infer_frames(
                    client,
                    paths,
                    post,
                    batch_size,
                    async_mode=async_mode,
                    progress=progress,
                    on_error=on_error,
                    on_result=on_result if writer is not None else None,
                    keep_outputs=keep_outputs,
                    keep_images=overlays,
                    decode_size=_decode_floor(client.input_size, decode_box) if overlays else None,
                    frame_size=overlay_box,
                    unreadable=unreadable,
                    on_skip=on_skip,
                )
            except BaseException as exc:
                if writer is not None:  # the queued frames are written, even on Ctrl-C
                    with contextlib.suppress(Exception):  # the first error is the one to report
                        writer.close()
                    if isinstance(exc, KeyboardInterrupt) and worker_of is None:
                        # every frame not done, listed
                        left = [(p, skipped.get(p, "interrupted")) for p in paths]
                        left = [(p, w) for p, w in left if names[p] not in writer.done_names]
                        with contextlib.suppress(OSError):
                            write_failed_list(output_path, left, names)
                raise
            if writer is not None:
                writer.close()
        summary.detections = [f.detections for f in frames]
        if keep_outputs:
            summary.outputs = [f.outputs for f in frames]
        summary.errors = list(client.errors)
        summary.skipped = [(p, skipped[p]) for p in paths if p in skipped]
        summary.written = writer.written if writer is not None else 0
        if output_path is not None and worker_of is None:
            summary.failed_list = write_failed_list(output_path, summary.without_outputs, names)
    summary.seconds = time.perf_counter() - start
    return summary


def _overlay_box(
    overlay_size: tuple[int, int] | str | None, input_size: tuple[int, int]
) -> tuple[int, int] | None:
    """The ``(width, height)`` overlays fit inside (``None``: full size) for an ``overlay_size``
    of ``run_inference``.

    >>> _overlay_box("model", (960, 544)), _overlay_box("full", (960, 544))
    ((960, 544), None)
    """
    if overlay_size == "model":
        return (int(input_size[0]), int(input_size[1]))
    if overlay_size is None or overlay_size == "full":
        return None
    if isinstance(overlay_size, str):
        raise ValueError(
            f"overlay_size must be 'model', 'full' or (width, height), got {overlay_size!r}"
        )
    return (int(overlay_size[0]), int(overlay_size[1]))


def _decode_floor(input_size: tuple[int, int], overlay_size: tuple[int, int] | None):
    """The smallest size a JPEG may be decoded at so that one decode serves the model input and
    the overlay (full size unless ``overlay_size`` bounds it)."""
    if overlay_size is None:
        return _FULL_DECODE
    return max(input_size[0], overlay_size[0]), max(input_size[1], overlay_size[1])
