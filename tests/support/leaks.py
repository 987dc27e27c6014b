"""The suite's end-of-session check: no test may leave a process, a shared-memory region or a
temporary folder behind (issue 20).

:class:`LeakWatch` starts when ``tests/conftest.py`` is imported, before any test module:

- it gives the session its own temporary folder (``TMPDIR`` and :data:`tempfile.tempdir`, so
  subprocesses use it too); pytest's ``tmp_path`` folders stay where they were
  (``PYTEST_DEBUG_TEMPROOT``);
- it marks every process the session starts with :data:`TOKEN_VAR` in its environment
  (tritonserver, its python stubs, ``cvlab`` subprocesses, kernels, browsers inherit it);
- it notes the pid of every child started through :mod:`subprocess`, the owners of the
  shared-memory regions they create (cvlab names each region after its creator's pid).

At the end (:meth:`LeakWatch.finish`, from ``pytest_sessionfinish``) it lists what is left:
processes carrying the mark (after a grace period for ones being killed), ``/dev/shm`` regions
named after this process or one of its children, and ``cvlab*`` entries in the session's
temporary folder. It then removes them (kills the processes by pid, unlinks the regions,
deletes the folder) so a failing run leaks nothing either, and the session fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from cvlab.fileio import pid_alive

#: the environment variable that marks this session's processes
TOKEN_VAR = "CVLAB_TEST_SESSION"
SHM_DIR = Path("/dev/shm")
#: shared-memory names cvlab gives its regions: a client's and a python-backend server's
_REGION_OWNER = re.compile(r"^(?:cvlab_|triton_python_backend_shm_region_cvlab_)(\d+)_")
#: session-long folders of the test helpers themselves (removed with the session's folder)
_INFRASTRUCTURE = ("cvlab-triton-test-", "cvlab-test-serve-")
#: helpers Python starts for its own use that live as long as this process
_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


class LeakWatch:
    """One test session's record of what it may leave behind (see the module docstring)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.token = secrets.token_hex(8)
        self.children: set[int] = set()
        self.original_tmp = tempfile.gettempdir()
        self.original_tmpdir_var = os.environ.get("TMPDIR")
        self.tmp = Path(tempfile.mkdtemp(prefix="cvlab-test-session-"))

    def start(self) -> LeakWatch:
        """Mark the environment, redirect temporary files, note children from now on."""
        os.environ[TOKEN_VAR] = self.token
        os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", self.original_tmp)
        os.environ["TMPDIR"] = str(self.tmp)
        tempfile.tempdir = str(self.tmp)
        watch, original_init = self, subprocess.Popen.__init__

        def noting_init(popen, *args, **kwargs):  # the owner of a region may be a child
            original_init(popen, *args, **kwargs)
            watch.children.add(popen.pid)

        subprocess.Popen.__init__ = noting_init
        return self

    # --- what is left ----------------------------------------------------------------------
    def processes(self) -> list[int]:
        """Live processes (not this one, not Python's own helpers) carrying the session mark."""
        mark = f"{TOKEN_VAR}={self.token}".encode()
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == self.pid:
                continue
            try:
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            pid = int(proc.name)
            if (
                mark in environ.split(b"\0")
                and pid_alive(pid)
                and not any(helper in _cmdline(pid) for helper in _HELPERS)
            ):
                found.append(pid)
        return sorted(found)

    def regions(self) -> list[str]:
        """``/dev/shm`` regions named after this process or a child it started."""
        owners = self.children | {self.pid}
        try:
            names = sorted(p.name for p in SHM_DIR.iterdir())
        except OSError:
            return []
        return [
            name
            for name in names
            if (m := _REGION_OWNER.match(name)) is not None and int(m.group(1)) in owners
        ]

    def folders(self) -> list[str]:
        """cvlab's entries left in the session's temporary folder (not the helpers' own)."""
        try:
            names = sorted(p.name for p in self.tmp.iterdir())
        except OSError:
            return []
        return [
            name
            for name in names
            if name.lstrip(".").startswith("cvlab") and not name.startswith(_INFRASTRUCTURE)
        ]

    def finish(self, grace_s: float = 15.0) -> list[str]:
        """What the session left (one line each), after ``grace_s`` s for processes being
        stopped; then all of it is removed and the original temporary folder restored."""
        deadline = time.monotonic() + grace_s
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        problems = [f"process {pid}: {_cmdline(pid)[:200]}" for pid in self.processes()]
        problems += [f"shared memory: {SHM_DIR / name}" for name in self.regions()]
        problems += [f"temporary: {self.tmp / name}" for name in self.folders()]
        for pid in self.processes():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for name in self.regions():
            (SHM_DIR / name).unlink(missing_ok=True)
        tempfile.tempdir = None  # computed again, from the restored environment
        if self.original_tmpdir_var is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = self.original_tmpdir_var
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems
