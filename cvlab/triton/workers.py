"""``cvlab infer --workers N``: N client processes share one image list, one done-list and one failed list.

One client process spends several ms of CPU per frame (reading, decoding, resizing,
clustering, writing: ``cvlab bench client``), so against a fast remote server (a GPU Triton)
one process cannot keep it busy; N processes on N cores can. This module is the parent: it
takes the output folder's lock, names every output and reads the done-list (``--resume``) once
for the whole run, prepares the folder, then deals the images left out to N worker processes
batch by batch (batch ``k`` to worker ``k mod N``). Each worker runs the one inference path
(:func:`cvlab.triton.pipeline.run_inference` with ``worker_of``: the run's output names) and
appends each finished frame to the shared done-list (one ``O_APPEND`` write per line). The
parent writes the failed list at the end, in input order, so the outputs are those of one
worker: the same labels and overlays byte for byte, the same done-list lines (in another
order) and the same failed list.

Ctrl-C (or SIGTERM/SIGHUP in ``cvlab infer``) reaches the parent only (the workers run in
their own session); the parent passes it on as SIGINT, each worker writes what it has queued,
unregisters and unlinks its shared-memory regions and exits; the parent then lists every frame
not done in the failed list and raises KeyboardInterrupt. A worker that dies of its parent's
death gets SIGINT too (``PR_SET_PDEATHSIG``). Every worker inherits the parent's lock on the
output folder (the same open file), so another ``cvlab infer`` into the folder is refused until
the parent and all its workers are gone, even after a SIGKILL of the parent.

Example:
    >>> summary = run_inference_workers("frames/", "peoplenet", "10.0.0.5:8000", workers=4,
    ...                                 output_path="out")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cvlab.errors import CvlabError

#: how long the workers get to stop after Ctrl-C before they are killed
STOP_WAIT_S = 60.0
#: the worker's command line: SIGINT is only noted until the worker has a handler for it
_WORKER_MAIN = (
    "import signal, sys; noted = []; "
    "signal.signal(signal.SIGINT, lambda *a: noted.append(1)); "
    "from cvlab.triton.workers import worker_main; sys.exit(worker_main(noted))"
)


def deal(paths: list[str], batch_size: int, workers: int) -> list[list[str]]:
    """Each worker's images: batch ``k`` of ``paths`` goes to worker ``k mod workers``.

    >>> deal(list("abcdefg"), 2, 2)
    [['a', 'b', 'e', 'f'], ['c', 'd', 'g']]
    """
    shares: list[list[str]] = [[] for _ in range(workers)]
    for k, start in enumerate(range(0, len(paths), batch_size)):
        shares[k % workers].extend(paths[start : start + batch_size])
    return shares


def run_inference_workers(
    images: Any, model: str, url: str = "127.0.0.1:8000", *, workers: int = 1, **kwargs: Any
):
    """:func:`~cvlab.triton.pipeline.run_inference` over ``workers`` processes (the same
    options; one worker: that function itself). Returns one merged
    :class:`~cvlab.triton.pipeline.InferSummary`, detections in input order."""
    from cvlab.fileio import lock_directory
    from cvlab.triton.outputs import (
        DONE_LIST,
        IMAGES_DIR,
        LABELS_DIR,
        is_case_insensitive,
        is_done,
        output_names,
        prepare_output_folder,
        read_done_list,
        write_failed_list,
    )
    from cvlab.triton.pipeline import InferSummary, check_class_names, collect_images, run_inference

    workers = int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        return run_inference(images, model, url, **kwargs)
    output_path = kwargs.get("output_path")
    if output_path is None:
        raise ValueError("several workers need an output folder (output_path)")
    if kwargs.get("keep_outputs"):
        raise ValueError("keep_outputs needs one worker (the outputs stay in that process)")
    if kwargs.get("class_list") is not None:
        kwargs["class_list"] = check_class_names(kwargs["class_list"])
    out = Path(output_path)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: the output path is a file, not a folder")
    paths = collect_images(images)
    start = time.perf_counter()
    created = not out.exists()
    lock: list[int] = []  # the workers inherit the lock: held until the last one is gone
    with lock_directory(out, "cvlab infer", handles=lock):
        names = output_names(paths, case_insensitive=is_case_insensitive(out))
        resume = bool(kwargs.get("resume"))
        done = read_done_list(out) if resume else {}
        todo = [p for p in paths if not is_done(p, names[p], done)]
        _probe(model, url, kwargs)  # a server that cannot answer: refused before any file
        prepare_output_folder(out, images=kwargs.get("write_images", True), resume=resume)
        shares = [s for s in deal(todo, int(kwargs.get("batch_size", 16)), workers) if s]
        job = {**kwargs, "progress": False}
        try:
            results = _run_workers(
                shares, model, url, job, names, bool(kwargs.get("progress")), lock
            )
        except KeyboardInterrupt:
            listed = read_done_list(out)
            left = [(p, "interrupted") for p in todo if not is_done(p, names[p], listed)]
            with contextlib.suppress(OSError):
                write_failed_list(out, left, names)
            raise
        except BaseException:
            if created:  # nothing written: the folder goes again, as with one worker
                _remove_unused(out)
            raise
        order = {p: i for i, p in enumerate(paths)}
        summary = InferSummary(
            detections=[], labels_dir=out / LABELS_DIR, done_list=out / DONE_LIST
        )
        if kwargs.get("write_images", True):
            summary.images_dir = out / IMAGES_DIR
        for part in results:
            summary.detections.extend(part.detections)
            summary.errors.extend(part.errors)
            summary.skipped.extend(part.skipped)
            summary.written += part.written
            summary.input_size = part.input_size
        summary.detections.sort(key=lambda d: order[d.image_path])
        summary.skipped.sort(key=lambda item: order[item[0]])
        summary.errors.sort(key=lambda e: min((order[p] for p in e.paths), default=0))
        summary.resumed = len(paths) - len(todo)
        summary.renamed = {p: n for p, n in names.items() if n != Path(p).stem}
        summary.failed_list = write_failed_list(out, summary.without_outputs, names)
    summary.seconds = time.perf_counter() - start
    return summary


def _probe(model: str, url: str, kwargs: dict) -> None:
    """Connect once as the workers will and read the model (a one-line error when the server
    or the model is not there), before anything is written."""
    from cvlab.triton.client import TritonDetectNetClient

    options = ("protocol", "timeout_s", "concurrency", "ssl")
    given = {k: kwargs[k] for k in options if k in kwargs}
    version = kwargs.get("version", "")
    with TritonDetectNetClient(url, model, version, shared_memory="none", **given):
        pass


def _remove_unused(out: Path) -> None:
    """Remove the empty output folders and the empty done-list of a run that wrote nothing."""
    from cvlab.triton.outputs import DONE_LIST, IMAGES_DIR, LABELS_DIR

    done = out / DONE_LIST
    with contextlib.suppress(OSError):
        if done.stat().st_size == 0:
            done.unlink()
    for sub in (LABELS_DIR, IMAGES_DIR):
        with contextlib.suppress(OSError):
            (out / sub).rmdir()


def _run_workers(
    shares: list[list[str]],
    model: str,
    url: str,
    job: dict,
    names: dict,
    progress: bool,
    lock: list[int] | tuple[int, ...] = (),
) -> list:
    """Start one worker per share, wait for all, return their summaries; on Ctrl-C or a
    worker's error, stop the others first. ``lock``: the output folder's lock descriptor,
    inherited by every worker, so the folder stays locked while any worker runs (even after
    the parent was killed)."""
    procs: list[subprocess.Popen] = []
    try:
        for _ in shares:  # all started first: they import side by side
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _WORKER_MAIN],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    start_new_session=True,  # Ctrl-C reaches the parent, which passes it on
                    pass_fds=tuple(lock),
                )
            )
        for proc, share in zip(procs, shares, strict=True):
            proc.stdin.write(pickle.dumps((share, model, url, job, {p: names[p] for p in share})))
            proc.stdin.close()
        return _wait(procs, job.get("output_path"), progress, sum(map(len, shares)))
    except BaseException:
        _stop(procs)
        raise


def _wait(procs: list[subprocess.Popen], output_path, progress: bool, total: int) -> list:
    """Each worker's summary, in order; the first worker error raised (the others stopped)."""
    import threading

    answers: list[bytes | None] = [None] * len(procs)

    def read(i: int) -> None:  # the pipe drained as the worker writes: it never blocks
        answers[i] = procs[i].stdout.read()

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(len(procs))]
    for reader in readers:
        reader.start()
    bar = _DoneBar(output_path, total) if progress else None
    try:
        while True:
            failed = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if failed or all(p.poll() is not None for p in procs):
                break
            if bar is not None:
                bar.update()
            time.sleep(0.1)
    finally:
        if bar is not None:
            bar.close()
    if failed:
        first = failed[0]
        readers[first].join()
        _stop(procs)
        outcome = _load(answers[first])
        if isinstance(outcome, BaseException):
            raise outcome
        code = procs[first].returncode
        raise CvlabError(f"an inference worker (pid {procs[first].pid}) exited with status {code}")
    for reader in readers:
        reader.join()
    results = [_load(answer) for answer in answers]
    if any(r is None for r in results):
        raise CvlabError("an inference worker ended without its summary")
    return results


