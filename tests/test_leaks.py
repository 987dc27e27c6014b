"""The suite's end-of-session check (tests/conftest.py, support/leaks.py), run on a small
inner test session: what a test leaves is listed, removed, and fails the session."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from cvlab.fileio import pid_alive

REPO = Path(__file__).resolve().parents[1]

LEAKY = """
import os, subprocess, sys, tempfile
from pathlib import Path

def test_clean(tmp_path):
    (tmp_path / "kept-by-pytest").write_text("pytest's own tmp_path is not a leak")
    tempfile.mkdtemp(prefix="not-cvlab-")  # other programs' leftovers are not cvlab's

def test_leaky():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    Path(os.environ["LEAK_RECORD"]).write_text(f"{child.pid} {os.getpid()}")
    Path("/dev/shm", f"cvlab_{os.getpid()}_deadbeef_0").write_bytes(b"x")
    tempfile.mkdtemp(prefix="cvlab-triton-")
"""


def _inner_session(tmp_path: Path, test_text: str) -> subprocess.CompletedProcess:
    (tmp_path / "inner").mkdir()
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "inner" / "conftest.py")
    (tmp_path / "inner" / "test_inner.py").write_text(test_text)
    env = dict(os.environ, LEAK_RECORD=str(tmp_path / "record"), PYTHONPATH=str(REPO))
    env.pop("CVLAB_TEST_SESSION", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
         str(REPO / "pyproject.toml"), "--rootdir", str(REPO), str(tmp_path / "inner")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def test_a_leaking_test_fails_the_session_and_its_leaks_are_removed(tmp_path):
    run = _inner_session(tmp_path, LEAKY)
    out = run.stdout + run.stderr
    child, inner = map(int, (tmp_path / "record").read_text().split())
    if pid_alive(child):  # without the check: this test's own clean-up
        os.kill(child, signal.SIGKILL)
        Path(f"/dev/shm/cvlab_{inner}_deadbeef_0").unlink(missing_ok=True)
        raise AssertionError(f"the session left its child {child} running:\n{out}")
    assert run.returncode == 1, out
    assert "2 passed" in out and "tests left these behind (now removed):" in out
    region = f"/dev/shm/cvlab_{inner}_deadbeef_0"
    assert f"process {child}: " in out and f"shared memory: {region}" in out
    assert "temporary: " in out and "/cvlab-triton-" in out and "not-cvlab-" not in out
    assert not pid_alive(child) and not Path(region).exists()
    assert "kept-by-pytest" not in out


def test_a_clean_session_passes(tmp_path):
    run = _inner_session(tmp_path, "def test_nothing():\n    pass\n")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tests left these behind" not in run.stdout
