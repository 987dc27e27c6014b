"""Google Cloud Storage sync for Triton model repositories (google-cloud-storage).

Upload a local folder to ``gs://bucket/prefix`` in parallel, skipping files whose crc32c (or md5
when the object has no crc32c) already matches; large files go through resumable uploads in
chunks. Download, list and verify work the same way. Works against real GCS (default
credentials) or a local emulator (``STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT``, e.g. a
:class:`cvlab.cloud.gcs_emulator.GcsEmulator`).

Example::

    client = make_client(emulator_host="http://127.0.0.1:9023")
    report = upload_directory("model_repository", "gs://my-bucket/triton-model-repository", client=client)
    assert verify("model_repository", "gs://my-bucket/triton-model-repository", client=client) == []

Credentials are never printed or written anywhere by this module.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import google_crc32c
from tqdm.auto import tqdm

from cvlab.cloud.gcs_emulator import check_endpoint
from cvlab.errors import CvlabError
from cvlab.fileio import UnsafePathError, atomic_path, safe_path

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from google.cloud import storage

__all__ = [
    "BlobInfo",
    "GcsBucketNotFoundError",
    "GcsCredentialsError",
    "GcsError",
    "GcsLocation",
    "GcsSyncError",
    "Mismatch",
    "SyncReport",
    "download_directory",
    "file_crc32c",
    "file_md5",
    "list_blobs",
    "make_client",
    "mismatches_dataframe",
    "upload_directory",
    "verify",
]

#: Files at least this large go through a resumable upload (the library's multipart limit).
DEFAULT_RESUMABLE_THRESHOLD = 8 * 1024 * 1024
#: Chunk size of resumable uploads; GCS needs a multiple of 256 KiB.
DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024
CHUNK_MULTIPLE = 256 * 1024
_READ_BLOCK = 1024 * 1024
EMULATOR_PROJECT = "cvlab-local"


class GcsError(CvlabError, RuntimeError):
    """Base class of the errors raised by :mod:`cvlab.cloud.gcs`."""


class GcsCredentialsError(GcsError):
    """No usable Google Cloud credentials were found."""


class GcsBucketNotFoundError(GcsError):
    """The bucket named in a ``gs://`` URL does not exist (or is not visible)."""


