"""The local tritonserver (nvidia-pytriton's binary): start, readiness, failures, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from support.triton import MODEL, group_members, process_alive, write_demo_repo

from cvlab.cloud.gcs_emulator import triton_environment as gcs_emulator_env
from cvlab.triton.server import (
    TritonServer,
    TritonStartError,
    find_tritonserver,
    python_backend_regions,
)

pytestmark = pytest.mark.server


def _wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while time.monotonic() < deadline:
        alive = [p for p in pids if process_alive(p)]
        if not alive:
            return []
        time.sleep(0.1)
    return alive


def test_find_tritonserver():
    assert find_tritonserver().is_file()
    assert os.access(find_tritonserver(), os.X_OK)


def test_start_ready_stop_leaves_no_process(tmp_path):
    repo = write_demo_repo(tmp_path / "repo")
    with TritonServer(repo) as server:
        assert server.is_ready() and server.model_ready(MODEL)
        host, port = server.http_url.split(":")
        assert host == "127.0.0.1" and int(port) > 0
        assert len({server.http_port, server.grpc_port, server.metrics_port}) == 3
        with urllib.request.urlopen(server.metrics_url, timeout=5) as r:
            assert b"nv_inference_request_success" in r.read()
        pid = server.pid
        members = group_members(os.getpgid(pid))
        assert pid in members and len(members) >= 2  # tritonserver + the python backend stub
        assert "successfully loaded 'demo'" in server.log_text()
    assert server.pid is None and not server.is_ready()
    assert _wait_gone(members) == []


def test_stop_after_inference_leaves_no_python_backend_memory(tmp_path):
    """A stub killed with its server leaves its /dev/shm region (grown by each large request)
    behind unless stop() unlinks it; a client still connected keeps tritonserver from a
    graceful exit, so the process group is killed, as on Ctrl-C."""
    import numpy as np

    from cvlab.triton.client import TritonDetectNetClient

    repo = write_demo_repo(tmp_path / "repo")
    with TritonServer(repo) as server:
        regions = python_backend_regions(os.getpgid(server.pid))
        assert regions and all((Path("/dev/shm") / r).exists() for r in regions)
        client = TritonDetectNetClient(server.http_url, MODEL, shared_memory="none")
        client.infer_tensors([np.zeros((8, 3, 192, 320), np.float32)] * 2)
        server.stop(timeout=2.0)  # connection still open: tritonserver would wait 30 s
        assert [r for r in regions if (Path("/dev/shm") / r).exists()] == []
        client.close()


def test_model_load_failure_names_model_and_reason(tmp_path):
    repo = write_demo_repo(tmp_path / "repo", name="broken")
    model_py = repo / "broken" / "1" / "model.py"
    model_py.write_text(
        model_py.read_text().replace(
            "def initialize(self, args):",
            "def initialize(self, args):\n        raise RuntimeError('weights are corrupt')",
        )
    )
    server = TritonServer(repo, startup_timeout=60)
    with pytest.raises(TritonStartError) as info:
        server.start()
    text = str(info.value)
    assert "broken" in text and "weights are corrupt" in text
    assert any("broken" in line for line in info.value.log_lines)
    assert server.process is None


def test_missing_repository_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model repository not found"):
        TritonServer(tmp_path / "nope")


def test_no_orphan_after_parent_is_killed(tmp_path):
    repo = write_demo_repo(tmp_path / "repo")
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from cvlab.triton.server import TritonServer
        server = TritonServer({str(repo)!r}).start()
        print(server.pid, os.getpgid(server.pid), flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        line = parent.stdout.readline()
        assert line, "the child process did not start a server"
        pid, pgid = (int(v) for v in line.split())
        members = group_members(pgid)
        assert pid in members
        parent.send_signal(signal.SIGKILL)  # no atexit, no handlers: only PDEATHSIG can help
        parent.wait(10)
        assert _wait_gone(members, timeout=20) == [], "tritonserver outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 0)])
def test_cli_serve_stops_server_on_signal(tmp_path, signum, code):
    repo = write_demo_repo(tmp_path / "repo")
    parent = subprocess.Popen(
        [sys.executable, "-m", "cvlab", "triton", "serve", "--model-repository", str(repo)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = parent.stdout.readline()
        assert line.startswith("Triton ready: http 127.0.0.1:"), line
        http = line.split()[3]
        with urllib.request.urlopen(f"http://{http}/v2/health/ready", timeout=5) as r:
            assert r.status == 200
        pids = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and process_alive(int(p.name)) and _ppid(int(p.name)) == parent.pid
        ]
        assert pids
        parent.send_signal(signum)  # SIGINT = Ctrl-C
        assert parent.wait(20) == code
        assert _wait_gone(pids) == []
    finally:
        if parent.poll() is None:
            parent.kill()


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, IndexError, ValueError):
        return -1


def test_serves_a_gs_repository_from_the_gcs_emulator(tmp_path):
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    repo = write_demo_repo(tmp_path / "repo")
    emulator = create_server("127.0.0.1", 0, in_memory=True, default_bucket="models")
    emulator.start()
    try:
        endpoint = f"http://127.0.0.1:{emulator._api._httpd.server_address[1]}"
        client = storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )
        bucket = client.bucket("models")
        for path in repo.rglob("*"):
            if path.is_file():
                bucket.blob(f"triton/{path.relative_to(repo)}").upload_from_filename(path)
        env = gcs_emulator_env(endpoint, tmp_path / "mount")
        with TritonServer("gs://models/triton", env=env, startup_timeout=60) as server:
            assert server.model_ready(MODEL)
        with pytest.raises(TritonStartError):  # a missing prefix fails with the log attached
            TritonServer("gs://models/nothing-here", env=env, startup_timeout=30).start()
    finally:
        emulator.stop()
