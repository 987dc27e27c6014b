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
from support.triton import (
    MODEL,
    group_members,
    wait_until,
    write_demo_repo,
    write_test_images,
)

from cvlab.cloud.gcs_emulator import triton_environment as gcs_emulator_env
from cvlab.fileio import pid_alive
from cvlab.triton.server import (
    BACKEND_SHM_PREFIX,
    TritonServer,
    TritonStartError,
    find_tritonserver,
    last_served_url,
    pids_mentioning,
    python_backend_regions,
)

pytestmark = pytest.mark.server


def _wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while time.monotonic() < deadline:
        alive = [p for p in pids if pid_alive(p)]
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


def test_server_killed_alone_mid_inference_leaves_no_stub(tmp_path):
    """Issue 20 item 3, the OOM-killer case: SIGKILL reaches tritonserver alone while a
    request runs in the python backend; once the dead server is reaped (``poll()``, as the
    shm sweeper does), stop() still kills its stub and unlinks the stub's region. The stub is
    held with SIGSTOP first: it stands for a stub that does not notice its parent's death
    (about half of them here), which stop() alone must clean up."""
    import threading

    import numpy as np

    from cvlab.triton.client import TritonDetectNetClient

    repo = write_demo_repo(tmp_path / "repo")
    server = TritonServer(repo, shm_sweep_interval=0).start()
    stubs: list[int] = []
    try:
        leader = server.pid
        stubs = [p for p in group_members(leader) if p != leader]
        regions = python_backend_regions(leader)
        assert stubs and regions
        client = TritonDetectNetClient(  # gRPC: usable from another thread (not gevent)
            server.grpc_url, MODEL, "", "grpc", shared_memory="none", timeout_s=20, retries=0
        )
        batch = [np.zeros((8, 3, 192, 320), np.float32)] * 4
        errors: list[BaseException] = []

        def infer() -> None:
            try:
                client.infer_tensors(batch)
            except BaseException as exc:  # the server dies under it: expected
                errors.append(exc)

        worker = threading.Thread(target=infer)
        worker.start()
        time.sleep(0.5)  # requests on their way to the stub
        for pid in stubs:
            os.kill(pid, signal.SIGSTOP)
        os.kill(leader, signal.SIGKILL)  # the server alone, not its group
        assert wait_until(lambda: server.process.poll() is not None, 10)  # reaped
        worker.join(30)
        client.close()
        server.stop(timeout=2.0)
        assert _wait_gone(stubs, 10) == []
        assert [r for r in regions if (Path("/dev/shm") / r).exists()] == []
    finally:
        for pid in stubs:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        server.close()


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


def _left_in(tmp: Path) -> list[str]:
    """What is left in a temp folder (onnxruntime's telemetry keeps a ``.ses`` file there)."""
    return sorted(p.name for p in tmp.iterdir() if p.name != ".ses")


def _serve_env(tmp_path: Path) -> dict[str, str]:
    """``cvlab triton serve``'s environment in tests: its own temp dir and URL record."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return dict(os.environ, TMPDIR=str(tmp_path / "tmp"), CVLAB_SERVE_FILE=str(tmp_path / "s.json"))


def _start_serve(repo: Path, env: dict[str, str], **pipes) -> subprocess.Popen:
    """``cvlab triton serve --model-repository repo`` as a child, its stdout read as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "cvlab", "triton", "serve", "--model-repository", str(repo)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        **pipes,
    )


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 0)])
def test_cli_serve_stops_server_on_signal(tmp_path, signum, code):
    repo = write_demo_repo(tmp_path / "repo")
    parent = _start_serve(repo, _serve_env(tmp_path))
    try:
        line = parent.stdout.readline()
        assert line.startswith("Triton ready: http 127.0.0.1:"), line
        http = line.split()[3]
        with urllib.request.urlopen(f"http://{http}/v2/health/ready", timeout=5) as r:
            assert r.status == 200
        pids = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and pid_alive(int(p.name)) and _ppid(int(p.name)) == parent.pid
        ]
        assert pids
        parent.send_signal(signum)  # SIGINT = Ctrl-C
        assert parent.wait(20) == code
        assert _wait_gone(pids) == []
        assert _left_in(tmp_path / "tmp") == []  # its temp dir (backends, log) is gone
        assert not (tmp_path / "s.json").exists()
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


