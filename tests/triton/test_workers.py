"""``cvlab infer --workers N`` against a real local Triton: the same outputs as one worker, a
resume across workers, and a Ctrl-C of a 2-worker run that leaves no process, shared-memory
region or temporary file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.triton import (  # noqa: F401
    MODEL,
    demo_server,
    infer_argv,
    wait_until,
    write_test_images,
)

from cvlab.cli import main
from cvlab.fileio import pid_alive
from cvlab.triton.outputs import DONE_LIST, FAILED_LIST, read_done_list, split_line
from cvlab.triton.shared_memory import SHM_DIR, region_owner
from cvlab.triton.workers import deal

pytestmark = pytest.mark.server


def _infer(images, url: str, out: Path, *extra: str) -> list[str]:
    return infer_argv(images, url, out, *extra, batch=2)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc: children, their children ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _regions_of(pids: set[int]) -> list[str]:
    return [name for name in os.listdir(SHM_DIR) if region_owner(name) in pids]


def _hidden(out: Path) -> list[str]:
    """Hidden files left in the output folders."""
    found = []
    for folder in (out, out / "infer_labels", out / "infer_images"):
        if folder.is_dir():
            found += [p.name for p in folder.iterdir() if p.name.startswith(".")]
    return found


def test_deal_gives_whole_batches_in_turn():
    assert deal([f"{i}" for i in range(7)], 3, 2) == [["0", "1", "2", "6"], ["3", "4", "5"]]
    assert deal(["a"], 4, 3) == [["a"], [], []]


@pytest.mark.filterwarnings("ignore")
def test_two_workers_write_what_one_writes(demo_server, tmp_path, capsys):  # noqa: F811
    """Labels and overlays byte for byte, the same done-list lines and the same failed list
    (an unreadable file among the frames), the same exit status and counts."""
    folder = tmp_path / "images"
    write_test_images(folder, 15)
    (folder / "broken.jpg").write_text("not an image")
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        status = main(_infer(folder, demo_server.http_url, out, "--workers", str(workers)))
        runs[workers] = (status, out, capsys.readouterr())
    (status1, out1, _), (status2, out2, said2) = runs[1], runs[2]
    assert status1 == status2 == 3  # one unreadable image skipped
    assert "15 image(s)" in said2.out and "15 frame(s) done" in said2.out
    assert "broken.jpg: cannot decode image" in said2.err
    for sub in ("infer_labels", "infer_images"):
        assert len(_files(out1 / sub)) == 15
        assert _files(out1 / sub) == _files(out2 / sub)
    assert sorted(_lines(out1 / DONE_LIST)) == sorted(_lines(out2 / DONE_LIST))
    assert (out1 / FAILED_LIST).read_bytes() == (out2 / FAILED_LIST).read_bytes()
    assert not _hidden(out2)


def _noise_frames(folder: Path, count: int) -> None:
    """Noise JPEGs: slow to encode as overlays, so a run is still going when signalled."""
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(count):
        cv2.imwrite(str(folder / f"n_{i:02d}.jpg"), rng.integers(0, 255, (540, 960, 3), np.uint8))


def _interrupted_run(folder: Path, out: Path, url: str, sig=signal.SIGINT):
    """A 2-worker `cvlab infer` child signalled once both workers run and a frame is done:
    ``(child, stderr, worker pids and their descendants)``."""
    argv = [
        *_infer(folder, url, out), "--concurrency", "1", "--writers", "1",
        "--overlay-quality", "100", "--workers", "2",
    ]  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-m", "cvlab", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    done = out / DONE_LIST
    family: set[int] = set()

    def started() -> bool:
        family.update(_descendants(child.pid))
        return done.is_file() and len(_lines(done)) >= 2 or child.poll() is not None

    assert wait_until(started, 240)
    assert child.poll() is None, child.communicate()
    family.update(_descendants(child.pid))
    assert len(family) >= 2  # the two workers (and their helpers)
    child.send_signal(sig)  # as Ctrl-C: the terminal signals the command, the foreground
    _, stderr = child.communicate(timeout=180)
    return child, stderr, family


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_of_two_workers_leaves_nothing_behind(demo_server, tmp_path, sig):  # noqa: F811
    """Exit 130; no worker (or helper of one) alive, no shared-memory region of theirs, no
    temporary file; the frames done are whole and listed, the others in the failed list."""
    folder, out = tmp_path / "images", tmp_path / "out"
    count = 40
    _noise_frames(folder, count)
    child, stderr, family = _interrupted_run(folder, out, demo_server.http_url, sig)
    assert child.returncode == 130, stderr
    assert wait_until(lambda: not [p for p in family if pid_alive(p)], 10), family
    assert not _regions_of(family | {child.pid})
    assert not _hidden(out)
    listed = read_done_list(out)
    assert 0 < len(listed) < count
    failed = [split_line(line) for line in _lines(out / FAILED_LIST)]
    assert {name for name, _, _ in failed} | set(listed) == {f"n_{i:02d}" for i in range(count)}
    assert all(why == "interrupted" for _, _, why in failed)
    labels = {p.stem for p in (out / "infer_labels").glob("*.txt")}
    overlays = {p.stem for p in (out / "infer_images").glob("*.jpg")}
    assert set(listed) <= labels <= overlays
    assert f"{len(_lines(out / DONE_LIST))} frame(s) done" in stderr


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_a_resume_across_workers_finishes_what_one_worker_writes(demo_server, tmp_path, capsys):  # noqa: F811
    """A 2-worker run interrupted, then resumed by 3 workers: nothing done twice, and the labels
    and overlays are those of one uninterrupted worker."""
    folder, out, reference = tmp_path / "images", tmp_path / "out", tmp_path / "reference"
    count = 40
    _noise_frames(folder, count)
    child, stderr, _ = _interrupted_run(folder, out, demo_server.http_url)
    assert child.returncode == 130, stderr
    listed = read_done_list(out)
    before = {n: (out / "infer_labels" / f"{n}.txt").stat().st_mtime_ns for n in listed}
    argv = [*_infer(folder, demo_server.http_url, out), "--overlay-quality", "100"]
    assert main([*argv, "--resume", "--workers", "3"]) == 0
    said = capsys.readouterr().out
    assert f"{count - len(listed)} image(s)" in said and f"(+{len(listed)} done earlier)" in said
    lines = _lines(out / DONE_LIST)
    assert len(lines) == len(set(lines)) == count
    assert not (out / FAILED_LIST).exists()
    for name, mtime in before.items():  # not redone
        assert (out / "infer_labels" / f"{name}.txt").stat().st_mtime_ns == mtime
    assert main([*argv, "--resume", "--workers", "2"]) == 0  # nothing left to do
    said = capsys.readouterr().out
    assert "0 image(s)" in said and f"(+{count} done earlier)" in said
    assert f"labels in {out / 'infer_labels'}" in said
    reference_argv = _infer(folder, demo_server.http_url, reference)
    assert main([*reference_argv, "--overlay-quality", "100"]) == 0
    for sub in ("infer_labels", "infer_images"):
        assert _files(out / sub) == _files(reference / sub)
    assert not _hidden(out)


def test_a_worker_error_is_one_line_and_stops_the_others(demo_server, tmp_path, capsys):  # noqa: F811
    """An unreadable image with --on-error raise, met by one worker: exit 2 with the image named
    in one line, no traceback, and the other worker stopped."""
    folder = tmp_path / "images"
    write_test_images(folder, 12)
    (folder / "frame_005.jpg").write_text("not an image")
    argv = _infer(folder, demo_server.http_url, tmp_path / "out", "--workers", "2")
    assert main([*argv, "--on-error", "raise"]) == 2
    err = capsys.readouterr().err
    assert "frame_005.jpg" in err and "cannot decode image" in err
    assert "Traceback" not in err
    workers = [p for p in _descendants(os.getpid()) if "worker_main" in _cmdline(p)]
    assert not workers


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def test_no_server_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    """Nothing listens: the same one-line error as one worker, exit 2, and the output folder the
    run would have created is not there."""
    from cvlab.triton.server import free_port

    folder = tmp_path / "images"
    write_test_images(folder, 4)
    out = tmp_path / "out"
    argv = _infer(folder, f"127.0.0.1:{free_port()}", out, "--workers", "2", "--timeout", "5")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.slow
def test_workers_of_a_killed_parent_stop_and_clean_up(demo_server, tmp_path):  # noqa: F811
    """SIGKILL of the parent: its workers get SIGINT (PR_SET_PDEATHSIG), finish the frames they
    hold and leave no process, shared-memory region or temporary file; --resume finishes."""
    folder, out = tmp_path / "images", tmp_path / "out"
    count = 40
    _noise_frames(folder, count)
    child, _, family = _interrupted_run(folder, out, demo_server.http_url, signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL
    assert wait_until(lambda: not [p for p in family if pid_alive(p)], 60), family
    assert not _regions_of(family | {child.pid})
    assert not _hidden(out)
    listed = read_done_list(out)
    assert 0 < len(listed) < count
    argv = [*_infer(folder, demo_server.http_url, out), "--resume", "--workers", "2"]
    assert main(argv) == 0
    assert len(read_done_list(out)) == count


@pytest.mark.slow
def test_the_workers_of_a_killed_parent_hold_the_folder_until_they_are_gone(
    demo_server,  # noqa: F811
    tmp_path,
    capsys,
):
    """Issue 23: the parent SIGKILLed while its workers still run (held stopped here, so they
    cannot finish first): another `cvlab infer` into the folder is refused in one line, exit 2,
    writing nothing; once the workers have finished their frames and gone, --resume runs."""
    folder, out = tmp_path / "images", tmp_path / "out"
    count = 40
    _noise_frames(folder, count)
    argv = [
        *_infer(folder, demo_server.http_url, out), "--concurrency", "1", "--writers", "1",
        "--overlay-quality", "100", "--workers", "2",
    ]  # fmt: skip
    log = tmp_path / "parent.log"  # a file, not a pipe: the stopped workers inherit it
    with open(log, "wb") as handle:
        child = subprocess.Popen(
            [sys.executable, "-m", "cvlab", *argv], stdout=handle, stderr=handle
        )
    done = out / DONE_LIST
    assert wait_until(
        lambda: done.is_file() and len(_lines(done)) >= 2 or child.poll() is not None, 240
    )
    assert child.poll() is None, log.read_text()
    workers = {p for p in _descendants(child.pid) if "worker_main" in _cmdline(p)}
    assert len(workers) == 2
    try:
        for pid in workers:  # stopped: the SIGINT of their parent's death waits for SIGCONT
            os.kill(pid, signal.SIGSTOP)
        child.kill()
        child.wait(timeout=60)
        assert all(pid_alive(p) for p in workers)
        before = _lines(done)
        second = [*_infer(folder, demo_server.http_url, out), "--resume"]
        assert main(second) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "in use by another cvlab infer" in err[0], err
        assert _lines(done) == before
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    assert wait_until(lambda: not [p for p in workers if pid_alive(p)], 120), workers
    assert not _regions_of(workers | {child.pid})
    assert main([*argv, "--resume"]) == 0
    assert len(read_done_list(out)) == count
