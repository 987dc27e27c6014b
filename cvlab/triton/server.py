"""A local Triton Inference Server: the tritonserver binary bundled in nvidia-pytriton.

:class:`TritonServer` starts ``tritonserver`` on loopback with free ports, waits until the
server and its models are ready, surfaces the log when something fails (which model failed to
load and why) and never leaves the process behind: it runs in its own process group, the group
is killed on :meth:`TritonServer.stop`, at interpreter exit and on SIGTERM, and the kernel kills
it when the parent dies (``PR_SET_PDEATHSIG``).

Nothing is leaked either (the rules, in the order they apply):

* Ports given by the caller are checked before the start, and the server counts as ready only
  when its own log says its HTTP, gRPC and metrics endpoints started (another server answering
  on that port is never taken for it).
* Startup stops as soon as the log says why a model failed; the error carries those log lines
  and never names a temporary log that is about to be deleted.
* The python backend's ``/dev/shm`` regions get a per-server name prefix
  (``triton_python_backend_shm_region_cvlab_<owner pid>_<token>_``): every region with it is
  unlinked at stop, including those of a start that failed.
* Temporary folders are ``$TMPDIR/cvlab-triton-<owner pid>-*``, removed by :meth:`close`
  (``with``, SIGTERM/SIGHUP, interpreter exit). After a SIGKILL nothing can run: the next
  start sweeps folders and backend regions whose owner pid is dead (:func:`sweep_stale`).
* Clients' system shared-memory regions: a sweep (every ``shm_sweep_interval`` s) unregisters a
  region when its ``/dev/shm`` file is gone (its client closed or died: Python's resource
  tracker unlinks a killed client's regions) or when its name is a cvlab client's
  (``cvlab_<pid>_...``) and that pid is dead (the file is then unlinked too). Limits: a client
  in another PID namespace sharing this ``/dev/shm``, or one that unlinks a region on purpose
  while it keeps using it, would be swept; neither is a cvlab client.

The model repository may be a directory or ``gs://bucket/path`` (the server reads GCS itself and
honours ``CLOUD_STORAGE_EMULATOR_ENDPOINT``; pass such variables with ``env``).

:func:`last_served_url` reads the file ``cvlab triton serve`` writes (:func:`serve_file`), so
``cvlab infer`` without ``-u`` finds the running server.

Example:
    >>> with TritonServer("model_repository") as server:  # doctest: +SKIP
    ...     print(server.http_url)
    127.0.0.1:40123
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import weakref
from collections.abc import Iterable
from pathlib import Path

from cvlab.errors import CvlabError
from cvlab.fileio import pid_alive

PR_SET_PDEATHSIG = 1
_LIVE_SERVERS: weakref.WeakSet[TritonServer] = weakref.WeakSet()
#: temporary folders: ``<TMPDIR>/cvlab-triton-<owner pid>-<random>``
TEMP_PREFIX = "cvlab-triton-"
SHM_DIR = Path("/dev/shm")
#: the python backend's own regions; cvlab's servers add ``cvlab_<owner pid>_<token>_``
BACKEND_SHM_PREFIX = "triton_python_backend_shm_region_"
#: seconds the start still waits once the log names a failure (the server may add the reason)
FAILURE_GRACE_S = 2.0
#: environment variable naming the file ``cvlab triton serve`` writes its URLs to
SERVE_FILE_ENV = "CVLAB_SERVE_FILE"


class TritonStartError(CvlabError, RuntimeError):
    """tritonserver did not become ready; ``log_lines`` holds the relevant server log lines.

    ``headline`` is the one-line reason (``str()`` adds the log lines below it).
    """

    def __init__(self, message: str, log_lines: list[str] | None = None):
        self.headline = message
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


def port_in_use(host: str, port: int) -> bool:
    """True when a TCP listener could not bind ``host:port`` now (another server holds it).

    Example:
        >>> with socket.create_server(("127.0.0.1", 0)) as busy:
        ...     port_in_use("127.0.0.1", busy.getsockname()[1])
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            s.bind((host, int(port)))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_NOISE = ("cudadriverhelper", "pinned memory", "cuda driver", "gpu metrics", "libcuda")
#: log lines that say the start failed, whatever their level (the python stub logs at I)
_FAILURE = re.compile(
    r"failed to (pre)?initiali[sz]e|failed to load '|failed to start|already in use|"
    r"error: creating server|^[EF]\d{4} ",
    re.IGNORECASE,
)
_GLOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\]\s*")


