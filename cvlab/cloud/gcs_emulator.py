"""A local Google Cloud Storage: gcp-storage-emulator's JSON API server in this process, and the
environment that makes the bundled tritonserver read ``gs://`` from it.

:class:`GcsEmulator` serves an in-memory store on 127.0.0.1 (port 0: a free port) from a daemon
thread; :meth:`~GcsEmulator.stop` shuts the server down, closes its socket and joins the thread.
:func:`triton_environment` is the set of variables tritonserver needs to load a ``gs://`` model
repository from such an emulator without any Google credentials.

Example:
    >>> emulator = GcsEmulator("models").start()
    >>> emulator.endpoint == f"http://127.0.0.1:{emulator.port}"
    True
    >>> emulator.client().bucket("models").exists()  # doctest: +SKIP
    True
    >>> env = triton_environment(emulator.endpoint, "/tmp/triton-gcs")
    >>> env["CLOUD_STORAGE_EMULATOR_ENDPOINT"] == emulator.endpoint
    True
    >>> emulator.stop()
    >>> emulator.running
    False
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvlab.errors import CvlabError

if TYPE_CHECKING:  # pragma: no cover
    from google.cloud import storage

__all__ = ["GcsEmulator", "GcsEmulatorError", "check_endpoint", "triton_environment"]


class GcsEmulatorError(CvlabError, RuntimeError):
    """The emulator did not start (or was used while stopped)."""


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` without a trailing ``/``; ValueError unless it starts with http(s)://.

    >>> check_endpoint("http://127.0.0.1:9023/")
    'http://127.0.0.1:9023'
    """
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(
            "a GCS emulator endpoint (STORAGE_EMULATOR_HOST) must include the scheme, "
            f"e.g. http://127.0.0.1:9023 (got {endpoint!r})"
        )
    return endpoint.rstrip("/")


def triton_environment(endpoint: str, mount_dir: str | os.PathLike) -> dict[str, str]:
    """Environment for the bundled tritonserver to read ``gs://`` from the emulator at ``endpoint``.

    ``endpoint`` is ``http://HOST:PORT``. The metadata server points at a closed loopback port
    (the credential lookup fails at once instead of waiting for GCE) and
    GOOGLE_APPLICATION_CREDENTIALS is blanked (an inherited key file is not used). Triton copies
    the repository into ``mount_dir`` (made absolute; :class:`cvlab.triton.server.TritonServer`
    creates it).
    """
    from cvlab.triton.server import free_port

    endpoint = check_endpoint(endpoint)
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    return {
        "CLOUD_STORAGE_EMULATOR_ENDPOINT": endpoint,
        "STORAGE_EMULATOR_HOST": endpoint,
        "GCE_METADATA_ROOT": closed,
        "GCE_METADATA_HOST": closed,
        "GOOGLE_APPLICATION_CREDENTIALS": "",
        "TRITON_GCS_MOUNT_DIRECTORY": str(Path(mount_dir).absolute()),
    }


class GcsEmulator:
    """gcp-storage-emulator on ``host`` (in memory), as a context manager.

    ``bucket`` is created at start. ``port`` 0 picks a free port; after :meth:`start`,
    ``port`` and ``endpoint`` (``http://HOST:PORT``) name the server, and stay readable after
    :meth:`stop`.
    """

    def __init__(
        self,
        bucket: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 10.0,
    ) -> None:
        self.bucket = bucket
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self._server: Any = None
        self._started = False

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def endpoint(self) -> str:
        """``http://HOST:PORT`` of the server (the value for STORAGE_EMULATOR_HOST)."""
        if not self._started:
            raise GcsEmulatorError("GcsEmulator.endpoint: the emulator was never started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> GcsEmulator:
        """Start serving (no-op when running); :class:`GcsEmulatorError` if it does not come up."""
        if self._server is not None:
            return self
        from gcp_storage_emulator.server import create_server

        server = create_server(self.host, self.port, in_memory=True, default_bucket=self.bucket)
        thread = server._api  # a threading.Thread running HTTPServer.serve_forever
        thread.daemon = True  # a forgotten emulator never blocks interpreter exit
        thread.name = f"gcs-emulator-{self.host}:{self.port}"
        thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not thread.is_running.wait(0.05):
            if not thread.is_alive() or time.monotonic() > deadline:
                self._shutdown(server)
                raise GcsEmulatorError(
                    f"gcp-storage-emulator did not start on {self.host}:{self.port} "
                    "(see the thread's traceback above)"
                )
        self.port = thread._httpd.server_address[1]  # the emulator has no public accessor
        self._server = server
        self._started = True
        return self

    def stop(self) -> None:
        """Shut the server down, close its socket and join its thread (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            self._shutdown(server)

    @staticmethod
    def _shutdown(server: Any) -> None:
        server.stop()  # HTTPServer.shutdown() + server_close(), if it got that far
        # APIThread.join() only stops the server; join the thread itself too.
        threading.Thread.join(server._api, timeout=5)

    def wipe(self, keep_buckets: bool = True) -> None:
        """Delete every object (and, unless ``keep_buckets``, every bucket)."""
        if self._server is None:
            raise GcsEmulatorError("GcsEmulator.wipe: the emulator is not running")
        self._server.wipe(keep_buckets=keep_buckets)

    def client(self, project: str | None = None) -> storage.Client:
        """A ``google.cloud.storage.Client`` on this emulator (anonymous credentials)."""
        from cvlab.cloud.gcs import make_client

        return make_client(project=project, emulator_host=self.endpoint)

    def triton_env(self, mount_dir: str | os.PathLike) -> dict[str, str]:
        """:func:`triton_environment` for this emulator."""
        return triton_environment(self.endpoint, mount_dir)

    def __enter__(self) -> GcsEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = f"{self.host}:{self.port}"
        return f"GcsEmulator(bucket={self.bucket!r}, {where}, {state})"
