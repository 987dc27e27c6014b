"""The Triton transport of the inference path: image files or tensors in, raw outputs out.

:class:`TritonDetectNetClient` reads the model's metadata and config from the server to learn
the input name, input size, output names (with or without ``:0``) and ``max_batch_size``; it
sends binary tensors, keeps up to ``concurrency`` requests in flight, maps responses back to
their frames by request id, retries connection errors and 503/UNAVAILABLE with backoff, and
collects failed requests without losing the others. With a server on this machine, input
tensors go through system shared memory (:mod:`cvlab.triton.shared_memory`): preprocessing
writes each batch into a registered region and the request only names it.

Example:
    >>> client = TritonDetectNetClient("127.0.0.1:8000", "peoplenet")  # doctest: +SKIP
    >>> outputs = client.infer_batch(tensor)  # doctest: +SKIP
    >>> outputs["output_cov/Sigmoid"].shape  # doctest: +SKIP
    (1, 3, 34, 60)

Turning outputs into Detections, labels and overlays is :mod:`cvlab.triton.pipeline`'s job.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import queue
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvlab.errors import CvlabError
from cvlab.triton.shared_memory import (
    InputSlots,
    SharedMemoryUnavailable,
    Slot,
    is_loopback,
)

#: the longest a control call (liveness, model metadata, shared-memory registration) may take,
#: even with a longer ``timeout_s`` (which inference requests get): a working server answers them
#: at once, and a run interrupted while a stalled server keeps one waiting ends within seconds
CONTROL_TIMEOUT_S = 5.0
_NUMPY_DTYPES = {"FP32": np.float32, "FP16": np.float16, "INT32": np.int32, "UINT8": np.uint8}
#: ``auto``: system shared memory for a server on this machine when it can be used, else the
#: request body; ``system``: shared memory or an error; ``none``: always the request body.
SHARED_MEMORY_MODES = ("auto", "system", "none")


class TritonClientError(CvlabError, RuntimeError):
    """Base of the client's errors."""


class ServerUnavailableError(TritonClientError):
    """The server cannot be reached (down, wrong address, or it went away mid-run)."""


class ModelNotReadyError(TritonClientError):
    """The server is up but the model is missing, loading or failed to load."""


class ClassCountError(TritonClientError, ValueError):
    """The class names given (config, class list) do not match the model's class count."""


#: Python code of locks and queues: an exception raised half-way through can leave a lock held
#: or a waiter never woken (a writer thread then waits for ever); their blocking waits are safe
_LOCK_FILES = frozenset({threading.__file__, queue.__file__})
_SAFE_WAITS = frozenset({"wait", "_wait_for_tstate_lock"})


@functools.lru_cache(maxsize=1)
def _no_interrupt_dirs() -> tuple[str, ...]:
    """Packages whose Python code must not be interrupted half-way: gRPC's (a
    KeyboardInterrupt between its lock and its bookkeeping leaves the channel locked, and
    ``close()`` then hangs)."""
    import importlib.util

    spec = importlib.util.find_spec("grpc")
    return tuple(spec.submodule_search_locations or ()) if spec else ()


def _interrupt_unsafe(frame) -> bool:
    """True when raising in ``frame`` (the main thread's, at the signal) could break a lock."""
    if frame is None:
        return False
    code = frame.f_code
    if code.co_filename in _LOCK_FILES and code.co_name not in _SAFE_WAITS:
        return True
    dirs = _no_interrupt_dirs()
    while frame is not None and dirs:
        if frame.f_code.co_filename.startswith(dirs):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def sigterm_as_interrupt(
    signums: Sequence[int] = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT),
) -> Iterator[None]:
    """Inside the block, SIGTERM (and SIGHUP) raise KeyboardInterrupt, as Ctrl-C does.

    An interrupted run then cleans up the same way whatever stopped it: requests in flight are
    waited for (bounded), shared-memory regions unregistered and unlinked, temporary files
    removed. The interrupt is raised at a safe point: a signal that lands inside gRPC's code
    or inside a lock operation is delivered again 20 ms later (raised there, the channel
    stays locked and the run hangs or crashes at exit); Ctrl-C gets the same care. The
    previous handlers come back after the block (a signal still pending then is raised as
    KeyboardInterrupt). Signals ignored before (``nohup``, background jobs) stay ignored;
    SIGINT is taken over only from Python's default handler; outside the main thread this
    does nothing.

    Example:
        >>> with sigterm_as_interrupt():
        ...     signal.getsignal(signal.SIGTERM).__name__
        'raise_interrupt'
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state: dict[str, Any] = {"active": True, "pending": None}

    def redeliver(signum: int) -> None:
        if state["active"] and state["pending"] == signum:
            os.kill(os.getpid(), signum)

    def raise_interrupt(signum, frame):
        if _interrupt_unsafe(frame):
            state["pending"] = signum
            timer = threading.Timer(0.02, redeliver, (signum,))
            timer.daemon = True
            timer.start()
            return
        state["pending"] = None
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {}
    for signum in signums:
        old = signal.getsignal(signum)
        if old is signal.SIG_IGN:
            continue
        if signum == signal.SIGINT and old is not signal.default_int_handler:
            continue
        previous[signum] = old
        signal.signal(signum, raise_interrupt)
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        state["active"] = False
        for signum, old in previous.items():
            if signal.getsignal(signum) is raise_interrupt:  # not replaced inside the block
                signal.signal(signum, old if old is not None else signal.SIG_DFL)
        if state["pending"] is not None and not failed:
            raise KeyboardInterrupt(f"signal {state['pending']}")


def _sigterm_interrupts(method: Callable) -> Callable:
    """Run ``method`` inside :func:`sigterm_as_interrupt`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with sigterm_as_interrupt():
            return method(*args, **kwargs)

    return wrapper