# --- issue 14: ports, failed starts, signals during startup, leftovers, the serve record ------
def _backend_files(prefix: str) -> list[str]:
    return sorted(p.name for p in Path("/dev/shm").glob(f"{prefix}*"))


def _pids_below(pid: int) -> list[int]:
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and pid_alive(int(p.name)) and _ppid(int(p.name)) == pid
    ]


def _broken_repo(tmp_path: Path, change: str) -> Path:
    """The demo repository with one fault: ``no-model-py`` (the python stub cannot start and
    tritonserver waits for ever) or ``slow-init`` (initialize() takes 60 s)."""
    repo = write_demo_repo(tmp_path / "repo")
    model_py = repo / MODEL / "1" / "model.py"
    if change == "no-model-py":
        model_py.unlink()
    else:
        model_py.write_text(
            model_py.read_text().replace(
                "def initialize(self, args):",
                "def initialize(self, args):\n        __import__('time').sleep(60)",
            )
        )
    return repo


def test_a_port_in_use_is_refused_before_the_start(tmp_path):
    repo = write_demo_repo(tmp_path / "repo")
    with TritonServer(repo) as other:
        server = TritonServer(repo, http_port=other.http_port)
        with pytest.raises(TritonStartError, match=f"HTTP port {other.http_port} .*in use"):
            server.start()
        assert server.process is None and other.is_ready()


def test_another_server_on_the_port_is_not_taken_for_ours(tmp_path, monkeypatch):
    """Even when the port check misses it (a race), readiness comes from OUR server's log."""
    repo = write_demo_repo(tmp_path / "repo")
    with TritonServer(repo) as other:
        monkeypatch.setattr("cvlab.triton.server.port_in_use", lambda *a: False)
        server = TritonServer(repo, http_port=other.http_port, startup_timeout=120)
        with pytest.raises(TritonStartError, match="already in use") as info:
            server.start()
        assert "not ready after" not in str(info.value)
        assert other.is_ready() and server.process is None
        assert _backend_files(server.backend_region_prefix) == []


def test_failed_start_stops_at_the_reason_and_leaks_nothing(tmp_path, monkeypatch):
    """No model.py: the python stub fails and tritonserver would wait for ever; the start
    stops at the log line that says so, unlinks the backend region, removes its temp dir and
    names no log file it deleted."""
    from support.triton import demo_onnx_path

    demo_onnx_path()  # built first: TensorFlow's own temporary files are not the server's
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    server = TritonServer(_broken_repo(tmp_path, "no-model-py"), startup_timeout=300)
    with pytest.raises(TritonStartError) as info:
        server.start()
    err = info.value
    assert "Python model file not found" in err.headline and "not ready after" not in str(err)
    assert "tritonserver.log" not in str(err)
    assert any("Failed to preinitialize" in line for line in err.log_lines)
    assert server.process is None and server.log_path is None
    assert _left_in(tmp_path / "tmp") == []
    assert _backend_files(server.backend_region_prefix) == []
    kept = tmp_path / "kept.log"  # a log the caller asked for is kept and named
    server = TritonServer(tmp_path / "repo", startup_timeout=300, log_path=kept)
    with pytest.raises(TritonStartError, match=f"log {kept}"):
        server.start()
    assert "Failed to preinitialize" in kept.read_text()


