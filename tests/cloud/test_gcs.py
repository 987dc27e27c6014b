"""cvlab.cloud.gcs against a real local GCS API server (gcp-storage-emulator, in-process)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from support.cloud import (  # noqa: F401
    BUCKET,
    closed_loopback_port,
    gcs_emulator_fixture,
    gcs_emulator_server_fixture,
)

from cvlab.cloud.gcs import (
    GcsBucketNotFoundError,
    GcsCredentialsError,
    GcsLocation,
    GcsSyncError,
    download_directory,
    file_crc32c,
    file_md5,
    list_blobs,
    make_client,
    upload_directory,
    verify,
)

URL = f"gs://{BUCKET}/tlt/triton-model"
CHUNK = 256 * 1024


def make_tree(root: Path, big_size: int = 0) -> dict[str, bytes]:
    """A small model-repository-like tree; returns relative path -> content."""
    files = {
        "peoplenet/config.pbtxt": b'name: "peoplenet"\nplatform: "onnxruntime_onnx"\n',
        "peoplenet/1/model.onnx": os.urandom(3000),
        "peoplenet/labels.txt": b"person\nbag\nface\n",
        "other/config.pbtxt": b'name: "other"\n',
        "other/1/model.onnx": os.urandom(1000),
    }
    if big_size:
        files["peoplenet/2/model.plan"] = os.urandom(big_size)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_location_parse_and_names():
    loc = GcsLocation.parse("gs://my-bucket/tlt//triton-model/")
    assert (loc.bucket, loc.prefix) == ("my-bucket", "tlt/triton-model")
    assert loc.url == "gs://my-bucket/tlt/triton-model"
    assert loc.blob_name("a/b.txt") == "tlt/triton-model/a/b.txt"
    assert loc.relative("tlt/triton-model/a/b.txt") == "a/b.txt"
    assert GcsLocation.parse("gs://bucket").blob_name("x") == "x"
    for bad in ("s3://bucket/x", "gs:///x", "/local/path", "gs://Bad_Bucket!/x"):
        with pytest.raises(ValueError, match="gs://|bucket"):
            GcsLocation.parse(bad)


def test_checksums_match_hashlib_and_crc32c(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"123456789")
    # crc32c("123456789") = 0xE3069283 (the standard check value).
    assert base64.b64decode(file_crc32c(path)) == bytes.fromhex("e3069283")
    assert file_md5(path) == base64.b64encode(hashlib.md5(b"123456789").digest()).decode()


def test_emulator_host_needs_scheme(monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:9023")
    with pytest.raises(ValueError, match="http://"):
        make_client()


def test_upload_download_verify_round_trip(gcs_emulator, tmp_path):
    """Uploaded while a file and a folder are being written atomically: their temporaries
    are left out (as are Python caches); other dot files are content."""
    from cvlab.fileio import atomic_directory, atomic_path

    src = tmp_path / "repo"
    files = make_tree(src)
    files["data/.flir-split.json"] = b"{}"
    (src / "data").mkdir()
    (src / "data" / ".flir-split.json").write_bytes(b"{}")
    (src / "peoplenet" / "__pycache__").mkdir()
    (src / "peoplenet" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"cache")
    client = gcs_emulator.client()
    with (
        pytest.raises(InterruptedError),  # two writes under way, abandoned after the upload
        atomic_path(src / "peoplenet" / "1" / "model.onnx") as half_file,
        atomic_directory(src / "data" / "tfrecords") as half_folder,
    ):
        half_file.write_bytes(b"half")
        (half_folder / "fold-000").write_bytes(b"half")
        report = upload_directory(src, URL, client=client, workers=4, progress=False)
        raise InterruptedError
    assert sorted(report.transferred) == sorted(files) and report.skipped == []
    assert report.bytes_transferred == sum(len(v) for v in files.values())
    listed = {b.path: b for b in list_blobs(URL, client=client)}
    assert set(listed) == set(files)
    for rel, data in files.items():
        assert listed[rel].size == len(data)
        assert listed[rel].crc32c == file_crc32c(src / rel)
    assert verify(src, URL, client=client) == []

    dst = tmp_path / "copy"
    down = download_directory(URL, dst, client=client, progress=False)
    assert sorted(down.transferred) == sorted(files)
    for rel, data in files.items():
        assert (dst / rel).read_bytes() == data
    assert not list(dst.rglob("*.tmp"))
    assert download_directory(URL, dst, client=client, progress=False).skipped == sorted(files)


def test_second_upload_skips_unchanged_and_sends_changed(gcs_emulator, tmp_path):
    src = tmp_path / "repo"
    make_tree(src)
    client = gcs_emulator.client()
    upload_directory(src, URL, client=client, progress=False)
    (src / "peoplenet/config.pbtxt").write_bytes(b'name: "peoplenet"\nmax_batch_size: 16\n')
    (src / "peoplenet/new.txt").write_text("new")
    mismatches = verify(src, URL, client=client)
    assert {(m.path, m.kind) for m in mismatches} == {
        ("peoplenet/config.pbtxt", "different"),
        ("peoplenet/new.txt", "missing_remote"),
    }
    gcs_emulator.requests.clear()
    again = upload_directory(src, URL, client=client, progress=False)
    assert sorted(again.transferred) == ["peoplenet/config.pbtxt", "peoplenet/new.txt"]
    assert len(again.skipped) == 4
    uploads = [r for r in gcs_emulator.requests if "/upload/" in r]
    assert len(uploads) == 2, uploads
    assert verify(src, URL, client=client) == []
    # A remote-only object shows up as missing_local.
    (src / "peoplenet/new.txt").unlink()
    assert [(m.path, m.kind) for m in verify(src, URL, client=client)] == [
        ("peoplenet/new.txt", "missing_local")
    ]


def test_large_file_goes_resumable_in_several_chunks(gcs_emulator, tmp_path):
    src = tmp_path / "repo"
    files = make_tree(src, big_size=3 * CHUNK + 1234)
    client = gcs_emulator.client()
    chunks: list[tuple[str, int]] = []
    report = upload_directory(
        src,
        URL,
        client=client,
        progress=False,
        resumable_threshold=CHUNK,
        chunk_size=CHUNK,
        on_chunk=lambda rel, n: chunks.append((rel, n)),
    )
    assert report.resumable == ["peoplenet/2/model.plan"]
    big_chunks = [n for rel, n in chunks if rel == "peoplenet/2/model.plan"]
    assert big_chunks == [CHUNK, CHUNK, CHUNK, 1234]
    # The server saw one session start and several chunk PUTs for that object.
    sessions = [r for r in gcs_emulator.requests if "uploadType=resumable" in r]
    chunk_puts = [r for r in sessions if r.startswith('"PUT') and "upload_id=" in r]
    assert len(chunk_puts) >= 3, gcs_emulator.requests
    assert verify(src, URL, client=client) == []
    dst = tmp_path / "copy"
    download_directory(URL, dst, client=client, progress=False)
    assert (dst / "peoplenet/2/model.plan").read_bytes() == files["peoplenet/2/model.plan"]


def test_crash_after_two_files_then_rerun_completes(gcs_emulator, tmp_path):
    src = tmp_path / "repo"
    files = make_tree(src)
    client = gcs_emulator.client()
    done: list[str] = []

    def crash_after_two(rel: str) -> None:
        done.append(rel)
        if len(done) == 2:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        upload_directory(
            src, URL, client=client, workers=1, progress=False, on_file_done=crash_after_two
        )
    partial = {b.path for b in list_blobs(URL, client=client)}
    assert set(done) <= partial and len(partial) < len(files)
    report = upload_directory(src, URL, client=client, progress=False)
    assert set(report.skipped) == partial
    assert set(report.transferred) == set(files) - partial
    assert verify(src, URL, client=client) == []


def test_failure_inside_a_resumable_upload_leaves_no_partial_object(gcs_emulator, tmp_path):
    src = tmp_path / "repo"
    make_tree(src, big_size=3 * CHUNK)
    client = gcs_emulator.client()

    def fail_mid_file(rel: str, nbytes: int) -> None:
        if rel == "peoplenet/2/model.plan":
            raise ConnectionError("network dropped")

    with pytest.raises(GcsSyncError, match="model.plan") as info:
        upload_directory(
            src,
            URL,
            client=client,
            progress=False,
            resumable_threshold=CHUNK,
            chunk_size=CHUNK,
            on_chunk=fail_mid_file,
        )
    assert list(info.value.report.failed) == ["peoplenet/2/model.plan"]
    assert "re-run" in str(info.value)
    names = {b.path for b in list_blobs(URL, client=client)}
    assert "peoplenet/2/model.plan" not in names  # no half-written object
    assert len(names) == 5
    report = upload_directory(
        src, URL, client=client, progress=False, resumable_threshold=CHUNK, chunk_size=CHUNK
    )
    assert report.transferred == ["peoplenet/2/model.plan"] and len(report.skipped) == 5
    assert verify(src, URL, client=client) == []


def test_missing_bucket_is_named(gcs_emulator, tmp_path):
    make_tree(tmp_path)
    client = gcs_emulator.client()
    for call in (
        lambda: upload_directory(tmp_path, "gs://no-such-bucket/x", client=client, progress=False),
        lambda: list_blobs("gs://no-such-bucket/x", client=client),
        lambda: download_directory("gs://no-such-bucket/x", tmp_path / "d", client=client),
        lambda: verify(tmp_path, "gs://no-such-bucket/x", client=client),
    ):
        with pytest.raises(GcsBucketNotFoundError, match="'no-such-bucket'"):
            call()


def test_missing_local_directory_is_named(gcs_emulator, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        upload_directory(tmp_path / "nowhere", URL, client=gcs_emulator.client(), progress=False)


@pytest.fixture
def no_google_credentials(monkeypatch, tmp_path):
    """An environment where google.auth finds nothing and cannot reach a metadata server."""
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{closed_loopback_port()}")
    monkeypatch.setenv("GCE_METADATA_IP", f"127.0.0.1:{closed_loopback_port()}")
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    # google.auth reads NO_GCE_CHECK at import: without this it waits ~3 s for a metadata server.
    monkeypatch.setattr("google.auth.compute_engine._metadata._NO_GCE_CHECK", True, raising=False)


def test_no_credentials_gives_a_clear_message(no_google_credentials):
    with pytest.raises(GcsCredentialsError, match="application-default login") as info:
        make_client(project="p")
    assert "STORAGE_EMULATOR_HOST" in str(info.value)


def test_bad_key_file_is_not_echoed(no_google_credentials, monkeypatch, tmp_path, capsys):
    secret = "-----BEGIN PRIVATE KEY-----SECRETSECRET"
    key = tmp_path / "key.json"
    key.write_text('{"type": "service_account", "private_key": "' + secret + '"')  # broken JSON
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    with pytest.raises(GcsCredentialsError) as info:
        make_client(project="p")
    assert str(key) in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    out = capsys.readouterr()
    for text in (str(info.value), out.out, out.err):
        assert "SECRETSECRET" not in text


def test_download_refuses_object_names_that_leave_the_destination(gcs_emulator, tmp_path, capsys):
    """Issue 20 item 2: ``dl//ABS/x`` (an absolute name below the prefix) and a symbolic link
    out of the destination are refused and listed, exit 2; the rest downloads. (Real GCS also
    takes ``..`` parts, which the emulator refuses to store: tests/test_fileio.py covers them.)"""
    from cvlab.cli import main

    outside = tmp_path / "outside"
    outside.mkdir()
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "link").symlink_to(outside)
    bucket = gcs_emulator.client().bucket(BUCKET)
    names = {
        "dl/ok/model.onnx": "inside",
        f"dl/{outside}/abs.txt": "absolute",  # dl//tmp/... once joined
        "dl/link/through.txt": "symlink",
    }
    for name, text in names.items():
        bucket.blob(name).upload_from_string(text)
    status = main(["cloud", "download", f"gs://{BUCKET}/dl", str(dst), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2
    assert (dst / "ok" / "model.onnx").read_text() == "inside"
    assert list(outside.iterdir()) == []
    for rel in (f"{outside}/abs.txt", "link/through.txt"):
        assert f"{rel}: refused" in err
    assert len(err.strip().splitlines()) == 1
