"""Faults injected into ``cvlab infer`` with a real local Triton: nothing leaked (issue 14).

``cvlab infer`` runs as a subprocess (``sys.executable -m cvlab infer``) over 200 real JPEG
files and is stopped with SIGINT, SIGTERM or SIGKILL, or its server is killed. After every
fault: the server holds no shared-memory region of the client (tritonclient's
``get_system_shared_memory_status``), ``/dev/shm`` holds none of its files, no process of it is
left, its temporary folder is empty, and every frame it wrote has both outputs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.triton import MODEL, wait_until, write_demo_repo

from cvlab.fileio import pid_alive
from cvlab.triton.client import TritonDetectNetClient
from cvlab.triton.server import TritonServer

pytestmark = pytest.mark.server
W, H = 320, 192
COUNT = 200


def write_images(directory: Path, count: int) -> Path:
    """``count`` real 320x192 JPEG files."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(14)
    for i in range(count):
        image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        cv2.rectangle(image, (40 + i % 100, 20), (120 + i % 100, 170), (255, 255, 255), -1)
        cv2.imwrite(str(directory / f"frame_{i:03d}.jpg"), image)
    return directory


def write_slow_repo(repo: Path, delay_s: float) -> Path:
    """The demo model, each execute() taking ``delay_s`` longer: requests stay in flight."""
    write_demo_repo(repo)
    model_py = repo / MODEL / "1" / "model.py"
    text = model_py.read_text().replace("import json\n", "import json\nimport time\n", 1)
    text = text.replace(
        "    def execute(self, requests):\n",
        f"    def execute(self, requests):\n        time.sleep({delay_s})\n",
        1,
    )
    model_py.write_text(text)
    return repo


def server_regions(server: TritonServer) -> list[str]:
    """The system shared-memory regions the server holds (tritonclient's status call)."""
    import tritonclient.http as http

    client = http.InferenceServerClient(server.http_url)
    try:
        return sorted(r["name"] for r in client.get_system_shared_memory_status())
    finally:
        client.close()


def regions_of(pid: int, names: list[str]) -> list[str]:
    return [n for n in names if n.startswith(f"cvlab_{pid}_")]


def shm_files(pid: int) -> list[str]:
    """``/dev/shm`` files of the client with ``pid``."""
    return sorted(p.name for p in Path("/dev/shm").glob(f"cvlab_{pid}_*"))


def descendants(pid: int) -> set[int]:
    """Live processes below ``pid`` (the resource tracker, workers), from /proc."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (proc / "stat").read_text()
                parents[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def check_outputs(out: Path, *, hidden_allowed: bool) -> int:
    """Every frame written has its label AND its overlay; returns how many labels."""
    labels = {p.stem for p in (out / "infer_labels").glob("[!.]*.txt")}  # not a temporary file
    overlays = {p.stem for p in (out / "infer_images").glob("[!.]*.jpg")}
    assert labels <= overlays, f"labels without overlay: {sorted(labels - overlays)}"
    done_list = out / "infer_done.txt"
    if done_list.exists():  # the pipeline's list of finished frames
        done = {line.split("\t")[0] for line in done_list.read_text().splitlines() if line}
        assert done <= labels & overlays, sorted(done - (labels & overlays))
    if not hidden_allowed:  # atomic writes leave no temporary file after a clean stop
        hidden = [p.name for d in out.iterdir() if d.is_dir() for p in d.glob(".*")]
        assert hidden == []
    return len(labels)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"), COUNT)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A demo server WITHOUT the background region sweep: what is released, the client
    released (the SIGKILL case calls the sweep itself)."""
    repo = write_demo_repo(tmp_path_factory.mktemp("repo"))
    with TritonServer(repo, startup_timeout=90, shm_sweep_interval=None) as srv:
        yield srv


def start_infer(url: str, protocol: str, images: Path, out: Path, tmp: Path) -> subprocess.Popen:
    tmp.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "cvlab", "infer", str(images), "-m", MODEL, "-u", url,
        "-i", protocol, "-b", "4", "--async", "--concurrency", "4", "--no-progress",
        "--output_path", str(out),
    ]  # fmt: skip
    env = dict(os.environ, TMPDIR=str(tmp))
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def wait_for_frames(process: subprocess.Popen, out: Path, count: int = 8) -> None:
    labels = out / "infer_labels"
    assert wait_until(
        lambda: (
            process.poll() is not None
            or (labels.is_dir() and len(list(labels.glob("*.txt"))) >= count)
        ),
        timeout=180,
    )
    assert process.poll() is None, process.communicate()


