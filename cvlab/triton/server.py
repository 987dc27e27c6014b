"""A local Triton Inference Server: the tritonserver binary bundled in nvidia-pytriton.

:class:`TritonServer` starts ``tritonserver`` on loopback with free ports, waits until the
server and its models are ready, surfaces the log when something fails (which model failed to
load and why) and never leaves the process behind: it runs in its own process group, the group
is killed on :meth:`TritonServer.stop`, at interpreter exit and on SIGTERM, and the kernel kills
it when the parent dies (``PR_SET_PDEATHSIG``).

The model repository may be a directory or ``gs://bucket/path`` (the server reads GCS itself and
honours ``CLOUD_STORAGE_EMULATOR_ENDPOINT``; pass such variables with ``env``).

Example:
    >>> with TritonServer("model_repository") as server:  # doctest: +SKIP
    ...     print(server.http_url)
    127.0.0.1:40123
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterable
from pathlib import Path

from cvlab.errors import CvlabError

PR_SET_PDEATHSIG = 1
_LIVE_SERVERS: weakref.WeakSet[TritonServer] = weakref.WeakSet()


class TritonStartError(CvlabError, RuntimeError):
    """tritonserver did not become ready; ``log_lines`` holds the relevant server log lines."""

    def __init__(self, message: str, log_lines: list[str] | None = None):
        self.log_lines = list(log_lines or [])
        details = "\n".join(self.log_lines)
        super().__init__(f"{message}\n{details}" if details else message)


def _pytriton_dir() -> Path:
    import pytriton

    return Path(pytriton.__file__).resolve().parent / "tritonserver"


def find_tritonserver() -> Path:
    """Path of the tritonserver binary inside the installed nvidia-pytriton wheel."""
    path = _pytriton_dir() / "bin" / "tritonserver"
    if not path.is_file():
        raise FileNotFoundError(
            f"tritonserver not found at {path}; install nvidia-pytriton==0.7.0 (pip)"
        )
    return path


def _pytriton_libs() -> Path:
    return _pytriton_dir().parent.parent / "nvidia_pytriton.libs"


def make_backend_dir(target: str | os.PathLike) -> Path:
    """A backend directory with the python backend: library, utils and the stub for this Python.

    The wheel's backends/python folder has no stub; symlinks keep the stub next to the libraries
    it was built against.
    """
    tritondir = _pytriton_dir()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = tritondir / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise FileNotFoundError(f"no python backend stub for Python {version} at {stub}")
    python_dir = Path(target) / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    src = tritondir / "backends" / "python"
    for source in (src / "libtriton_python.so", src / "triton_python_backend_utils.py", stub):
        link = python_dir / source.name
        if not link.exists():
            link.symlink_to(source)
    return Path(target)


def server_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for tritonserver: library path for the bundled libs, this venv's bin first."""
    env = dict(os.environ)
    libdirs = [sysconfig.get_config_var("LIBDIR") or "", str(_pytriton_libs())]
    if env.get("LD_LIBRARY_PATH"):
        libdirs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(d for d in libdirs if d)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("PYTHONNOUSERSITE", "1")
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _interesting_lines(log: str, limit: int = 40) -> list[str]:
    keys = ("failed", "error", "unavailable", "exception", "traceback", "invalid", "unable")
    noise = ("cudadriverhelper", "pinned memory", "cuda driver", "gpu metrics", "libcuda")
    lines = [
        line
        for line in log.splitlines()
        if any(k in line.lower() for k in keys) and not any(n in line.lower() for n in noise)
    ]
    if not lines:
        lines = log.splitlines()
    return lines[-limit:]