class GcsSyncError(GcsError):
    """Some files failed to transfer; the others are complete and a re-run finishes the job."""

    def __init__(self, message: str, report: SyncReport):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class GcsLocation:
    """A ``gs://bucket/prefix`` URL split into bucket and prefix (no leading/trailing '/').

    >>> GcsLocation.parse("gs://my-bucket/triton-model-repository/")
    GcsLocation(bucket='my-bucket', prefix='triton-model-repository')
    """

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str | GcsLocation) -> GcsLocation:
        """Parse ``gs://bucket[/prefix]``; raises ValueError naming the URL when malformed."""
        if isinstance(url, GcsLocation):
            return url
        if not isinstance(url, str) or not url.startswith("gs://"):
            raise ValueError(f"not a gs:// URL: {url!r} (expected gs://bucket/prefix)")
        bucket, _, prefix = url[len("gs://") :].partition("/")
        if not bucket:
            raise ValueError(f"gs:// URL without a bucket name: {url!r}")
        if not all(c.islower() or c.isdigit() or c in "-_." for c in bucket) or len(bucket) < 3:
            raise ValueError(
                f"invalid bucket name {bucket!r} in {url!r}: use 3+ lower-case letters, digits, -_."
            )
        prefix = "/".join(part for part in prefix.split("/") if part)
        return cls(bucket, prefix)

    @property
    def url(self) -> str:
        """The canonical ``gs://bucket/prefix`` form."""
        return f"gs://{self.bucket}/{self.prefix}" if self.prefix else f"gs://{self.bucket}"

    def blob_name(self, relative: str) -> str:
        """Object name of ``relative`` (a POSIX path below the prefix)."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def relative(self, blob_name: str) -> str:
        """Inverse of :meth:`blob_name`."""
        return blob_name[len(self.prefix) + 1 :] if self.prefix else blob_name

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class BlobInfo:
    """One object below a prefix: path relative to the prefix, size and checksums (base64)."""

    path: str
    size: int
    crc32c: str | None
    md5: str | None
    updated: Any = None


@dataclass
class SyncReport:
    """What an upload or download did. ``failed`` maps relative paths to error messages."""

    source: str
    destination: str
    transferred: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes_transferred: int = 0
    resumable: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"{self.source} -> {self.destination}: {len(self.transferred)} transferred "
            f"({self.bytes_transferred} bytes, {len(self.resumable)} resumable), "
            f"{len(self.skipped)} unchanged, {len(self.failed)} failed in {self.seconds:.2f} s"
        )

    def to_dataframe(self) -> pd.DataFrame:
        """One row per file with its outcome."""
        import pandas as pd

        rows = [{"path": p, "status": "transferred", "error": ""} for p in self.transferred]
        rows += [{"path": p, "status": "unchanged", "error": ""} for p in self.skipped]
        rows += [{"path": p, "status": "failed", "error": e} for p, e in self.failed.items()]
        return pd.DataFrame(rows, columns=["path", "status", "error"])


@dataclass(frozen=True)
class Mismatch:
    """A difference found by :func:`verify`: ``kind`` is missing_remote, missing_local or different."""

    path: str
    kind: str
    detail: str = ""


# --------------------------------------------------------------------------- client


def make_client(project: str | None = None, emulator_host: str | None = None) -> storage.Client:
    """A ``google.cloud.storage.Client`` for real GCS or a local emulator.

    ``emulator_host`` (or ``$STORAGE_EMULATOR_HOST``) must include ``http://``; the emulator is
    used with anonymous credentials. Otherwise Application Default Credentials are used and a
    :class:`GcsCredentialsError` explains how to provide them when none are found (the error
    never contains credential material).
    """
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    host = emulator_host or os.environ.get("STORAGE_EMULATOR_HOST")
    if host:
        host = check_endpoint(host)
        return storage.Client(
            project=project or EMULATOR_PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": host},
        )
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, default_project = google.auth.default(
            scopes=["https://www.googleapis.com/auth/devstorage.read_write"]
        )
    except DefaultCredentialsError as exc:
        # The original message may quote a key file's content on parse errors: do not chain it.
        key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        where = (
            f"GOOGLE_APPLICATION_CREDENTIALS={key_file!r} could not be loaded"
            if key_file
            else "no GOOGLE_APPLICATION_CREDENTIALS and no gcloud application-default login"
        )
        raise GcsCredentialsError(
            f"No usable Google Cloud credentials ({where}; {type(exc).__name__}). Run "
            "`gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
            "service-account key file, or set STORAGE_EMULATOR_HOST=http://HOST:PORT to use a "
            "local emulator."
        ) from None
    return storage.Client(project=project or default_project, credentials=credentials)


def _bucket(client: storage.Client, location: GcsLocation) -> storage.Bucket:
    """The bucket of ``location``; :class:`GcsBucketNotFoundError` when it does not exist."""
    from google.api_core.exceptions import Forbidden, NotFound

    try:
        return client.get_bucket(location.bucket)
    except NotFound:
        raise GcsBucketNotFoundError(
            f"GCS bucket {location.bucket!r} does not exist (from {location.url}); create it "
            f"with `gcloud storage buckets create gs://{location.bucket}`"
        ) from None
    except Forbidden:
        raise GcsBucketNotFoundError(
            f"GCS bucket {location.bucket!r} is not accessible with these credentials "
            f"(from {location.url}): check the bucket name and its IAM permissions"
        ) from None


# --------------------------------------------------------------------------- checksums


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def file_crc32c(path: str | os.PathLike) -> str:
    """Base64 crc32c of a file, in the form GCS reports (``blob.crc32c``)."""
    checksum = google_crc32c.Checksum()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_READ_BLOCK), b""):
            checksum.update(block)
    return _b64(checksum.digest())


def file_md5(path: str | os.PathLike) -> str:
    """Base64 md5 of a file, in the form GCS reports (``blob.md5_hash``)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_READ_BLOCK), b""):
            digest.update(block)
    return _b64(digest.digest())


def _same_content(path: Path, remote: BlobInfo | None) -> bool:
    """True when ``remote`` holds exactly the bytes of ``path`` (size, then crc32c or md5)."""
    if remote is None or remote.size != path.stat().st_size:
        return False
    if remote.crc32c:
        return file_crc32c(path) == remote.crc32c
    if remote.md5:
        return file_md5(path) == remote.md5
    return False


def _local_files(local_dir: Path) -> dict[str, Path]:
    """Files to upload: all but unfinished atomic writes (files, or files in a folder being
    written: :func:`cvlab.fileio.is_unfinished_write`) and Python caches (``__pycache__``,
    which Triton's python backend leaves beside a model.py)."""
    from cvlab.fileio import is_unfinished_write

    if not local_dir.is_dir():
        raise FileNotFoundError(f"local directory not found: {local_dir}")
    files = {}
    for p in sorted(local_dir.rglob("*")):
        parts = p.relative_to(local_dir).parts
        if (
            p.is_file()
            and not any(is_unfinished_write(part) for part in parts)
            and "__pycache__" not in parts
            and p.suffix != ".pyc"
        ):
            files["/".join(parts)] = p
    return files


