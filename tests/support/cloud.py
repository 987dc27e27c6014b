"""Shared fixtures of the cloud tests: a real GCS API server (gcp-storage-emulator) in-process.

Import ``gcs_emulator_fixture, gcs_emulator_server_fixture`` into a test module; tests then ask
for ``gcs_emulator`` (fresh, emptied bucket) by name.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

BUCKET = "cvlab-test-bucket"


@dataclass
class Emulator:
    """A running gcp-storage-emulator: its endpoint, a client and the request lines it served."""

    host: str
    port: int
    server: object
    requests: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self):
        from cvlab.cloud.gcs import make_client

        return make_client(emulator_host=self.endpoint)


class _RequestLog(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


@pytest.fixture(scope="module", name="gcs_emulator_server")
def gcs_emulator_server_fixture() -> Iterator[Emulator]:
    """One in-memory emulator on 127.0.0.1 per test module (stopping one costs 0.5 s)."""
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    server.start()
    port = server._api._httpd.server_address[1]  # the emulator has no public accessor
    emulator = Emulator("127.0.0.1", port, server)
    handler = _RequestLog(emulator.requests)
    logger = logging.getLogger("gcp_storage_emulator.server")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield emulator
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        server.stop()


@pytest.fixture(name="gcs_emulator")
def gcs_emulator_fixture(gcs_emulator_server, monkeypatch) -> Emulator:
    """The module's emulator, emptied (bucket :data:`BUCKET` kept); STORAGE_EMULATOR_HOST set."""
    gcs_emulator_server.server.wipe(keep_buckets=True)
    gcs_emulator_server.requests.clear()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator_server.endpoint)
    return gcs_emulator_server


def closed_loopback_port() -> int:
    """A loopback port with nothing listening (bind, read the number, close)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
