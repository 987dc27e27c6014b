"""cvlab.cloud.gcs_emulator: the in-process GCS API server and the tritonserver environment."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from cvlab.cloud.gcs import list_blobs, upload_directory
from cvlab.cloud.gcs_emulator import (
    GcsEmulator,
    GcsEmulatorError,
    check_endpoint,
    triton_environment,
)
from cvlab.errors import CvlabError


def refuses(port: int) -> bool:
    """True when nothing accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def emulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gcs-emulator-")]


def test_serves_a_bucket_then_stops_without_leaking(tmp_path):
    (tmp_path / "repo" / "m").mkdir(parents=True)
    (tmp_path / "repo" / "m" / "config.pbtxt").write_text('name: "m"')
    before = emulator_threads()
    with GcsEmulator("lab-bucket") as emulator:
        assert emulator.running and emulator.port > 0
        assert emulator.endpoint == f"http://127.0.0.1:{emulator.port}"
        assert emulator.start() is emulator  # already running: no second server
        (thread,) = [t for t in emulator_threads() if t not in before]
        assert thread.daemon
        client = emulator.client()
        report = upload_directory(
            tmp_path / "repo", "gs://lab-bucket/r", client=client, progress=False
        )
        assert report.ok
        assert [b.path for b in list_blobs("gs://lab-bucket/r", client=client)] == [
            "m/config.pbtxt"
        ]
        emulator.wipe()
        assert list_blobs("gs://lab-bucket/r", client=client) == []  # bucket kept, objects gone
    assert not emulator.running and not thread.is_alive()
    assert emulator_threads() == before
    assert refuses(emulator.port)  # the listening socket is closed
    assert emulator.endpoint.endswith(f":{emulator.port}")  # still readable after stop
    emulator.stop()  # idempotent


def test_two_emulators_get_two_free_ports():
    with GcsEmulator() as a, GcsEmulator() as b:
        assert a.port != b.port and not refuses(a.port) and not refuses(b.port)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # bind fails
def test_unstarted_or_unstartable_emulator_is_an_error():
    emulator = GcsEmulator("b")
    with pytest.raises(GcsEmulatorError, match="never started"):
        _ = emulator.endpoint
    with pytest.raises(GcsEmulatorError, match="not running"):
        emulator.wipe()
    with socket.socket() as taken:  # a port in use: the server thread cannot bind
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(GcsEmulatorError, match="did not start") as info:
            GcsEmulator(port=port, startup_timeout=5).start()
    assert isinstance(info.value, CvlabError)
    assert emulator_threads() == []


def test_triton_environment(tmp_path):
    env = triton_environment("http://127.0.0.1:9023/", tmp_path / "mount")
    assert env["CLOUD_STORAGE_EMULATOR_ENDPOINT"] == env["STORAGE_EMULATOR_HOST"]
    assert env["STORAGE_EMULATOR_HOST"] == "http://127.0.0.1:9023"
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == ""  # an inherited key file is not used
    assert env["TRITON_GCS_MOUNT_DIRECTORY"] == str(tmp_path / "mount")
    assert env["GCE_METADATA_ROOT"] == env["GCE_METADATA_HOST"]
    host, port = env["GCE_METADATA_ROOT"].split(":")
    assert host == "127.0.0.1" and refuses(int(port))  # metadata lookups fail at once
    relative = triton_environment("http://127.0.0.1:9023", "mount")
    assert relative["TRITON_GCS_MOUNT_DIRECTORY"] == str(Path.cwd() / "mount")
    with GcsEmulator() as emulator:
        env = emulator.triton_env(tmp_path)
        assert env["CLOUD_STORAGE_EMULATOR_ENDPOINT"] == emulator.endpoint


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9023", "localhost", ""])
def test_endpoint_needs_a_scheme(endpoint, tmp_path):
    with pytest.raises(ValueError, match="http://"):
        triton_environment(endpoint, tmp_path)
    with pytest.raises(ValueError, match="http://"):
        check_endpoint(endpoint)