# --------------------------------------------------------------------------- list


def _list_infos(client: storage.Client, location: GcsLocation) -> dict[str, BlobInfo]:
    bucket = _bucket(client, location)
    prefix = f"{location.prefix}/" if location.prefix else None
    infos = {}
    for blob in client.list_blobs(bucket, prefix=prefix):
        if blob.name.endswith("/"):  # folder placeholder objects
            continue
        rel = location.relative(blob.name)
        infos[rel] = BlobInfo(rel, int(blob.size or 0), blob.crc32c, blob.md5_hash, blob.updated)
    return infos


def list_blobs(gs_url: str, *, client: storage.Client | None = None) -> list[BlobInfo]:
    """Objects below ``gs_url``, sorted by relative path."""
    location = GcsLocation.parse(gs_url)
    client = client or make_client()
    return [info for _, info in sorted(_list_infos(client, location).items())]


# --------------------------------------------------------------------------- upload


def _upload_one(
    bucket: storage.Bucket,
    blob_name: str,
    path: Path,
    *,
    resumable: bool,
    chunk_size: int,
    on_bytes: Callable[[int], None],
) -> None:
    """Upload one file; GCS makes the object visible only once complete (never half-written)."""
    blob = bucket.blob(blob_name)
    if not resumable:
        blob.upload_from_filename(str(path), checksum="crc32c")
        on_bytes(path.stat().st_size)
        return
    # BlobWriter always uses a resumable session, sends one chunk per chunk_size and cancels
    # the session (no object is created) when anything inside the ``with`` raises.
    with (
        open(path, "rb") as src,
        blob.open("wb", chunk_size=chunk_size, ignore_flush=True, checksum="crc32c") as dst,
    ):
        for block in iter(lambda: src.read(chunk_size), b""):
            dst.write(block)
            on_bytes(len(block))


def upload_directory(
    local_dir: str | os.PathLike,
    gs_url: str,
    *,
    client: storage.Client | None = None,
    workers: int = 8,
    progress: bool = True,
    resumable_threshold: int = DEFAULT_RESUMABLE_THRESHOLD,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_file_done: Callable[[str], None] | None = None,
    on_chunk: Callable[[str, int], None] | None = None,
) -> SyncReport:
    """Upload every file below ``local_dir`` to ``gs_url`` (parallel, skips unchanged files).

    Files of ``resumable_threshold`` bytes or more use resumable uploads in ``chunk_size``
    pieces (a multiple of 256 KiB). ``on_file_done(relative_path)`` runs after each finished
    file and ``on_chunk(relative_path, nbytes)`` after each sent block (hooks for notebooks and
    for tests that simulate a crash). If uploads fail, the finished ones stay, a
    :class:`GcsSyncError` carrying the report is raised, and re-running completes the job.
    """
    if chunk_size <= 0 or chunk_size % CHUNK_MULTIPLE:
        raise ValueError(f"chunk_size must be a positive multiple of {CHUNK_MULTIPLE}")
    local_dir = Path(local_dir)
    location = GcsLocation.parse(gs_url)
    client = client or make_client()
    files = _local_files(local_dir)
    remote = _list_infos(client, location)  # also checks that the bucket exists
    bucket = client.bucket(location.bucket)
    report = SyncReport(source=str(local_dir), destination=location.url)
    start = time.perf_counter()
    todo = {}
    for rel, path in files.items():
        if _same_content(path, remote.get(rel)):
            report.skipped.append(rel)
        else:
            todo[rel] = path
    total = sum(p.stat().st_size for p in todo.values())
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="upload", disable=not progress)

    def task(rel: str, path: Path) -> str:
        size = path.stat().st_size
        resumable = size >= resumable_threshold

        def sent(nbytes: int) -> None:
            bar.update(nbytes)
            if on_chunk is not None:
                on_chunk(rel, nbytes)

        _upload_one(
            bucket,
            location.blob_name(rel),
            path,
            resumable=resumable,
            chunk_size=chunk_size,
            on_bytes=sent,
        )
        if resumable:
            report.resumable.append(rel)
        return rel

    try:
        _run_parallel(todo, task, workers, report, on_file_done, lambda p: p.stat().st_size)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
    if report.failed:
        raise GcsSyncError(
            f"upload to {location.url} failed for {len(report.failed)} file(s): "
            + "; ".join(f"{p}: {e}" for p, e in sorted(report.failed.items()))
            + ". Files already uploaded are complete; re-run to finish.",
            report,
        )
    return report