class TritonServer:
    """Start/stop a local tritonserver; a context manager.

    Args:
        model_repository: directory or ``gs://...`` URL.
        host: address every endpoint binds (loopback by default).
        http_port, grpc_port, metrics_port: fixed ports, or None for free ones.
        env: extra environment variables for the server (e.g. the GCS emulator endpoint).
        log_verbose: tritonserver ``--log-verbose`` level.
        startup_timeout: seconds to wait for readiness in :meth:`start`.
        model_control_mode: ``none`` (load all at start) or ``explicit``.
        log_path: where the server log goes (a temporary file by default).

    The kernel's parent-death signal is tied to the thread that calls :meth:`start`: start the
    server from the main thread (or a thread that outlives it).
    """

    def __init__(
        self,
        model_repository: str | os.PathLike,
        *,
        host: str = "127.0.0.1",
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        env: dict[str, str] | None = None,
        log_verbose: int = 0,
        startup_timeout: float = 60.0,
        model_control_mode: str = "none",
        log_path: str | os.PathLike | None = None,
    ):
        repo = str(model_repository)
        if not repo.startswith(("gs://", "s3://", "as://")):
            path = Path(repo).resolve()
            if not path.is_dir():
                raise FileNotFoundError(f"model repository not found: {path}")
            repo = str(path)
        if model_control_mode not in ("none", "explicit", "poll"):
            raise ValueError(
                f"model_control_mode must be none|explicit|poll, got {model_control_mode!r}"
            )
        self.model_repository = repo
        self.host = host
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self.env = dict(env or {})
        self.log_verbose = log_verbose
        self.startup_timeout = startup_timeout
        self.model_control_mode = model_control_mode
        self._log_path = Path(log_path) if log_path else None
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._log_file = None
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._backend_regions: set[str] = set()  # python-backend /dev/shm regions seen

    # --- addresses ------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        """``host:port`` of the HTTP endpoint (what tritonclient expects)."""
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def command(self, backend_dir: str | os.PathLike) -> list[str]:
        """The tritonserver command line."""
        return [
            str(find_tritonserver()),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backend_dir}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--strict-readiness=true",
            "--exit-on-error=true",
            f"--model-control-mode={self.model_control_mode}",
            f"--log-verbose={self.log_verbose}",
        ]

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> TritonServer:
        """Launch tritonserver and wait for readiness; raise :class:`TritonStartError` on failure."""
        with self._lock:
            if self.process and self.process.poll() is None:
                return self
            self._tmpdir = tempfile.TemporaryDirectory(prefix="cvlab-triton-")
            tmp = Path(self._tmpdir.name)
            backend_dir = make_backend_dir(tmp / "backends")
            self.http_port = self.http_port or free_port(self.host)
            self.grpc_port = self.grpc_port or free_port(self.host)
            self.metrics_port = self.metrics_port or free_port(self.host)
            if self._log_path is None:
                self._log_path = tmp / "tritonserver.log"
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            if self.model_repository.startswith("gs://"):
                mount = self.env.setdefault("TRITON_GCS_MOUNT_DIRECTORY", str(tmp / "gcs"))
                Path(mount).mkdir(parents=True, exist_ok=True)
            self._log_file = open(self._log_path, "wb")  # noqa: SIM115 - closed in stop()
            self.process = subprocess.Popen(
                self.command(backend_dir),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=server_environment(self.env),
                cwd=tmp,
                start_new_session=True,  # own process group: stop() kills the python stubs too
                preexec_fn=_die_with_parent,
            )
            _LIVE_SERVERS.add(self)
            _install_signal_handlers()
        try:
            self.wait_ready(self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        # remembered now: if the server is killed from outside, stop() can still unlink them
        with contextlib.suppress(ProcessLookupError, AttributeError):
            self._backend_regions.update(python_backend_regions(os.getpgid(self.process.pid)))
        return self

    def _get(self, path: str, timeout: float = 2.0) -> int:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}{path}", timeout=timeout) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return 0

    def is_ready(self) -> bool:
        """True when the server (and, with strict readiness, every model) is ready."""
        return self.process is not None and self._get("/v2/health/ready") == 200

    def model_ready(self, name: str, version: str = "") -> bool:
        suffix = f"/versions/{version}" if version else ""
        return self._get(f"/v2/models/{name}{suffix}/ready") == 200

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll the health endpoint until ready; raise :class:`TritonStartError` with log lines."""
        if self.process is None:
            raise TritonStartError("tritonserver is not started")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise TritonStartError(
                    f"tritonserver exited with code {code} during startup "
                    f"(repository {self.model_repository}); log {self._log_path}:",
                    _interesting_lines(self.log_text()),
                )
            if self.is_ready():
                return
            time.sleep(0.1)
        raise TritonStartError(
            f"tritonserver not ready after {timeout:.0f} s (repository {self.model_repository}); "
            f"log {self._log_path}:",
            _interesting_lines(self.log_text()),
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL after ``timeout`` s."""
        with self._lock:
            process, self.process = self.process, None
            if process is not None:
                _kill_group(process, timeout, self._backend_regions)
            self._backend_regions = set()
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            _LIVE_SERVERS.discard(self)

    def log_text(self) -> str:
        """The server log so far."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __repr__(self) -> str:
        state = "running" if self.process and self.process.poll() is None else "stopped"
        return f"TritonServer({self.model_repository!r}, http={self.http_url}, {state})"


_SHM_REGION = re.compile(rb"^triton_python_backend_shm_region_[0-9a-f-]+$")


def group_pids(pgid: int) -> list[int]:
    """Processes (zombies included) in process group ``pgid``, from /proc."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(proc.name)) == pgid:
                    pids.append(int(proc.name))
    return pids


def python_backend_regions(pgid: int) -> list[str]:
    """Shared-memory regions of the python-backend stubs in process group ``pgid``.

    Each stub gets its region's name on its command line; a stub killed before the server
    finalises it leaves the region in /dev/shm (MBs to 100s of MBs), so stop() unlinks them.
    """
    names = []
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            names += [a.decode() for a in argv if _SHM_REGION.match(a)]
    return names


def _kill_group(
    process: subprocess.Popen, timeout: float, known_regions: Iterable[str] = ()
) -> None:
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        pgid = None
    regions = set(known_regions) | set(python_backend_regions(pgid) if pgid is not None else [])
    if process.poll() is None and pgid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    if pgid is not None:  # the stubs and anything else left in the group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
    for name in regions:
        with contextlib.suppress(OSError):
            os.unlink(Path("/dev/shm") / name)


def stop_all_servers() -> None:
    """Stop every server this process started (atexit and SIGTERM)."""
    for server in list(_LIVE_SERVERS):
        with contextlib.suppress(Exception):
            server.stop(timeout=3.0)


atexit.register(stop_all_servers)
_handlers_installed = False


def _install_signal_handlers() -> None:
    """On SIGTERM/SIGHUP stop the servers, then behave as before (only from the main thread)."""
    global _handlers_installed
    if _handlers_installed or threading.current_thread() is not threading.main_thread():
        return
    _handlers_installed = True
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(signum)
        if previous is signal.SIG_IGN:
            continue

        def handler(sig, frame, previous=previous):
            stop_all_servers()
            if callable(previous):
                previous(sig, frame)
            else:
                signal.signal(sig, signal.SIG_DFL)
                os.kill(os.getpid(), sig)

        signal.signal(signum, handler)
