"""The steps of ``cvlab deploy``, each a plain function returning a small report.

validate (config.pbtxt vs model files, before anything is sent) -> upload to GCS -> print or
``kubectl apply`` the Triton manifests -> wait for ``/v2/health/ready`` -> smoke inference.

Example:
    >>> from cvlab.cloud.manifests import EXAMPLE_MODEL_REPOSITORY as GCS_URL
    >>> from cvlab.cloud.manifests import TritonDeploymentConfig, from_yaml, render_manifests
    >>> report = apply_step(render_manifests(TritonDeploymentConfig(GCS_URL)), apply=False)
    >>> report.applied, report.reason, len(from_yaml(report.yaml))
    (False, 'apply not requested', 3)

The whole flow, in a notebook (a real bucket and cluster; 203.0.113.10 stands for the ingress IP)::

    validate_step("model_repository").raise_if_invalid()
    upload_step("model_repository", GCS_URL)
    wait_ready_step("203.0.113.10:80", timeout=600)
    smoke_step("203.0.113.10:80", "peoplenet_tlt", "inference_images/rgb").to_dataframe()
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvlab import fileio
from cvlab.cloud.gcs import GcsLocation, SyncReport, make_client, upload_directory
from cvlab.cloud.manifests import TritonDeploymentConfig, to_yaml
from cvlab.errors import CvlabError
from cvlab.shell import shell_join

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from google.cloud import storage

    from cvlab.detections import Detections

__all__ = [
    "ApplyReport",
    "DeployReport",
    "KubectlError",
    "ReadyReport",
    "RepositoryInvalidError",
    "SmokeReport",
    "ValidationReport",
    "apply_step",
    "run_deploy",
    "smoke_step",
    "upload_step",
    "validate_step",
    "wait_ready_step",
]

#: the smoke step also sends BMP files
IMAGE_SUFFIXES = (*fileio.IMAGE_SUFFIXES, ".bmp")


class RepositoryInvalidError(CvlabError, ValueError):
    """The model repository would not load in Triton (listed problems name file and field)."""


class KubectlError(CvlabError, RuntimeError):
    """``kubectl apply`` failed; the message holds its stderr."""


# --------------------------------------------------------------------------- validate


@dataclass
class ValidationReport:
    """Models found in a local repository and the problems that would stop Triton loading it."""

    repo_dir: str
    models: list[str]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_invalid(self) -> ValidationReport:
        if self.problems:
            raise RepositoryInvalidError(
                f"model repository {self.repo_dir} has {len(self.problems)} problem(s):\n  "
                + "\n  ".join(self.problems)
            )
        return self


def validate_step(repo_dir: str | os.PathLike) -> ValidationReport:
    """Check config.pbtxt against the model files of every model below ``repo_dir``."""
    from cvlab.triton.model_repository import validate_model_repository

    repo = Path(repo_dir)
    models = (
        sorted(p.name for p in repo.iterdir() if p.is_dir() and not p.name.startswith("."))
        if repo.is_dir()
        else []
    )
    return ValidationReport(str(repo), models, validate_model_repository(repo))


# --------------------------------------------------------------------------- upload


def upload_step(
    repo_dir: str | os.PathLike,
    gcs_url: str,
    *,
    client: storage.Client | None = None,
    validate: bool = True,
    **upload_options: Any,
) -> SyncReport:
    """Validate (unless ``validate=False``) then upload the repository to ``gcs_url``.

    Raises :class:`RepositoryInvalidError` before anything is sent when the repository is
    broken. ``upload_options`` go to :func:`cvlab.cloud.gcs.upload_directory`.
    """
    location = GcsLocation.parse(gcs_url)  # a bad URL fails before validation work
    if validate:
        validate_step(repo_dir).raise_if_invalid()
    return upload_directory(
        repo_dir, location.url, client=client or make_client(), **upload_options
    )


# --------------------------------------------------------------------------- apply


@dataclass
class ApplyReport:
    """The manifests as YAML and what happened to them (``applied`` False: printed only)."""

    yaml: str
    applied: bool
    command: list[str] = field(default_factory=list)
    output: str = ""
    reason: str = ""


def apply_step(
    manifests: Sequence[dict[str, Any]],
    *,
    apply: bool = True,
    kubectl: str | os.PathLike | None = None,
    timeout: float = 120.0,
) -> ApplyReport:
    """``kubectl apply -f -`` the manifests when ``apply`` and kubectl is found; else print only.

    ``kubectl`` is a path or command name (default: ``kubectl`` on PATH). A failing kubectl
    raises :class:`KubectlError` with its stderr.
    """
    text = to_yaml(manifests)
    if not apply:
        return ApplyReport(text, False, reason="apply not requested")
    exe = shutil.which(str(kubectl or "kubectl"))
    if exe is None:
        return ApplyReport(text, False, reason=f"{kubectl or 'kubectl'} not found on PATH")
    command = [exe, "apply", "-f", "-"]
    try:
        done = subprocess.run(
            command, input=text, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise KubectlError(f"{shell_join(command)} did not finish in {timeout:.0f} s") from None
    if done.returncode != 0:
        raise KubectlError(
            f"{shell_join(command)} failed with exit code {done.returncode}: {done.stderr.strip()}"
        )
    return ApplyReport(text, True, command, done.stdout, reason="applied")


# --------------------------------------------------------------------------- wait ready


@dataclass
class ReadyReport:
    """Result of polling ``/v2/health/ready``."""

    url: str
    ready: bool
    seconds: float
    attempts: int
    last_status: str = ""


def _base_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.startswith(("http://", "https://")) else f"http://{url}"


def _status(url: str, timeout: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{type(reason).__name__}: {reason}"


def wait_ready_step(
    url: str,
    *,
    timeout: float = 300.0,
    interval: float = 1.0,
    model_name: str | None = None,
    raise_on_timeout: bool = False,
) -> ReadyReport:
    """Poll ``http://URL/v2/health/ready`` (and the model's ready endpoint) until 200 or timeout.

    ``url`` is ``host:port`` or ``http(s)://host:port``. Returns a report with ``ready`` False
    on timeout, or raises TimeoutError when ``raise_on_timeout``.
    """
    base = _base_url(url)
    paths = ["/v2/health/ready"] + ([f"/v2/models/{model_name}/ready"] if model_name else [])
    start = time.monotonic()
    attempts = 0
    status = ""
    while True:
        attempts += 1
        statuses = [_status(base + p, timeout=min(5.0, max(interval, 0.5))) for p in paths]
        status = ", ".join(f"{p} -> {s}" for p, s in zip(paths, statuses, strict=True))
        if all(s == "200" for s in statuses):
            return ReadyReport(base, True, time.monotonic() - start, attempts, status)
        if time.monotonic() - start + interval > timeout:
            break
        time.sleep(interval)
    report = ReadyReport(base, False, time.monotonic() - start, attempts, status)
    if raise_on_timeout:
        raise TimeoutError(f"Triton at {base} not ready after {timeout:.0f} s (last: {status})")
    return report


# --------------------------------------------------------------------------- smoke


@dataclass
class SmokeReport:
    """Detections of a few images sent to the deployed model."""

    url: str
    model_name: str
    detections: list[Detections]
    seconds: float

    def to_dataframe(self) -> pd.DataFrame:
        """One row per image: path, size and boxes per class."""
        import pandas as pd

        rows = []
        for det in self.detections:
            counts = {name: 0 for name in det.class_names}
            for class_id in det.class_id:
                counts[det.class_names[int(class_id)]] += 1
            rows.append(
                {"image": det.image_path, "width": det.image_size[0], "height": det.image_size[1]}
                | {"boxes": len(det)}
                | counts
            )
        return pd.DataFrame(rows)


def _image_paths(images: str | os.PathLike | Sequence[str | os.PathLike], limit: int) -> list[str]:
    if isinstance(images, (str, os.PathLike)):
        directory = Path(images)
        if not directory.is_dir():
            raise FileNotFoundError(f"smoke image directory not found: {directory}")
        found = fileio.list_images(directory, IMAGE_SUFFIXES)
    else:
        found = [Path(p) for p in images]
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images}")
    return [str(p) for p in found[:limit]]


def smoke_step(
    url: str,
    model_name: str,
    images: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    class_names: Sequence[str] | None = None,
    protocol: str = "http",
    batch_size: int | None = None,
    max_images: int = 8,
    progress: bool = False,
) -> SmokeReport:
    """Run the inference path (:mod:`cvlab.triton.pipeline`) on up to ``max_images`` images (a
    directory or a list of paths), with default clustering for ``class_names``."""
    from cvlab.triton.client import TritonDetectNetClient
    from cvlab.triton.pipeline import default_postprocessor, detect_images

    paths = _image_paths(images, max_images)
    start = time.perf_counter()
    with TritonDetectNetClient(url, model_name, protocol=protocol) as client:
        post = default_postprocessor(client.input_size, client.num_classes, class_names)
        batch = min(batch_size or client.max_batch_size or 1, len(paths))
        detections = detect_images(client, paths, post, batch, progress=progress)
    return SmokeReport(url, model_name, detections, time.perf_counter() - start)


# --------------------------------------------------------------------------- whole flow


@dataclass
class DeployReport:
    """Everything ``cvlab deploy`` did, step by step (None: step not run)."""

    validation: ValidationReport
    upload: SyncReport | None = None
    apply: ApplyReport | None = None
    ready: ReadyReport | None = None
    smoke: SmokeReport | None = None


def run_deploy(
    repo_dir: str | os.PathLike,
    config: TritonDeploymentConfig,
    *,
    client: storage.Client | None = None,
    client_factory: Callable[[], storage.Client] | None = None,
    apply: bool = False,
    kubectl: str | os.PathLike | None = None,
    wait_ready_url: str | None = None,
    timeout: float = 600.0,
    smoke_images: str | os.PathLike | None = None,
    model_name: str | None = None,
    workers: int = 8,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> DeployReport:
    """All steps in order; the repository is uploaded to ``config.model_repository``.

    ``client_factory`` makes the GCS client only after validation passed (so a broken
    repository is reported before any credential problem). Stops after the readiness step when
    the server does not become ready (``report.ready.ready`` False).
    """
    from cvlab.cloud.manifests import render_manifests

    echo(f"[1/5] validate {repo_dir}")
    report = DeployReport(validate_step(repo_dir).raise_if_invalid())
    echo(f"      models: {', '.join(report.validation.models)}")
    echo(f"[2/5] upload to {config.model_repository}")
    report.upload = upload_step(
        repo_dir,
        config.model_repository,
        client=client or (client_factory or make_client)(),
        validate=False,  # done just above
        workers=workers,
        progress=progress,
    )
    echo(f"      {report.upload.summary()}")
    echo("[3/5] manifests" + (" -> kubectl apply" if apply else ""))
    report.apply = apply_step(render_manifests(config), apply=apply, kubectl=kubectl)
    if report.apply.applied:
        echo(report.apply.output.rstrip())
    else:
        echo(f"      not applied ({report.apply.reason}); manifests:\n{report.apply.yaml}")
    model = model_name or (report.validation.models[0] if report.validation.models else None)
    if wait_ready_url:
        echo(f"[4/5] wait for {wait_ready_url}/v2/health/ready (up to {timeout:.0f} s)")
        report.ready = wait_ready_step(wait_ready_url, timeout=timeout, model_name=model)
        echo(
            f"      ready={report.ready.ready} after {report.ready.seconds:.1f} s "
            f"({report.ready.last_status})"
        )
        if not report.ready.ready:
            return report
    if smoke_images is not None:
        if not wait_ready_url or model is None:
            raise ValueError("a smoke test needs the server URL (--wait-ready) and a model")
        echo(f"[5/5] smoke inference with {smoke_images} on {model}")
        report.smoke = smoke_step(wait_ready_url, model, smoke_images)
        echo(report.smoke.to_dataframe().to_string(index=False))
    return report