def _interesting_lines(log: str, limit: int = 40) -> list[str]:
    keys = ("failed", "error", "unavailable", "exception", "traceback", "invalid", "unable")
    lines = [
        line
        for line in log.splitlines()
        if any(k in line.lower() for k in keys) and not any(n in line.lower() for n in _NOISE)
    ]
    if not lines:
        lines = log.splitlines()
    return lines[-limit:]


def _failure_lines(log: str) -> list[str]:
    """The log lines that say why the start failed (empty while all is well)."""
    return [
        line
        for line in log.splitlines()
        if _FAILURE.search(line) and not any(n in line.lower() for n in _NOISE)
    ]


def _reason(line: str) -> str:
    r"""One failure line as a short reason: no glog prefix, no quotes, first line only.

    Example:
        >>> _reason('E1203 06:46:18.0 97 model_lifecycle.cc:642] "failed to load m: bad\\n\\nAt:"')
        'failed to load m: bad'
    """
    text = _GLOG_PREFIX.sub("", line).strip().strip('"').strip()
    return text.split("\\n", 1)[0].strip()


def usage_error(log: str) -> str:
    r"""Why tritonserver refused its command line ("" when it did not).

    It prints its whole usage text (hundreds of lines, with words such as "error" in them) and
    the reason last, as its one unindented line that is not a heading:

    >>> usage_error("Usage: tritonserver [options]\n  --help\n\tPrint usage\nServer:\n\n"
    ...             "The server cannot listen to HTTP and GRPC requests at 127.0.0.1:8000\n")
    'The server cannot listen to HTTP and GRPC requests at 127.0.0.1:8000'
    """
    if "Usage: tritonserver" not in log:
        return ""
    lines = [
        line.strip()
        for line in log.splitlines()
        if line.strip() and not line[0].isspace() and not line.rstrip().endswith(":")
    ]
    lines = [line for line in lines if not line.startswith("Usage: tritonserver")]
    return lines[-1] if lines else ""


def pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (a folder or region name in use)."""
    needle = text.encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
    return pids


def sweep_stale(tmp_root: str | os.PathLike | None = None) -> list[str]:
    """Remove what killed owners left: temp folders and python-backend regions of dead pids.

    Only cvlab's own names are touched (``cvlab-triton-<pid>-*`` folders of this user and
    ``triton_python_backend_shm_region_cvlab_<pid>_*`` regions) and only when ``<pid>`` is no
    longer alive and no process names the folder or region on its command line. Returns what
    was removed. :meth:`TritonServer.start` calls it (a SIGKILL leaves no chance to clean up).
    """
    removed: list[str] = []
    root = Path(tmp_root or tempfile.gettempdir())
    owned = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")
    with contextlib.suppress(OSError):
        for path in root.iterdir():
            match = owned.match(path.name)
            if not match or pid_alive(int(match.group(1))):
                continue
            with contextlib.suppress(OSError):
                if path.lstat().st_uid != os.getuid() or not path.is_dir():
                    continue
                if pids_mentioning(str(path)):
                    continue
                shutil.rmtree(path, ignore_errors=True)
                removed.append(str(path))
    region = re.compile(re.escape(BACKEND_SHM_PREFIX) + r"cvlab_(\d+)_")
    with contextlib.suppress(OSError):
        for path in SHM_DIR.iterdir():
            match = region.match(path.name)
            if not match or pid_alive(int(match.group(1))) or pids_mentioning(path.name):
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(str(path))
    return removed


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
        log_path: where the server log goes and stays (a temporary file, removed by
            :meth:`close`, by default).
        shm_sweep_interval: seconds between sweeps of clients' shared-memory regions whose
            client is gone (None: no sweep; see the module's rules).

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
        shm_sweep_interval: float | None = 2.0,
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
        self.shm_sweep_interval = shm_sweep_interval
        self._log_path = Path(log_path) if log_path else None
        self._user_log = log_path is not None
        self._tmpdir: Path | None = None
        self._log_file = None
        self.process: subprocess.Popen | None = None
        self._lock = threading.RLock()  # re-entered by a signal handler that stops the server
        self._backend_prefix = f"{BACKEND_SHM_PREFIX}cvlab_{os.getpid()}_{uuid.uuid4().hex[:8]}_"
        self._backend_regions: set[str] = set()  # python-backend /dev/shm regions seen
        self._sweeper: threading.Thread | None = None
        self._sweeping = threading.Event()
        self._last_log = ""

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
        """The server log (None once a temporary log has been removed by :meth:`close`)."""
        return self._log_path

    @property
    def backend_region_prefix(self) -> str:
        """Name prefix of this server's python-backend ``/dev/shm`` regions."""
        return self._backend_prefix

    def command(self, backend_dir: str | os.PathLike) -> list[str]:
        """The tritonserver command line."""
        return [
            str(find_tritonserver()),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backend_dir}",
            f"--backend-config=python,shm-region-prefix-name={self._backend_prefix}",
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
    def _check_ports(self) -> None:
        given = {"HTTP": self.http_port, "gRPC": self.grpc_port, "metrics": self.metrics_port}
        named = [(what, port) for what, port in given.items() if port]
        for i, (what, port) in enumerate(named):
            for other, same in named[i + 1 :]:
                if port == same:
                    raise TritonStartError(
                        f"the {what} and {other} ports are both {port}: each endpoint needs "
                        "its own port"
                    )
        for what, port in given.items():
            if port and port_in_use(self.host, port):
                raise TritonStartError(
                    f"{what} port {port} on {self.host} is already in use (another server?); "
                    "stop it or choose another port"
                )

    def start(self) -> TritonServer:
        """Launch tritonserver and wait for readiness; raise :class:`TritonStartError` on failure."""
        with self._lock:
            if self.process and self.process.poll() is None:
                return self
            sweep_stale()
            self._check_ports()
            self._tmpdir = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
            _ALL_SERVERS.add(self)
            tmp = self._tmpdir
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
            if self.model_control_mode == "none" and not self.models():
                raise TritonStartError(
                    f"no models in {self.model_repository}: a model repository holds one folder "
                    "per model (config.pbtxt and a version folder such as 1/); "
                    "`cvlab triton check` says what is missing"
                )
        except BaseException:
            self.close()
            raise
        # remembered now: if the server is killed from outside, stop() can still unlink them
        with contextlib.suppress(ProcessLookupError, AttributeError):
            self._backend_regions.update(python_backend_regions(self.process.pid))
        if self.shm_sweep_interval:
            self._sweeping.clear()
            self._sweeper = threading.Thread(
                target=self._sweep_loop, name="cvlab-triton-shm-sweep", daemon=True
            )
            self._sweeper.start()
        return self

    def _request(self, path: str, method: str = "GET", timeout: float = 2.0) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"http://{self.http_url}{path}", method=method, data=b"" if method == "POST" else None
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""
        except (urllib.error.URLError, OSError):
            return 0, b""

    def _get(self, path: str, timeout: float = 2.0) -> int:
        return self._request(path, timeout=timeout)[0]

    def is_ready(self) -> bool:
        """True when this process's server (and, with strict readiness, every model) is ready."""
        process = self.process
        return (
            process is not None and process.poll() is None and self._get("/v2/health/ready") == 200
        )

    def model_ready(self, name: str, version: str = "") -> bool:
        suffix = f"/versions/{version}" if version else ""
        return self._get(f"/v2/models/{name}{suffix}/ready") == 200

    def models(self) -> list[dict[str, str]]:
        """The repository index: ``[{"name", "version", "state"}, ...]`` (empty if unreachable)."""
        code, body = self._request("/v2/repository/index", method="POST")
        if code != 200:
            return []
        with contextlib.suppress(ValueError):
            return list(json.loads(body or b"[]"))
        return []

    def _started(self, log: str) -> bool:
        """The log says that THIS server's endpoints started (not another one on the port)."""
        return (
            f"Started HTTPService at {self.host}:{self.http_port}" in log
            and f"Started GRPCInferenceService at {self.host}:{self.grpc_port}" in log
            and f"Started Metrics Service at {self.host}:{self.metrics_port}" in log
        )

    def _start_error(self, what: str, log: str) -> TritonStartError:
        where = f"repository {self.model_repository}"
        failures = _failure_lines(log)
        loads = [line for line in failures if "failed to load '" in line.lower()]
        reason = _reason((loads or failures)[0]) if failures else ""
        refused = usage_error(log)
        kept = f"; log {self._log_path}" if self._user_log else ""
        headline = f"{what} ({where}{kept})" + (
            f": {refused or reason}" if refused or reason else ""
        )
        return TritonStartError(headline, [] if refused else _interesting_lines(log))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until ready; raise :class:`TritonStartError` (with log lines) as soon as the
        server exits, its log names a failure, or ``timeout`` s pass."""
        deadline = time.monotonic() + timeout
        failed_at: float | None = None
        while True:
            process = self.process
            if process is None:
                raise TritonStartError(
                    f"tritonserver was stopped during startup (repository {self.model_repository})"
                )
            code = process.poll()
            log = self.log_text()
            if code is not None:
                raise self._start_error(f"tritonserver exited with code {code} during startup", log)
            if _failure_lines(log):
                failed_at = failed_at or time.monotonic()
                if time.monotonic() - failed_at > FAILURE_GRACE_S:
                    raise self._start_error("tritonserver failed to start", log)
            elif self._started(log) and self.is_ready():
                return
            if time.monotonic() > deadline:
                raise self._start_error(f"tritonserver not ready after {timeout:.0f} s", log)
            time.sleep(0.1)

    def sweep_shared_memory(self) -> list[str]:
        """Unregister clients' system shared-memory regions whose client is gone (one pass).

        A region goes when its ``/dev/shm`` file no longer exists, or when its name is a cvlab
        client's and that pid is dead (its file is unlinked too). Returns the names released.
        """
        from cvlab.triton.shared_memory import region_owner

        code, body = self._request("/v2/systemsharedmemory/status")
        if code != 200:
            return []
        try:
            regions = json.loads(body or b"[]")
        except ValueError:
            return []
        released = []
        for region in regions:
            name, key = str(region.get("name", "")), str(region.get("key", ""))
            path = SHM_DIR / key.lstrip("/")
            owner = region_owner(key) or region_owner(name)
            dead = owner is not None and not pid_alive(owner)
            if path.exists() and not dead:
                continue
            quoted = urllib.parse.quote(name, safe="")
            url = f"/v2/systemsharedmemory/region/{quoted}/unregister"
            if self._request(url, method="POST")[0] == 200:
                released.append(name)
                if dead:
                    with contextlib.suppress(OSError):
                        path.unlink()
        return released

    def _sweep_loop(self) -> None:
        while not self._sweeping.wait(self.shm_sweep_interval or 2.0):
            process = self.process
            if process is None or process.poll() is not None:
                return
            with contextlib.suppress(Exception):
                self.sweep_shared_memory()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL after ``timeout`` s; its
        python-backend regions are unlinked."""
        with self._lock:
            self._sweeping.set()
            process, self.process = self.process, None
            if process is not None:
                _kill_group(process, timeout, self._backend_regions)
                _unlink_prefixed(self._backend_prefix)
            self._backend_regions = set()
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            _LIVE_SERVERS.discard(self)

    def close(self) -> None:
        """:meth:`stop`, then remove the temporary folder (and the log in it)."""
        with self._lock:
            self.stop()
            tmp, self._tmpdir = self._tmpdir, None
            if tmp is not None:
                if not self._user_log:
                    self._last_log = self.log_text()[-200_000:]
                    self._log_path = None
                shutil.rmtree(tmp, ignore_errors=True)
            _ALL_SERVERS.discard(self)

    def log_text(self) -> str:
        """The server log so far (after :meth:`close`, the end of a temporary log)."""
        if self._log_path is None or not self._log_path.exists():
            return self._last_log
        return self._log_path.read_text(errors="replace")

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if self._tmpdir is not None and self.process is None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __repr__(self) -> str:
        state = "running" if self.process and self.process.poll() is None else "stopped"
        return f"TritonServer({self.model_repository!r}, http={self.http_url}, {state})"