def _quiet_gevent_hub() -> None:
    """No traceback on stderr per failed HTTP request.

    tritonclient.http runs each async request in a gevent greenlet; when one dies of a network
    error (the server went away), gevent's hub prints its traceback although ``get_result()``
    hands the same error to the caller, who reports it. Network errors are declared "not
    errors" (``Hub.NOT_ERROR``) to this thread's hub, and so is KeyboardInterrupt (Ctrl-C or
    SIGTERM while the hub runs: still raised in the caller, only not printed); anything else is
    still printed.
    """
    from http.client import HTTPException

    import gevent

    hub = gevent.get_hub()
    kinds = (OSError, HTTPException, KeyboardInterrupt)
    quiet = tuple(t for t in kinds if not issubclass(t, hub.NOT_ERROR))
    if quiet:
        hub.NOT_ERROR = (*hub.NOT_ERROR, *quiet)


def probe_protocol(url: str, timeout: float = 2.0) -> str | None:
    """What answers at ``host:port``: ``http`` (HTTP/1.1), ``grpc`` (HTTP/2), ``tls`` or None.

    One plain HTTP/1.1 request: Triton's HTTP port answers it, its gRPC port answers with an
    HTTP/2 SETTINGS frame, a TLS port with an alert.
    """
    host, _, port = url.split("://", 1)[-1].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            sock.sendall(f"GET /v2/health/live HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            data = sock.recv(64)
    except (OSError, ValueError):
        return None
    if data.startswith(b"HTTP/1."):
        return "http"
    if len(data) >= 9 and data[3] == 0x04:  # an HTTP/2 frame header: type 4 = SETTINGS
        return "grpc"
    if data[:1] == b"\x15":  # a TLS alert record
        return "tls"
    return None


class _Deadlines:
    """A ``tritonclient.grpc`` client whose every call has a deadline: ``client_timeout`` (which
    tritonclient leaves at None, waiting for ever) is ``timeout_s`` unless the caller gives one.

    Example:
        >>> import tritonclient.grpc as grpc
        >>> client = _Deadlines(grpc.InferenceServerClient("127.0.0.1:8001"), 5.0)
        >>> client.is_server_live()  # a stalled server: DEADLINE_EXCEEDED after 5 s  # doctest: +SKIP
    """

    def __init__(self, client: Any, timeout_s: float):
        self._client = client
        self._timeout_s = float(timeout_s)

    def __getattr__(self, name: str) -> Any:
        import inspect

        attr = getattr(self._client, name)
        if not callable(attr) or "client_timeout" not in inspect.signature(attr).parameters:
            return attr

        @functools.wraps(attr)
        def call(*args, **kwargs):
            kwargs.setdefault("client_timeout", self._timeout_s)
            return attr(*args, **kwargs)

        return call


def check_url(url: str) -> str:
    """``host:port`` as given, or :class:`TritonClientError` naming what is wrong with it (an
    empty host, a port that is not 1-65535: gRPC would silently wrap 99999 to 34463).

    >>> check_url("127.0.0.1:8001")
    '127.0.0.1:8001'
    >>> check_url(":99999")
    Traceback (most recent call last):
    ...
    cvlab.triton.client.TritonClientError: server address ':99999': no host name; expected HOST:PORT such as 127.0.0.1:8000
    """
    host, sep, port = url.rpartition(":")
    example = "expected HOST:PORT such as 127.0.0.1:8000"
    if not sep or not port.isdigit():
        raise TritonClientError(f"server address {url!r}: no port number; {example}")
    if not host.strip("[]"):
        raise TritonClientError(f"server address {url!r}: no host name; {example}")
    if not 1 <= int(port) <= 65535:
        raise TritonClientError(f"server address {url!r}: port {int(port)} is not in 1-65535")
    return url


def check_tls_files(tls: Mapping[str, Any]) -> None:
    """Load the TLS files once with Python's ssl module: a file that is missing or not PEM is
    one :class:`TritonClientError` naming it (tritonclient would print tracebacks, gRPC log
    lines and then a misleading connection error)."""
    import ssl

    context = ssl.create_default_context()
    checks = []
    if tls.get("ca_file"):
        checks.append(
            (
                "CA file",
                tls["ca_file"],
                lambda: context.load_verify_locations(cafile=str(tls["ca_file"])),
            )
        )
    if tls.get("cert_file") and tls.get("key_file"):
        checks.append(
            (
                "client certificate/key",
                f"{tls['cert_file']}, {tls['key_file']}",
                lambda: context.load_cert_chain(str(tls["cert_file"]), str(tls["key_file"])),
            )
        )
    for what, name, load in checks:
        try:
            load()
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise TritonClientError(f"TLS {what} {name}: cannot be loaded: {exc}") from None


@dataclass
class RequestError:
    """One failed request: which frames it carried and why."""

    request_id: str
    paths: list[str]
    message: str

    def __str__(self) -> str:
        shown = ", ".join(self.paths[:3]) + (" ..." if len(self.paths) > 3 else "")
        return f"request {self.request_id} ({len(self.paths)} frame(s): {shown}): {self.message}"


@dataclass
class _Pending:
    request_id: str
    tensor: np.ndarray
    sizes: list[tuple[int, int]]
    paths: list[str]
    attempt: int = 0
    handle: Any = None
    done: Future = field(default_factory=Future)
    slot: Slot | None = None  # the shared-memory region holding ``tensor``, if any


def _is_timeout(exc: BaseException) -> bool:
    """The server did not answer in time (a socket timeout, gRPC's DEADLINE_EXCEEDED, or
    tritonclient.http's "failed to obtain inference response" when ``get_result`` times out)."""
    if isinstance(exc, TimeoutError):  # socket.timeout and concurrent.futures' too
        return True
    text = f"{getattr(exc, 'status', lambda: '')() or ''} {exc}".lower()
    return any(
        k in text
        for k in (
            "deadline_exceeded",
            "deadline exceeded",
            "timed out",
            "failed to obtain inference response",
        )
    )


def _is_retryable(exc: BaseException) -> bool:
    from tritonclient.utils import InferenceServerException

    if _is_timeout(exc):  # sent again, it would only wait as long again
        return False
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        return True
    if isinstance(exc, InferenceServerException):
        status = str(exc.status() or "")
        text = str(exc.message() or "").lower()
        if status in ("503", "StatusCode.UNAVAILABLE", "429"):
            return True
        return any(
            k in text
            for k in ("connection refused", "failed to connect", "unavailable", "socket closed")
        )
    return False


def _is_forgotten_region(exc: BaseException) -> bool:
    """The server no longer knows a shared-memory region (another client unregistered it)."""
    return "unable to find shared memory region" in str(exc).lower()


def _describe(exc: BaseException) -> str:
    from tritonclient.utils import InferenceServerException

    if isinstance(exc, InferenceServerException):
        status = exc.status()
        return f"{exc.message()}" + (f" [status {status}]" if status else "")
    return f"{type(exc).__name__}: {exc}"


class TritonDetectNetClient:
    """A DetectNet_v2 model served by Triton.

    Args:
        url: ``host:port`` (HTTP default port 8000, gRPC 8001); an ``http://`` prefix is dropped.
        model_name, model_version: the model ("" = the server's choice).
        protocol: ``http`` or ``grpc``.
        timeout_s: network timeout of each request.
        retries: extra attempts for connection errors and 503/UNAVAILABLE.
        backoff_s: first retry delay; doubled on each retry.
        concurrency: requests kept in flight by :meth:`infer_images`.
        ssl: use TLS (``https``/secure gRPC). ``True`` verifies the server against the
            system's CA bundle; a mapping turns TLS on with options: ``ca_file`` (PEM CA
            bundle that signed the server's certificate), ``cert_file`` and ``key_file``
            (PEM client certificate and key, for mutual TLS; both or neither) and
            ``insecure`` (HTTP only: do not match the host name against the certificate).
            A failed TLS handshake is not retried: it raises :class:`TritonClientError`
            saying "TLS" and how to turn it off.
        preprocess_workers: threads reading and resizing images ahead of the requests
            (OpenCV releases the GIL).
        shared_memory: ``auto`` (default) sends input tensors through system shared memory
            when the server is on this machine and accepts it, else in the request;
            ``system`` requires shared memory; ``none`` never uses it.
    """

    def __init__(
        self,
        url: str,
        model_name: str,
        model_version: str = "",
        protocol: str = "http",
        *,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        concurrency: int = 4,
        ssl: bool | Mapping[str, Any] = False,
        preprocess_workers: int = 2,
        shared_memory: str = "auto",
    ):
        protocol = str(protocol).lower()  # HTTP, gRPC: spelled as the user likes
        if protocol not in ("http", "grpc"):
            raise ValueError(f"protocol must be 'http' or 'grpc', got {protocol!r}")
        tls = dict(ssl) if isinstance(ssl, Mapping) else {}
        ssl = bool(ssl)
        unknown = sorted(set(tls) - {"ca_file", "cert_file", "key_file", "insecure"})
        if unknown:
            raise ValueError(
                f"unknown TLS option(s) {unknown}; known: ca_file, cert_file, key_file, insecure"
            )
        if bool(tls.get("cert_file")) != bool(tls.get("key_file")):
            raise ValueError("TLS client authentication needs both cert_file and key_file")
        if tls.get("insecure") and protocol == "grpc":
            raise ValueError("TLS option 'insecure' (no host name check) is HTTP-only")
        if shared_memory not in SHARED_MEMORY_MODES:
            raise ValueError(
                f"shared_memory must be one of {', '.join(SHARED_MEMORY_MODES)}, "
                f"got {shared_memory!r}"
            )
        for prefix in ("http://", "https://", "grpc://"):
            if url.startswith(prefix):
                ssl = ssl or prefix == "https://"
                url = url[len(prefix) :]
        check_url(url)
        if not (math.isfinite(float(timeout_s)) and float(timeout_s) > 0):
            raise ValueError(f"timeout must be a finite number of seconds above 0, got {timeout_s}")
        if ssl:
            check_tls_files(tls)
        version = str(model_version or "")
        if version and not (version.isdigit() and int(version) > 0):
            raise ValueError(
                f"model version must be a positive integer (or empty for the latest), "
                f"got {version!r}"
            )
        self.url = url
        self.model_name = model_name
        self.model_version = str(model_version or "")
        self.protocol = protocol
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.concurrency = max(1, int(concurrency))
        self.ssl = ssl
        self.preprocess_workers = int(preprocess_workers)
        if shared_memory == "system" and not is_loopback(url):
            raise ValueError(
                f"shared_memory='system' needs a server on this machine; {url} is not a "
                "loopback address (use 'auto' or 'none')"
            )
        self.shared_memory = shared_memory
        self._slots: InputSlots | None = None
        self._shm_refused: str | None = None  # why shared memory is off for this client
        self.errors: list[RequestError] = []
        self.tls_options = {k: v for k, v in tls.items() if v} if ssl else {}
        if protocol == "http":
            import tritonclient.http as module

            http_tls: dict[str, Any] = {}
            if ssl:  # geventhttpclient's names: ssl_options for ssl.SSLContext, insecure
                names = {"ca_file": "ca_certs", "cert_file": "certfile", "key_file": "keyfile"}
                options = {names[k]: str(v) for k, v in tls.items() if v and k in names}
                http_tls = {"ssl_options": options or None, "insecure": bool(tls.get("insecure"))}

            def http_client(timeout_s: float, concurrency: int):
                return module.InferenceServerClient(
                    url,
                    concurrency=concurrency,
                    connection_timeout=timeout_s,
                    network_timeout=timeout_s,
                    ssl=ssl,
                    **http_tls,
                )

            _quiet_gevent_hub()  # Ctrl-C while connecting: no greenlet traceback either
            self._client = http_client(self.timeout_s, self.concurrency)
            # control calls (liveness, metadata, shared-memory registration): a connection of
            # their own, so that their shorter timeout holds (geventhttpclient's timeouts are
            # per connection pool)
            self._control = http_client(min(self.timeout_s, CONTROL_TIMEOUT_S), 1)
        else:
            import tritonclient.grpc as module

            raw = module.InferenceServerClient(
                url,
                ssl=ssl,
                root_certificates=tls.get("ca_file") or None,
                private_key=tls.get("key_file") or None,
                certificate_chain=tls.get("cert_file") or None,
            )
            self._client = _Deadlines(raw, self.timeout_s)
            self._control = _Deadlines(raw, min(self.timeout_s, CONTROL_TIMEOUT_S))
        #: why the server stopped answering mid-run (then nothing more is asked of it)
        self._unanswering: str | None = None
        self._module = module
        if ssl:  # one handshake first: a TLS failure is reported as such, never retried
            try:
                self._control.is_server_live()
            except Exception as exc:  # noqa: BLE001 - only TLS failures are handled here
                self._raise_for_connection(exc, tls_probe=True)
        try:
            self._read_model()
        except ServerUnavailableError:
            self._raise_for_wrong_protocol()
            raise
        except TritonClientError:
            raise
        except Exception as exc:  # noqa: BLE001 - a closed connection gets a hint, others raise
            self._raise_for_wrong_protocol()
            self._raise_for_connection(exc, tls_probe=False)
            raise

    def _raise_for_wrong_protocol(self) -> None:
        """Raise ServerUnavailableError when the port speaks the other protocol (-i http at
        Triton's gRPC port or the reverse); return otherwise. Part of the constructor."""
        if self.ssl:
            return
        answer = probe_protocol(self.url, timeout=min(self.timeout_s, 2.0))
        if answer not in ("http", "grpc") or answer == self.protocol:
            return
        with contextlib.suppress(Exception):
            self._client.close()
        names = {"http": "HTTP", "grpc": "gRPC"}
        raise ServerUnavailableError(
            f"{self.url} is the {names[answer]} port, not {names[self.protocol]}: use "
            f"-i {answer} with it (protocol={answer!r}), or the server's {names[self.protocol]} "
            f"port (Triton's default is {8000 if self.protocol == 'http' else 8001})"
        )

    def _raise_for_connection(self, exc: Exception, *, tls_probe: bool) -> None:
        """Raise a TritonClientError naming TLS for a handshake failure, or a server closing the
        connection unanswered (a TLS server spoken to in plain text, or one that wants a client
        certificate); return for anything else. Part of the constructor."""
        from http.client import HTTPException
        from ssl import SSLError

        text = _describe(exc)
        gone = ["connection closed"]
        if tls_probe:  # a listening TLS server hanging up on us: it refused this handshake
            gone += ["socket closed", "connection reset", "broken pipe"]
        closed = isinstance(exc, HTTPException | ConnectionResetError) or any(
            g in text.lower() for g in gone
        )
        words = ("ssl", "tls", "handshake", "certificate")
        tls_failed = isinstance(exc, SSLError) or any(w in text.lower() for w in words)
        if not (closed or (tls_probe and tls_failed)):
            return
        with contextlib.suppress(Exception):
            self._client.close()
        plain = "HTTP" if self.protocol == "http" else "gRPC"
        if not self.ssl:
            raise ServerUnavailableError(
                f"Triton server at {self.url} ({self.protocol}) closed the connection without "
                f"answering ({text}); if it expects TLS, add --ssl (ssl=True): -i https alone "
                "means plain HTTP, as in the lab client"
            ) from None
        why = "; the server may want a client certificate" if closed else ""
        raise TritonClientError(
            f"TLS handshake with {self.url} ({self.protocol}) failed: {text}{why}. If the server "
            f"speaks plain {plain}, turn TLS off (drop --ssl, or ssl=False, and any https:// "
            "URL prefix; -i https alone means plain HTTP); otherwise check the certificates "
            "(--ssl-ca-file, --ssl-cert-file/--ssl-key-file)"
        ) from None

    # --- model description ----------------------------------------------------------------------
    def _call(self, what: str, func: Callable[[], Any]) -> Any:
        """Run ``func`` with retries on connection errors; raise ServerUnavailableError at the end."""
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return func()
            except Exception as exc:  # noqa: BLE001 - classified below
                if _is_timeout(exc):
                    raise ServerUnavailableError(
                        f"Triton server at {self.url} ({self.protocol}) did not answer in time "
                        f"({what}): it is stalled or overloaded"
                    ) from None
                if not _is_retryable(exc):
                    raise
                if attempt == self.retries:
                    raise ServerUnavailableError(
                        f"Triton server at {self.url} ({self.protocol}) is not reachable "
                        f"({what}, {self.retries + 1} attempts): {_describe(exc)}"
                    ) from None
                time.sleep(delay)
                delay *= 2

    def _read_model(self) -> None:
        from tritonclient.utils import InferenceServerException

        live = self._call("server live", self._control.is_server_live)
        if not live:
            raise ServerUnavailableError(f"Triton server at {self.url} reports it is not live")
        try:
            ready = self._call(
                "model ready",
                lambda: self._control.is_model_ready(self.model_name, self.model_version),
            )
        except InferenceServerException as exc:  # e.g. INVALID_ARGUMENT for the version
            raise ModelNotReadyError(
                f"model {self.model_name!r} (version {self.model_version or 'latest'}) on "
                f"{self.url}: {_describe(exc)}"
            ) from None
        if not ready:
            available = self._model_index()
            raise ModelNotReadyError(
                f"model {self.model_name!r} (version {self.model_version or 'latest'}) is not "
                f"ready on {self.url}; models there: {available or 'none'}"
            )
        try:
            if self.protocol == "http":
                meta = self._control.get_model_metadata(self.model_name, self.model_version)
                cfg = self._control.get_model_config(self.model_name, self.model_version)
            else:
                meta = self._control.get_model_metadata(
                    self.model_name, self.model_version, as_json=True
                )
                cfg = self._control.get_model_config(
                    self.model_name, self.model_version, as_json=True
                )["config"]
        except InferenceServerException as exc:
            raise ModelNotReadyError(
                f"cannot read metadata of {self.model_name!r} on {self.url}: {_describe(exc)}"
            ) from None
        self.max_batch_size = int(cfg.get("max_batch_size", 0))
        inp = meta["inputs"][0]
        self.input_name: str = inp["name"]
        self.input_datatype: str = inp["datatype"]
        shape = [int(d) for d in inp["shape"]]
        self.input_shape: tuple[int, ...] = tuple(shape[1:] if self.max_batch_size > 0 else shape)
        if len(self.input_shape) != 3:
            raise TritonClientError(
                f"model {self.model_name!r}: expected a [3,H,W] input, got {list(self.input_shape)}"
            )
        self.output_names: list[str] = [o["name"] for o in meta["outputs"]]
        skip = 1 if self.max_batch_size > 0 else 0
        self.output_shapes: dict[str, tuple[int, ...]] = {
            o["name"]: tuple(int(d) for d in o["shape"][skip:]) for o in meta["outputs"]
        }
        self.output_datatypes: dict[str, str] = {o["name"]: o["datatype"] for o in meta["outputs"]}

    def _model_index(self) -> list[str]:
        try:
            index = self._control.get_model_repository_index()
        except Exception:  # noqa: BLE001 - only used to enrich an error message
            return []
        if self.protocol == "grpc":
            return [f"{m.name} ({m.state or 'unknown'})" for m in index.models]
        return [f"{m['name']} ({m.get('state', 'unknown')})" for m in index]

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input (width, height)."""
        return int(self.input_shape[2]), int(self.input_shape[1])

    @property
    def num_classes(self) -> int:
        """Classes of the coverage output (its channel count)."""
        cov = [n for n in self.output_names if "cov" in n]
        if not cov:
            raise TritonClientError(f"model {self.model_name!r} has no coverage output")
        return int(self.output_shapes[cov[0]][0])

    def check_classes(self, class_names: Sequence[str], source: str = "the class list") -> None:
        """Raise :class:`ClassCountError` unless ``class_names`` names every class of the model.

        Call it before the first request: a config with fewer classes than the model would
        only fail in the postprocessing, with requests in flight.
        """
        count = self.num_classes
        if len(class_names) != count:
            raise ClassCountError(
                f"model {self.model_name!r} on {self.url} has {count} classes (channels of its "
                f"coverage output) but {source} names {len(class_names)}: "
                f"{', '.join(map(str, class_names)) or 'none'}; give {count} class names "
                "(--class_list) or a config with as many classes"
            )

    # --- requests -------------------------------------------------------------------------------
    def check_batch(self, tensor: np.ndarray) -> np.ndarray:
        """Validate shape and batch size before any request; returns a contiguous array."""
        tensor = np.asarray(tensor)
        if tensor.ndim != 4 or tuple(tensor.shape[1:]) != self.input_shape:
            raise ValueError(
                f"model {self.model_name!r} input {self.input_name!r} expects "
                f"[N, {', '.join(map(str, self.input_shape))}], got {list(tensor.shape)}"
            )
        if self.max_batch_size > 0 and len(tensor) > self.max_batch_size:
            raise ValueError(
                f"batch of {len(tensor)} exceeds max_batch_size {self.max_batch_size} of model "
                f"{self.model_name!r} (server config); use a batch size <= {self.max_batch_size}"
            )
        if len(tensor) == 0:
            raise ValueError("empty batch")
        dtype = _NUMPY_DTYPES.get(self.input_datatype, np.float32)
        return np.ascontiguousarray(tensor, dtype=dtype)

    def _inputs_outputs(self, tensor: np.ndarray, slot: Slot | None = None) -> tuple[list, list]:
        inp = self._module.InferInput(self.input_name, list(tensor.shape), self.input_datatype)
        if slot is not None:  # the tensor already lies in the registered region
            inp.set_shared_memory(slot.name, slot.byte_size(len(tensor)))
        elif self.protocol == "http":
            inp.set_data_from_numpy(tensor, binary_data=True)
        else:
            inp.set_data_from_numpy(tensor)
        if self.protocol == "http":
            outs = [
                self._module.InferRequestedOutput(n, binary_data=True) for n in self.output_names
            ]
        else:
            outs = [self._module.InferRequestedOutput(n) for n in self.output_names]
        if slot is not None and slot.outputs:  # the server writes the outputs after the input
            for out in outs:
                size, offset = slot.output_area(out.name(), len(tensor))
                out.set_shared_memory(slot.name, size, offset=offset)
        return [inp], outs

    # --- shared memory --------------------------------------------------------------------------
    @property
    def transport(self) -> str:
        """How input tensors travel now: ``shared memory`` or ``request body`` (and why)."""
        if self._slots is not None and not self._slots.closed:
            return "shared memory"
        if self._shm_refused:
            return f"request body ({self._shm_refused})"
        return "request body"

    def _input_slots(self, batch_size: int, count: int) -> InputSlots | None:
        """Registered shared-memory slots for ``count`` batches of ``batch_size``, or None.

        ``auto`` falls back to the request body (once, with a warning) when the server cannot
        use shared memory; ``system`` raises :class:`TritonClientError` instead.
        """
        if self.shared_memory == "none" or self._shm_refused:
            return None
        if self.shared_memory == "auto" and not is_loopback(self.url):
            self._shm_refused = "server not on this machine"
            return None
        dtype = _NUMPY_DTYPES.get(self.input_datatype, np.float32)
        if self._slots is not None and self._slots.fits(batch_size, count, self.input_shape, dtype):
            try:
                self._slots.ensure_registered()
                return self._slots
            except SharedMemoryUnavailable:
                pass  # made anew below
        self._close_slots()
        outputs = {
            name: (self.output_shapes[name], _NUMPY_DTYPES[self.output_datatypes[name]])
            for name in self.output_names
            if self.output_datatypes.get(name) in _NUMPY_DTYPES
            and all(d > 0 for d in self.output_shapes[name])
        }
        if len(outputs) != len(self.output_names):
            outputs = {}  # a variable-size output: all come back in the response
        try:
            self._slots = InputSlots(
                self._control, count, (batch_size, *self.input_shape), dtype=dtype, outputs=outputs
            )
        except SharedMemoryUnavailable as exc:
            if self.shared_memory == "system":
                raise TritonClientError(f"shared memory unavailable: {exc}") from None
            self._shm_refused = str(exc)
            warnings.warn(
                f"sending tensors in the request body: {exc}", RuntimeWarning, stacklevel=3
            )
            return None
        return self._slots

    def _close_slots(self) -> None:
        if self._slots is not None:
            # a server that stopped answering is not asked to unregister: the files are
            # unlinked and the server's sweep releases its registrations
            self._slots.close(unregister=self._unanswering is None)
            self._slots = None

    def _outputs(self, result, item: _Pending | None = None) -> dict[str, np.ndarray]:
        if item is not None and item.slot is not None and item.slot.outputs:
            return {n: v[: len(item.tensor)].copy() for n, v in item.slot.outputs.items()}
        return {name: result.as_numpy(name) for name in self.output_names}

    def infer_batch(self, tensor: np.ndarray, *, check: bool = True) -> dict[str, np.ndarray]:
        """One synchronous request: ``[N,3,H,W]`` -> ``{output name: [N, ...]}``.

        ``check=False`` skips the local shape check (the server then rejects a bad tensor and
        the error is raised as :class:`TritonClientError`).
        """
        from tritonclient.utils import InferenceServerException

        tensor = self.check_batch(tensor) if check else np.ascontiguousarray(tensor, np.float32)
        inputs, outputs = self._inputs_outputs(tensor)
        kwargs: dict[str, Any] = {"model_version": self.model_version, "outputs": outputs}
        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout_s
        try:
            result = self._call(
                "infer", lambda: self._client.infer(self.model_name, inputs, **kwargs)
            )
        except InferenceServerException as exc:
            raise TritonClientError(
                f"inference on {self.model_name!r} failed: {_describe(exc)}"
            ) from None
        return self._outputs(result)

    def infer_tensors(self, batches: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Many ``[N,3,H,W]`` batches with up to ``concurrency`` requests in flight (no retries).

        Outputs come back in input order; the first failure is raised as TritonClientError.
        """
        items = [_Pending(str(i), self.check_batch(b), [], []) for i, b in enumerate(batches)]
        if not items:
            return []
        slots = self._input_slots(max(len(i.tensor) for i in items), self.concurrency)
        results: list[dict[str, np.ndarray]] = []
        in_flight: list[_Pending] = []

        def collect() -> None:
            item = in_flight.pop(0)
            try:
                results.append(self._outputs(self._wait(item), item))
            finally:
                if slots is not None:
                    slots.release(item.slot)

        try:
            for item in items:
                if slots is not None:  # one copy into a registered region
                    item.slot = slots.acquire()
                    item.slot.array[: len(item.tensor)] = item.tensor
                self._submit(item)
                in_flight.append(item)
                if len(in_flight) >= self.concurrency:
                    collect()
            while in_flight:
                collect()
        except TritonClientError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported with the model name
            self._close_slots()  # requests may still read the regions: never reuse them
            raise TritonClientError(
                f"inference on {self.model_name!r} failed: {_describe(exc)}"
            ) from None
        return results

    # --- async pipeline -------------------------------------------------------------------------
    def _submit(self, item: _Pending) -> None:
        inputs, outputs = self._inputs_outputs(item.tensor, item.slot)
        rid = f"{item.request_id}.{item.attempt}"
        if self.protocol == "http":
            _quiet_gevent_hub()
            item.handle = self._client.async_infer(
                self.model_name,
                inputs,
                model_version=self.model_version,
                outputs=outputs,
                request_id=rid,
            )
        else:

            def callback(result, error, item=item):
                if error is not None:
                    item.done.set_exception(error)
                else:
                    item.done.set_result(result)

            self._client.async_infer(
                self.model_name,
                inputs,
                callback,
                model_version=self.model_version,
                outputs=outputs,
                request_id=rid,
                client_timeout=self.timeout_s,
            )

    def _wait(self, item: _Pending):
        """Block until ``item``'s response arrives; returns the result or raises its error."""
        if self.protocol == "http":
            return item.handle.get_result(block=True, timeout=self.timeout_s)
        return item.done.result(timeout=self.timeout_s + 5)

    def _batches(
        self,
        paths: Sequence[str],
        batch_size: int,
        prefetch: int,
        slots: InputSlots | None,
        load: Callable[[int, list[str], np.ndarray | None], Any] | None = None,
    ) -> Iterator[tuple[int, Any, Slot | None]]:
        """Preprocessed batches in order, read ahead ``prefetch`` batches by worker threads.

        With ``slots``, each worker takes a free slot and writes its batch straight into it;
        the caller releases the slot once the request is answered. ``load`` replaces the
        default reading (see :meth:`stream_images`).
        """
        from cvlab.inference.preprocess import preprocess_images

        def prepare(index: int, chunk: list[str]):
            slot = slots.acquire() if slots is not None else None
            try:
                out = slot.array if slot is not None else None
                if load is not None:
                    return load(index, chunk, out), slot
                return preprocess_images(chunk, self.input_size, "skip", out=out), slot
            except BaseException:
                if slots is not None:
                    slots.release(slot)
                raise

        chunks = [list(paths[i : i + batch_size]) for i in range(0, len(paths), batch_size)]
        workers = max(1, self.preprocess_workers)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cvlab-preprocess") as pool:
            futures: queue.SimpleQueue = queue.SimpleQueue()
            for ahead, chunk in enumerate(chunks[:prefetch]):
                futures.put(pool.submit(prepare, ahead, chunk))
            for index in range(len(chunks)):
                batch, slot = futures.get().result()
                if index + prefetch < len(chunks):
                    futures.put(pool.submit(prepare, index + prefetch, chunks[index + prefetch]))
                yield index, batch, slot

    @_sigterm_interrupts
    def stream_images(
        self,
        paths: Sequence[str | os.PathLike],
        on_outputs: Callable[[int, list[str], list[tuple[int, int]], dict[str, np.ndarray]], None],
        batch_size: int | None = None,
        *,
        async_mode: bool = True,
        progress: bool = True,
        load: Callable[[int, list[str], np.ndarray | None], Any] | None = None,
    ) -> list[RequestError]:
        """Read and preprocess image files, send them in batches and hand back raw outputs.

        The transport of the inference path (:mod:`cvlab.triton.pipeline` turns the outputs
        into Detections): ``on_outputs(batch_index, paths, original_sizes, outputs)`` is called
        once per answered batch, in completion order, with ``outputs`` as
        ``{name: [n, ...]}`` arrays the caller owns. Up to ``concurrency`` requests are in
        flight (``async_mode``); unreadable images are skipped with a warning. Failed requests
        are retried, then returned (and kept in :attr:`errors`); nothing is raised for them.

        ``load(batch_index, paths, out)`` replaces the default reading
        (``preprocess_images(paths, self.input_size, "skip", out=out)``): it runs in the reading
        threads, returns an :class:`~cvlab.inference.preprocess.ImageBatch` and writes its tensor
        into ``out`` (a shared-memory slot) when ``out`` is not None. The pipeline uses it to
        keep each decoded frame for its overlay; an exception it raises ends the stream.

        SIGTERM and SIGHUP stop it as Ctrl-C does (:func:`sigterm_as_interrupt`): requests in
        flight are waited for (bounded), then the shared-memory regions are unregistered.
        """
        paths = [str(p) for p in paths]
        batch_size = int(batch_size or self.max_batch_size or 1)
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        if self.max_batch_size > 0 and batch_size > self.max_batch_size:
            raise ValueError(
                f"batch size {batch_size} exceeds max_batch_size {self.max_batch_size} of model "
                f"{self.model_name!r} (server config); use -b <= {self.max_batch_size}"
            )
        self.errors = []
        self._unanswering = None
        in_flight: list[_Pending] = []
        window = self.concurrency if async_mode else 1
        server_down: str | None = None
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(paths), desc=f"infer {self.model_name}", unit="img")

        prefetch = max(2, self.preprocess_workers + 1)
        slots = self._input_slots(batch_size, window + prefetch) if paths else None

        def release(slot: Slot | None) -> None:
            if slots is not None:
                slots.release(slot)

        def finish(item: _Pending) -> None:
            try:
                answer(item)
            finally:
                release(item.slot)

        last_answer = time.monotonic()

        def answer(item: _Pending) -> None:
            nonlocal server_down, last_answer
            while True:
                if server_down:  # not waited for: the server is gone or stopped answering
                    self.errors.append(RequestError(item.request_id, item.paths, server_down))
                    if bar is not None:
                        bar.update(len(item.paths))
                    return
                try:
                    result = self._wait(item)
                    last_answer = time.monotonic()
                    break
                except Exception as exc:  # noqa: BLE001 - every failure is recorded, not raised
                    if _is_timeout(exc) and time.monotonic() - last_answer >= self.timeout_s:
                        # nothing answered for --timeout seconds: the server stalled (SIGSTOP,
                        # a hung host); the remaining frames fail at once, nothing more is asked
                        server_down = self._unanswering = (
                            f"Triton server at {self.url} stopped answering: no response "
                            f"within {self.timeout_s:g} s (the timeout)"
                        )
                        continue
                    forgotten = slots is not None and _is_forgotten_region(exc)
                    retry = forgotten or _is_retryable(exc)
                    if retry and item.attempt < self.retries and not server_down:
                        if forgotten:  # registered again, then sent again at once
                            with contextlib.suppress(SharedMemoryUnavailable):
                                slots.ensure_registered()
                        else:
                            time.sleep(self.backoff_s * 2**item.attempt)
                        item.attempt += 1
                        item.done = Future()
                        try:
                            self._submit(item)
                            continue
                        except Exception as exc2:  # noqa: BLE001
                            exc = exc2
                    message = _describe(exc)
                    if _is_retryable(exc) and not self._server_live():
                        server_down = f"Triton server at {self.url} went away: {message}"
                        message = server_down
                    self.errors.append(RequestError(item.request_id, item.paths, message))
                    if bar is not None:
                        bar.update(len(item.paths))
                    return
            on_outputs(int(item.request_id), item.paths, item.sizes, self._outputs(result, item))
            if bar is not None:
                bar.update(len(item.paths))

        batches = self._batches(paths, batch_size, prefetch, slots, load)
        completed = False
        try:
            for index, batch, slot in batches:
                if bar is not None and batch.skipped:
                    bar.update(len(batch.skipped))
                item = _Pending(str(index), batch.tensor, batch.original_sizes, batch.paths)
                item.slot = slot
                if len(batch) == 0 or server_down:
                    if server_down:
                        self.errors.append(RequestError(item.request_id, item.paths, server_down))
                    release(slot)
                    continue
                try:
                    self._submit(item)
                except Exception as exc:  # noqa: BLE001
                    release(slot)
                    if _is_retryable(exc):
                        item.handle = None
                        self.errors.append(
                            RequestError(item.request_id, item.paths, _describe(exc))
                        )
                        if not self._server_live():
                            server_down = f"Triton server at {self.url} went away: {_describe(exc)}"
                        continue
                    raise
                in_flight.append(item)
                while len(in_flight) >= window:
                    finish(in_flight.pop(0))
            while in_flight:
                finish(in_flight.pop(0))
            completed = True
        finally:
            if not completed and slots is not None:
                # interrupted (Ctrl-C, a bug): workers waiting for a slot are woken first; the
                # pool then waits for the running ones (they write into the regions: unmapped
                # under them, the process would crash), and only then are the regions
                # unregistered (once the requests in flight are answered) and unmapped
                slots.stop_acquiring()
            batches.close()
            if not completed:
                self._close_slots()
            if bar is not None:
                bar.close()
        return list(self.errors)

    def _server_live(self) -> bool:
        try:
            return bool(self._control.is_server_live())
        except Exception:  # noqa: BLE001 - any failure means "not live"
            return False

    def close(self) -> None:
        """Unregister the shared-memory slots and close the connections.

        Requests still in flight (an interrupted run, a server that stopped answering) are
        abandoned: HTTP's pending greenlets are killed rather than waited for.
        """
        try:
            self._close_slots()
        finally:
            clients = [self._client]
            if not isinstance(self._control, _Deadlines):  # gRPC's share one channel
                clients.append(self._control)
            for client in clients:
                pool = getattr(client, "_pool", None)  # tritonclient.http's greenlets
                if pool is not None:
                    with contextlib.suppress(Exception):
                        pool.kill(block=True, timeout=1.0)
                with contextlib.suppress(Exception):
                    client.close()

    def __enter__(self) -> TritonDetectNetClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