@pytest.mark.parametrize(
    ("signum", "protocol"),
    [(signal.SIGINT, "http"), (signal.SIGTERM, "grpc"), (signal.SIGKILL, "http")],
    ids=["SIGINT-http", "SIGTERM-grpc", "SIGKILL-http"],
)
def test_killed_infer_leaks_nothing(server, images, tmp_path, signum, protocol):
    url = server.http_url if protocol == "http" else server.grpc_url
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    process = start_infer(url, protocol, images, out, tmp)
    try:
        wait_for_frames(process, out)
        children = descendants(process.pid)
        assert regions_of(process.pid, server_regions(server)), "no shared memory was used"
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    pid = process.pid
    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
        # its resource tracker unlinks the files; the server side releases the registrations
        assert wait_until(lambda: not shm_files(pid)), shm_files(pid)
        released = server.sweep_shared_memory()
        assert released and all(n.startswith(f"cvlab_{pid}_") for n in released)
    else:  # like Ctrl-C: requests in flight waited for, then every region unregistered
        assert process.returncode == 130, err
        assert "interrupted" in err and "Traceback" not in err, err
        assert shm_files(pid) == []
    assert regions_of(pid, server_regions(server)) == []
    assert wait_until(lambda: not any(pid_alive(c) for c in children)), children
    assert list(tmp.iterdir()) == []
    assert check_outputs(out, hidden_allowed=signum == signal.SIGKILL) >= 8
    assert server.is_ready()