def _load(answer: bytes | None):
    if not answer:
        return None
    try:
        return pickle.loads(answer)
    except Exception:  # noqa: BLE001 - a worker cut short
        return None


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGINT to every worker still running (each cleans up as after Ctrl-C); SIGKILL to those
    still running after :data:`STOP_WAIT_S`."""
    for proc in procs:
        if proc.stdin is not None:  # a worker still reading its job gets EOF, not a hang
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_WAIT_S
    for proc in procs:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            except KeyboardInterrupt:  # a second Ctrl-C: keep waiting, the workers clean up
                continue
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            with contextlib.suppress(OSError):
                proc.stdout.close()


class _DoneBar:
    """A progress bar over the shared done-list: its new lines counted as they come."""

    def __init__(self, output_path, total: int) -> None:
        from tqdm.auto import tqdm

        from cvlab.triton.outputs import DONE_LIST

        self.path = Path(output_path) / DONE_LIST
        self.offset = self.path.stat().st_size if self.path.is_file() else 0
        self.bar = tqdm(total=total, desc="infer", unit="img")

    def update(self) -> None:
        with contextlib.suppress(OSError), open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
            self.offset += len(data)
            self.bar.update(data.count(b"\n"))

    def close(self) -> None:
        self.update()
        self.bar.close()


def worker_main(noted: list) -> int:
    """One worker: its job (pickled on stdin) through ``run_inference``; its summary (or its
    error) pickled on stdout. ``noted``: SIGINTs received before the handler was set."""
    _die_with_parent()
    job = sys.stdin.buffer.read()
    answer_to = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may reach the answer pipe
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if noted:
            raise KeyboardInterrupt
        from cvlab.triton.client import sigterm_as_interrupt
        from cvlab.triton.pipeline import run_inference

        share, model, url, kwargs, names = pickle.loads(job)
        with sigterm_as_interrupt():
            summary = run_inference(share, model, url, worker_of=names, **kwargs)
        summary.outputs = None
        answer: Any = summary
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # noqa: BLE001 - handed to the parent
        answer = _picklable(exc)
    answer_to.write(pickle.dumps(answer))
    answer_to.flush()
    return 0 if not isinstance(answer, BaseException) else 2


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a :class:`CvlabError` (a user error) or a
    RuntimeError with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        kind = CvlabError if isinstance(exc, CvlabError) else RuntimeError
        return kind(str(exc))


def _die_with_parent() -> None:
    """SIGINT to this process when its parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the call
        os.kill(os.getpid(), signal.SIGINT)