_ALL_SERVERS: weakref.WeakSet[TritonServer] = weakref.WeakSet()  # every one with a temp folder
_SHM_REGION = re.compile(r"^" + re.escape(BACKEND_SHM_PREFIX) + r"[\w-]+$")


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
            names += [a.decode() for a in argv if _SHM_REGION.match(a.decode(errors="replace"))]
    return names


def _unlink_prefixed(prefix: str) -> None:
    with contextlib.suppress(OSError):
        for path in SHM_DIR.glob(f"{prefix}*"):
            with contextlib.suppress(OSError):
                path.unlink()


def _kill_group(
    process: subprocess.Popen, timeout: float, known_regions: Iterable[str] = ()
) -> None:
    """SIGTERM to the server's process group, SIGKILL after ``timeout`` s, then SIGKILL to
    whatever is left in the group (python stubs), and unlink the stubs' regions.

    The group id is the leader's pid (the server starts its own session), never
    ``os.getpgid()``: once the leader is dead and reaped (killed from outside, e.g. by the OOM
    killer, and ``poll()`` ran) that lookup fails while its stubs live on in the group. Linux
    hands out no pid still in use as a group id, so the id stays the group's."""
    pgid = process.pid
    regions = set(known_regions) | set(python_backend_regions(pgid))
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):  # stubs, and the rest
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
    for name in regions:
        with contextlib.suppress(OSError):
            os.unlink(SHM_DIR / name)