def test_server_killed_mid_run(tmp_path, images):
    """The server dies: one line per failed request, no gevent traceback, nothing left."""
    repo = write_demo_repo(tmp_path / "repo")
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    with TritonServer(repo, startup_timeout=90) as killed:
        prefix = killed.backend_region_prefix
        assert list(Path("/dev/shm").glob(f"{prefix}*"))
        process = start_infer(killed.http_url, "http", images, out, tmp)
        try:
            wait_for_frames(process, out)
            children = descendants(process.pid)
            os.killpg(os.getpgid(killed.pid), signal.SIGKILL)
            _, err = process.communicate(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 1, err
    assert "went away" in err and "Traceback" not in err, err
    assert shm_files(process.pid) == []
    assert wait_until(lambda: not any(pid_alive(c) for c in children)), children
    assert list(tmp.iterdir()) == []
    assert list(Path("/dev/shm").glob(f"{prefix}*")) == []  # the python backend's regions
    assert check_outputs(out, hidden_allowed=False) >= 8
    # every frame is accounted for: the done-list plus the failed list are all the images
    done = [line.split("\t")[1] for line in (out / "infer_done.txt").read_text().splitlines()]
    failed = [line.split("\t") for line in (out / "infer_failed.txt").read_text().splitlines()]
    assert failed and all(why for _, _, why in failed), failed
    assert sorted(done + [image for _, image, _ in failed]) == sorted(
        str(p) for p in images.iterdir()
    )


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    repo = write_slow_repo(tmp_path_factory.mktemp("slow"), 1.0)
    with TritonServer(repo, startup_timeout=90, shm_sweep_interval=None) as srv:
        yield srv


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_error_after_first_response_waits_then_unregisters(slow_server, images, protocol):
    """An error in the caller's hands (here on_outputs) while requests are in flight: the
    regions are unregistered once those requests are answered, not left to the server."""
    url = slow_server.http_url if protocol == "http" else slow_server.grpc_url
    client = TritonDetectNetClient(url, MODEL, protocol=protocol, concurrency=4)
    paths = sorted(str(p) for p in images.glob("*.jpg"))[:40]

    def fail(*_):
        raise RuntimeError("postprocessing failed")

    with pytest.raises(RuntimeError, match="postprocessing failed"):
        client.stream_images(paths, fail, 4, progress=False)
    assert regions_of(os.getpid(), server_regions(slow_server)) == []
    assert shm_files(os.getpid()) == []
    client.close()


def test_close_with_requests_in_flight(slow_server):
    """InputSlots.close waits (bounded) for requests that still read its region."""
    import tritonclient.http as http

    from cvlab.triton.shared_memory import InputSlots

    triton = http.InferenceServerClient(slow_server.http_url)
    slots = InputSlots(triton, 1, (1, 3, H, W))
    slot = slots.acquire()
    slot.array[:] = 0

    def send() -> None:
        inp = http.InferInput("input_1", [1, 3, H, W], "FP32")
        inp.set_shared_memory(slot.name, slot.byte_size(1))
        http.InferenceServerClient(slow_server.http_url).infer(MODEL, [inp])

    # the first runs (1 s each), the others wait in the queue: for ~3 s, longer than Triton's
    # 2 s metrics interval, so the pending count below cannot be missed between two updates
    senders = [threading.Thread(target=send, daemon=True) for _ in range(4)]
    for sender in senders:
        sender.start()
    assert wait_until(lambda: _pending(slow_server) > 0, timeout=30)
    slots.close()
    for sender in senders:
        sender.join(30)
    assert slots.left_registered == []
    assert slot.name not in server_regions(slow_server)
    triton.close()


def _pending(server: TritonServer) -> int:
    """Requests queued for the model, not yet executing (the server's metrics)."""
    import urllib.request

    with urllib.request.urlopen(server.metrics_url, timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith("nv_inference_pending_request_count") and f'model="{MODEL}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def test_interrupted_stream_never_unmaps_a_slot_being_written(server, images, tmp_path):
    """An error while reading threads still write into their slots: the regions are unmapped
    only after those threads finished (unmapped under them, the process died of SIGSEGV).
    Run in a subprocess, so that a crash is a failed test, not a dead test run."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from cvlab.inference.preprocess import preprocess_images
        from cvlab.triton.client import TritonDetectNetClient

        client = TritonDetectNetClient({server.http_url!r}, {MODEL!r}, concurrency=2)

        def load(index, chunk, out):
            if index >= 1:
                time.sleep(1.0)  # still writing into its slot when the error comes
            return preprocess_images(chunk, client.input_size, "skip", out=out)

        def fail(*_):
            raise RuntimeError("stop")

        try:
            client.stream_images(sys.argv[1:], fail, 2, progress=False, load=load)
        except RuntimeError:
            print("clean", flush=True)
        client.close()
        """
    )
    paths = sorted(str(p) for p in images.glob("*.jpg"))[:16]
    child = subprocess.Popen(
        [sys.executable, "-c", script, *paths],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = child.communicate(timeout=120)
    assert (child.returncode, out.strip()) == (0, "clean"), err[-2000:]
    assert shm_files(child.pid) == [] and regions_of(child.pid, server_regions(server)) == []


@pytest.fixture(scope="module")
def stall_server(tmp_path_factory):
    """A demo server the stall tests stop with SIGSTOP (and always continue again)."""
    repo = write_demo_repo(tmp_path_factory.mktemp("stall"))
    with TritonServer(repo, startup_timeout=90, shm_sweep_interval=None) as srv:
        yield srv


@pytest.mark.parametrize(
    ("protocol", "mode", "signum"),
    [
        ("grpc", "--async", None),
        ("grpc", None, signal.SIGTERM),
        ("http", "--async", None),
        ("http", None, signal.SIGINT),
    ],
    ids=["grpc-async", "grpc-sync-SIGTERM", "http-async", "http-sync-SIGINT"],
)
def test_stalled_server_ends_the_run_within_the_timeout(
    stall_server, images, tmp_path, protocol, mode, signum
):
    """The server stops answering (SIGSTOP): the run ends within --timeout + 10 s, every frame
    not done listed with its reason; SIGTERM/SIGINT end it as soon. Issue 20 item 1: the gRPC
    client waited for ever (calls without a deadline), HTTP took 77 s with --timeout 5."""
    import time

    timeout = 5
    url = stall_server.http_url if protocol == "http" else stall_server.grpc_url
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    argv = [
        sys.executable, "-m", "cvlab", "infer", str(images), "-m", MODEL, "-u", url,
        "-i", protocol, "-b", "4", "--timeout", str(timeout), "--no-progress",
        "--output_path", str(out), *([mode] if mode else []),
    ]  # fmt: skip
    tmp.mkdir()
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TMPDIR=str(tmp)),
    )  # fmt: skip
    try:
        wait_for_frames(process, out)
        os.kill(stall_server.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        if signum is not None:
            time.sleep(1)
            process.send_signal(signum)
        try:
            _, err = process.communicate(timeout=timeout + 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {time.monotonic() - stopped:.0f} s after SIGSTOP")
    finally:
        os.kill(stall_server.pid, signal.SIGCONT)
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == (1 if signum is None else 130), err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    if signum is None:
        assert "stopped answering" in err, err
    done = [line.split("\t")[1] for line in (out / "infer_done.txt").read_text().splitlines()]
    failed = [line.split("\t") for line in (out / "infer_failed.txt").read_text().splitlines()]
    assert "not done, listed in" in err or signum is None, err
    assert all(why for _, _, why in failed), failed
    assert sorted(done + [image for _, image, _ in failed]) == sorted(
        str(p) for p in images.iterdir()
    )
    pid = process.pid
    assert shm_files(pid) == []
    assert list(tmp.iterdir()) == []
    assert wait_until(stall_server.is_ready, timeout=60)

    def swept() -> bool:  # regions a stalled server could not be asked to release; "in use"
        stall_server.sweep_shared_memory()  # until the requests queued before SIGSTOP are done
        return regions_of(pid, server_regions(stall_server)) == []

    assert wait_until(swept, timeout=60), server_regions(stall_server)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sigterm_while_connecting_to_a_stalled_server(stall_server, images, tmp_path, protocol):
    """A run started against a stalled server (waiting for its first answer) ends within
    seconds of SIGTERM, exit 130, no traceback (gRPC deferred the signal for ever; HTTP printed
    gevent's traceback)."""
    import time

    url = stall_server.http_url if protocol == "http" else stall_server.grpc_url
    argv = [
        sys.executable, "-m", "cvlab", "infer", str(images), "-m", MODEL, "-u", url,
        "-i", protocol, "--no-progress", "--output_path", str(tmp_path / "out"),
    ]  # fmt: skip
    os.kill(stall_server.pid, signal.SIGSTOP)
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(4)  # imported and waiting for the server
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    finally:
        os.kill(stall_server.pid, signal.SIGCONT)
    assert process.returncode == 130, err
    assert "Traceback" not in err, err
    assert wait_until(stall_server.is_ready, timeout=60)