def test_cli_serve_failures_are_one_line(tmp_path, capsys):
    from cvlab.cli import main

    assert main(["triton", "serve", "--model-repository", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip() == f"cvlab triton serve: error: model repository not found: {tmp_path}/missing"
    )
    (tmp_path / "empty").mkdir()
    assert main(["triton", "serve", "--model-repository", str(tmp_path / "empty")]) == 2
    out, err = capsys.readouterr()
    assert "ready" not in out.lower() and err.count("\n") == 1
    assert err.startswith(f"cvlab triton serve: error: no models in {tmp_path}/empty")
    repo = _broken_repo(tmp_path, "no-model-py")
    assert main(["triton", "serve", "--model-repository", str(repo)]) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and "Traceback" not in err and lines[0] == "tritonserver log:"
    assert lines[-1].startswith("cvlab triton serve: error: tritonserver failed to start")
    assert "Python model file not found" in lines[-1]


def test_serve_help_shows_defaults_and_refuses_bad_ports(capsys):
    from cvlab.cli import main

    with pytest.raises(SystemExit) as info:
        main(["triton", "serve", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("(default: 127.0.0.1)", "(default: 120.0)", "(default: a free one)"):
        assert shown in text
    with pytest.raises(SystemExit) as info:
        main(["triton", "serve", "--model-repository", ".", "--http-port", "0"])
    assert info.value.code == 2 and "1..65535" in capsys.readouterr().err


def test_sigterm_during_startup_stops_cleanly(tmp_path):
    repo = _broken_repo(tmp_path, "slow-init")
    env = _serve_env(tmp_path)
    parent = _start_serve(repo, env, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: _pids_below(parent.pid), timeout=120), "no tritonserver"
        prefix = f"{BACKEND_SHM_PREFIX}cvlab_{parent.pid}_"
        assert wait_until(lambda: _backend_files(prefix), timeout=60)  # the stub started
        tritonserver = _pids_below(parent.pid)
        parent.send_signal(signal.SIGTERM)
        out, err = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 130, err
    assert "Traceback" not in err and "stopped during startup" in err
    assert _wait_gone(tritonserver) == []
    assert _backend_files(prefix) == []
    assert _left_in(tmp_path / "tmp") == []


def test_serve_prints_the_infer_commands_and_records_its_urls(tmp_path, monkeypatch):
    repo = write_demo_repo(tmp_path / "repo")
    images = tmp_path / "images"
    write_test_images(images, 3)
    env = _serve_env(tmp_path)
    monkeypatch.setenv("CVLAB_SERVE_FILE", env["CVLAB_SERVE_FILE"])
    assert last_served_url() is None
    parent = _start_serve(repo, env)
    try:
        lines = [parent.stdout.readline() for _ in range(4)]
        assert lines[0].startswith("Triton ready: http 127.0.0.1:"), lines
        http, grpc = lines[0].split()[3], lines[0].split()[5]
        assert lines[1].split() == ["HTTP:", "cvlab", "infer", "IMAGE_DIR", "-m", MODEL, "-u", http]
        assert lines[2].split()[1:] == ["cvlab", "infer", "IMAGE_DIR", "-m", MODEL] + [
            "-i", "grpc", "-u", grpc,
        ]  # fmt: skip
        assert (last_served_url("http"), last_served_url("gRPC")) == (http, grpc)
        for line in lines[1:3]:  # the printed commands work as they are
            argv = [a if a != "IMAGE_DIR" else str(images) for a in line.split()[2:]]
            out = tmp_path / f"out_{line.split()[0].rstrip(':')}"
            command = [sys.executable, "-m", "cvlab", *argv, "--output_path", str(out)]
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
            assert done.returncode == 0, done.stderr
            assert len(list((out / "infer_labels").glob("*.txt"))) == 3
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 0
    finally:
        if parent.poll() is None:
            parent.kill()
    assert last_served_url() is None and not Path(env["CVLAB_SERVE_FILE"]).exists()


def test_a_killed_serve_is_swept_at_the_next_start(tmp_path, monkeypatch):
    """SIGKILL leaves no chance to clean up: the next start removes the dead owner's temp
    dir and python-backend regions."""
    from cvlab.triton.server import sweep_stale

    repo = write_demo_repo(tmp_path / "repo")
    env = _serve_env(tmp_path)
    parent = _start_serve(repo, env)
    try:
        assert parent.stdout.readline().startswith("Triton ready")
        tritonserver = _pids_below(parent.pid)
        parent.kill()
        parent.wait(10)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert _wait_gone(tritonserver, timeout=30) == []  # the kernel's parent-death signal
    left = _left_in(tmp_path / "tmp")
    assert [n.split("-")[2] for n in left] == [str(parent.pid)]  # cvlab-triton-<pid>-*
    prefix = f"{BACKEND_SHM_PREFIX}cvlab_{parent.pid}_"
    assert wait_until(lambda: not any(_stub_uses(n) for n in _backend_files(prefix)), 30)
    # on a loaded machine the dead server's python stubs can outlive it for a while; the sweep
    # (rightly) keeps a folder that a live process still names on its command line
    dead_dir = str(tmp_path / "tmp" / left[0])
    assert wait_until(lambda: not pids_mentioning(dead_dir), 60)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    with TritonServer(repo) as server:  # its start sweeps
        assert server.is_ready()
        assert [n for n in _left_in(tmp_path / "tmp") if n in left] == []
        assert _backend_files(prefix) == []
    assert sweep_stale(tmp_path / "tmp") == []


def _stub_uses(region: str) -> bool:
    from cvlab.triton.server import pids_mentioning

    return bool(pids_mentioning(region))


def test_regions_of_dead_clients_are_released_by_the_server(tmp_path):
    """A client killed with its whole process group (its resource tracker too) leaves its
    regions registered and its files in /dev/shm: the server's sweep releases both; a live
    client's regions stay."""
    import tritonclient.http as http

    from cvlab.triton.shared_memory import InputSlots

    repo = write_demo_repo(tmp_path / "repo")
    with TritonServer(repo, shm_sweep_interval=0.2) as server:
        script = textwrap.dedent(
            f"""
            import time, tritonclient.http as http
            from cvlab.triton.shared_memory import InputSlots
            slots = InputSlots(http.InferenceServerClient({server.http_url!r}), 2, (1, 3, 8, 8))
            print("registered", flush=True)
            time.sleep(600)
            """
        )
        child = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        live = InputSlots(http.InferenceServerClient(server.http_url), 1, (1, 3, 8, 8))
        try:
            assert child.stdout.readline().strip() == "registered"
            names = [f"cvlab_{child.pid}_" in n for n in _status(server)]
            assert names.count(True) == 2
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
            assert wait_until(lambda: not any(f"cvlab_{child.pid}_" in n for n in _status(server)))
            assert not list(Path("/dev/shm").glob(f"cvlab_{child.pid}_*"))
            time.sleep(0.5)  # a few more sweeps: the live client's region is left alone
            assert [n for n in _status(server) if n.startswith(f"cvlab_{os.getpid()}_")] == [
                live._registered[0]
            ]
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
            live.close()


def _status(server) -> list[str]:
    import tritonclient.http as http

    return [
        r["name"]
        for r in http.InferenceServerClient(server.http_url).get_system_shared_memory_status()
    ]


def test_serve_with_one_port_for_two_endpoints_says_why(tmp_path, capsys):
    """Issue 20 item 11: ``--http-port`` equal to ``--grpc-port`` is refused before the start,
    in one line naming the port; and where tritonserver itself refuses its command line, the
    reason it prints after its usage text is the one shown."""
    from cvlab.cli import main
    from cvlab.triton.server import server_environment, usage_error

    repo = write_demo_repo(tmp_path / "repo")
    port = "18555"
    argv = ["triton", "serve", "--model-repository", str(repo), "--http-port", port]
    assert main([*argv, "--grpc-port", port]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "HTTP and gRPC ports are both 18555" in err
    refused = subprocess.run(
        [str(find_tritonserver()), f"--model-repository={repo}", f"--http-port={port}",
         f"--grpc-port={port}", "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
         "--allow-metrics=false"],
        capture_output=True, text=True, env=server_environment(), timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0
    reason = usage_error(refused.stdout + refused.stderr)
    assert "cannot listen to HTTP requests and GRPC requests" in reason and port in reason


def test_serve_refuses_a_config_that_disagrees_with_the_model(tmp_path):
    """Issue 20 item 11: a config.pbtxt whose dims do not match the ONNX model (1 class, the
    model has 3) is refused at start-up, one line naming the field, as `cvlab triton check`
    does; before, the server reported ready and every request failed."""
    from support.triton import INPUT_SIZE, MAX_BATCH, demo_onnx_path

    from cvlab.triton.model_repository import peoplenet_spec, write_model_repository

    repo = tmp_path / "repo"
    spec = peoplenet_spec(MODEL, 1, INPUT_SIZE, MAX_BATCH)
    write_model_repository(repo, spec, demo_onnx_path(), target="python")
    proc = _start_serve(repo, _serve_env(tmp_path), stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2 and "ready" not in out.lower()
    assert err.count("\n") == 1 and "config.pbtxt" in err and "dims" in err