def stop_all_servers() -> None:
    """Stop every server this process started and remove their temporary folders (atexit,
    SIGTERM, SIGHUP)."""
    for server in list(_LIVE_SERVERS) + list(_ALL_SERVERS):
        with contextlib.suppress(Exception):
            server.stop(timeout=3.0)
            server.close()


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


# --- the file `cvlab triton serve` writes, `cvlab infer` reads -------------------------------------
def serve_file() -> Path:
    """Where ``cvlab triton serve`` records its URLs: ``$CVLAB_SERVE_FILE``, else
    ``$XDG_RUNTIME_DIR/cvlab/serve.json``, else ``~/.cache/cvlab/serve.json``."""
    if os.environ.get(SERVE_FILE_ENV):
        return Path(os.environ[SERVE_FILE_ENV])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and Path(runtime).is_dir() else Path.home() / ".cache"
    return base / "cvlab" / "serve.json"


def write_serve_file(server: TritonServer, models: Iterable[str] = ()) -> Path:
    """Record ``server``'s URLs (with this process's pid) for :func:`last_served_url`."""
    from cvlab.fileio import atomic_write_text

    record = {
        "pid": os.getpid(),
        "http": server.http_url,
        "grpc": server.grpc_url,
        "metrics": server.metrics_url,
        "model_repository": server.model_repository,
        "models": list(models),
    }
    path = serve_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def read_serve_file() -> dict | None:
    """The record of a ``cvlab triton serve`` that is still running, or None."""
    try:
        record = json.loads(serve_file().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not pid_alive(int(record.get("pid", 0) or 0)):
        return None
    return record


def remove_serve_file(pid: int | None = None) -> None:
    """Remove the record if it is the one of ``pid`` (this process by default)."""
    path = serve_file()
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == (pid or os.getpid()):
            path.unlink()


def last_served_url(protocol: str = "http") -> str | None:
    """``host:port`` for ``protocol`` (http or grpc) of the running ``cvlab triton serve``,
    or None when none runs (``cvlab infer`` uses it when no ``-u`` is given).

    Example:
        >>> last_served_url("grpc")  # doctest: +SKIP
        '127.0.0.1:40125'
    """
    record = read_serve_file()
    key = "grpc" if str(protocol).lower() == "grpc" else "http"
    return str(record[key]) if record and record.get(key) else None