def _run_parallel(
    todo: dict[str, Any],
    task: Callable[[str, Any], str],
    workers: int,
    report: SyncReport,
    on_file_done: Callable[[str], None] | None,
    size_of: Callable[[Any], int],
) -> None:
    """Run ``task`` per item with a thread pool; record results in ``report``.

    An exception raised by ``on_file_done`` (a deliberate stop) cancels the pending files,
    waits for the running ones, and propagates.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures: dict[Future, str] = {
            pool.submit(task, rel, item): rel for rel, item in todo.items()
        }
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    rel = futures[future]
                    exc = future.exception()
                    if exc is not None:
                        report.failed[rel] = f"{type(exc).__name__}: {exc}"
                        continue
                    report.transferred.append(rel)
                    report.bytes_transferred += size_of(todo[rel])
                    if on_file_done is not None:
                        on_file_done(rel)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    report.transferred.sort()


# --------------------------------------------------------------------------- download


def _download_one(blob: storage.Blob, target: Path) -> None:
    """Download to a temporary file next to ``target``, then rename (never half-written)."""
    with atomic_path(target, suffix=".tmp") as tmp:  # .*.tmp: skipped by the upload listing
        blob.download_to_filename(str(tmp), checksum="crc32c")


def download_directory(
    gs_url: str,
    local_dir: str | os.PathLike,
    *,
    client: storage.Client | None = None,
    workers: int = 8,
    progress: bool = True,
    on_file_done: Callable[[str], None] | None = None,
) -> SyncReport:
    """Download every object below ``gs_url`` into ``local_dir``; unchanged files are skipped.

    Objects whose names would land outside ``local_dir`` (``..`` parts, ``prefix//abs/path``,
    a symbolic link out: :func:`cvlab.fileio.safe_path`) are refused, never written, and listed
    in the :class:`GcsSyncError` raised at the end (the others are downloaded).
    """
    location = GcsLocation.parse(gs_url)
    local_dir = Path(local_dir)
    client = client or make_client()
    remote = _list_infos(client, location)
    bucket = client.bucket(location.bucket)
    report = SyncReport(source=location.url, destination=str(local_dir))
    start = time.perf_counter()
    todo: dict[str, BlobInfo] = {}
    targets: dict[str, Path] = {}
    for rel, info in remote.items():
        try:  # an object name must not write outside local_dir ("dl//tmp/x", "dl/../x")
            target = targets[rel] = safe_path(local_dir, rel)
        except UnsafePathError as exc:
            report.failed[rel] = f"refused: {exc}"
            continue
        if target.is_file() and _same_content(target, info):
            report.skipped.append(rel)
        else:
            todo[rel] = info
    bar = tqdm(
        total=sum(i.size for i in todo.values()),
        unit="B",
        unit_scale=True,
        desc="download",
        disable=not progress,
    )

    def task(rel: str, info: BlobInfo) -> str:
        _download_one(bucket.blob(location.blob_name(rel)), targets[rel])
        bar.update(info.size)
        return rel

    try:
        _run_parallel(todo, task, workers, report, on_file_done, lambda i: i.size)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
    if report.failed:
        raise GcsSyncError(
            f"download from {location.url} failed for {len(report.failed)} file(s): "
            + "; ".join(f"{p}: {e}" for p, e in sorted(report.failed.items())),
            report,
        )
    return report


# --------------------------------------------------------------------------- verify


def verify(
    local_dir: str | os.PathLike, gs_url: str, *, client: storage.Client | None = None
) -> list[Mismatch]:
    """Differences between ``local_dir`` and ``gs_url`` (empty list when identical)."""
    location = GcsLocation.parse(gs_url)
    client = client or make_client()
    local = _local_files(Path(local_dir))
    remote = _list_infos(client, location)
    problems = []
    for rel in sorted(set(local) | set(remote)):
        if rel not in remote:
            problems.append(Mismatch(rel, "missing_remote", f"not in {location.url}"))
        elif rel not in local:
            problems.append(Mismatch(rel, "missing_local", f"not in {local_dir}"))
        elif not _same_content(local[rel], remote[rel]):
            problems.append(
                Mismatch(
                    rel,
                    "different",
                    f"local {local[rel].stat().st_size} bytes crc32c {file_crc32c(local[rel])}, "
                    f"remote {remote[rel].size} bytes crc32c {remote[rel].crc32c}",
                )
            )
    return problems


def mismatches_dataframe(mismatches: Iterable[Mismatch]) -> pd.DataFrame:
    """A table of :func:`verify` results."""
    import pandas as pd

    return pd.DataFrame(
        [(m.path, m.kind, m.detail) for m in mismatches], columns=["path", "kind", "detail"]
    )
