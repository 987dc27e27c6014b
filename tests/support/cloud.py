"""Shared fixtures of the cloud tests: a real GCS API server (gcp-storage-emulator) in-process.

The server is :class:`cvlab.cloud.gcs_emulator.GcsEmulator`; the tests add a record of the
request lines it served. Import ``gcs_emulator_fixture, gcs_emulator_server_fixture`` into a
test module; tests then ask for ``gcs_emulator`` (fresh, emptied bucket) by name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from cvlab.cloud.gcs_emulator import GcsEmulator
from cvlab.triton.server import free_port as closed_loopback_port  # nothing listens there

__all__ = [
    "BUCKET",
    "RecordingGcsEmulator",
    "closed_loopback_port",
    "gcs_emulator_fixture",
    "gcs_emulator_server_fixture",
]

BUCKET = "cvlab-test-bucket"
_SERVER_LOGGER = "gcp_storage_emulator.server"  # logs one line per request at INFO


class _RequestLog(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


class RecordingGcsEmulator(GcsEmulator):
    """A :class:`GcsEmulator` that keeps, in ``requests``, the request lines it served
    (e.g. ``"GET /storage/v1/b/BUCKET/o HTTP/1.1" 200 -``) while it runs."""

    def __init__(self, bucket: str) -> None:
        super().__init__(bucket)
        self.requests: list[str] = []
        self._handler = _RequestLog(self.requests)
        self._old_level = logging.NOTSET

    def start(self) -> RecordingGcsEmulator:
        logger = logging.getLogger(_SERVER_LOGGER)
        if self._handler not in logger.handlers:
            self._old_level = logger.level
            logger.setLevel(logging.INFO)
            logger.addHandler(self._handler)
        super().start()
        return self

    def stop(self) -> None:
        super().stop()
        logger = logging.getLogger(_SERVER_LOGGER)
        if self._handler in logger.handlers:
            logger.removeHandler(self._handler)
            logger.setLevel(self._old_level)


@pytest.fixture(scope="module", name="gcs_emulator_server")
def gcs_emulator_server_fixture() -> Iterator[RecordingGcsEmulator]:
    """One in-memory emulator on 127.0.0.1 per test module (stopping one costs 0.5 s)."""
    with RecordingGcsEmulator(BUCKET) as emulator:
        yield emulator


@pytest.fixture(name="gcs_emulator")
def gcs_emulator_fixture(gcs_emulator_server, monkeypatch) -> RecordingGcsEmulator:
    """The module's emulator, emptied (bucket :data:`BUCKET` kept); STORAGE_EMULATOR_HOST set."""
    gcs_emulator_server.wipe(keep_buckets=True)
    gcs_emulator_server.requests.clear()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator_server.endpoint)
    return gcs_emulator_server
