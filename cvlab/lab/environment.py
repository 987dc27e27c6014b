"""What this machine offers the lab (versions, GPU, Triton, TensorRT, TAO, NGC, gcloud) and
the NGC model download (only with the NGC CLI and a connection).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cvlab.lab.workspace import Workspace


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def internet_reachable(
    host: str = "api.ngc.nvidia.com", port: int = 443, timeout: float = 2.0
) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ngc_cli() -> str | None:
    """Path of the NGC CLI (``ngc``) when on PATH, else None."""
    return shutil.which("ngc")


def environment_table(check_gpu: bool = True) -> pd.DataFrame:
    """What this machine offers the lab, as a table (component, status, detail).

    Versions of the main libraries, whether TensorFlow sees a GPU, whether the bundled
    ``tritonserver`` binary, TensorRT, TAO and the NGC CLI/SDK are present.
    """
    rows: list[tuple[str, str, str]] = [
        ("python", platform.python_version(), sys.executable),
        ("platform", platform.platform(), f"{os.cpu_count()} CPU cores"),
    ]
    for dist in (
        "numpy",
        "tensorflow-cpu",
        "tensorflow",
        "onnx",
        "onnxruntime",
        "tf2onnx",
        "opencv-python-headless",
        "tritonclient",
        "nvidia-pytriton",
        "google-cloud-storage",
        "pandas",
        "scikit-learn",
    ):
        version = _version(dist)
        if version != "not installed" or dist not in ("tensorflow", "tensorflow-cpu"):
            rows.append((dist, version, "python package"))
    if check_gpu:
        try:
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            rows.append(("GPU (TensorFlow)", f"{len(gpus)} found", ", ".join(g.name for g in gpus)))
        except Exception as exc:  # TensorFlow missing or broken: say so, do not fail the check
            rows.append(("GPU (TensorFlow)", "unknown", f"TensorFlow import failed: {exc}"))
    try:
        from cvlab.triton.server import find_tritonserver

        rows.append(("tritonserver binary", "found", str(find_tritonserver())))
    except Exception as exc:
        rows.append(("tritonserver binary", "missing", str(exc)))
    rows.append(
        (
            "TensorRT (python)",
            "importable" if _importable("tensorrt") else "absent",
            "engine build with the TensorRT API"
            if _importable("tensorrt")
            else "trtexec / tao-converter commands are printed instead",
        )
    )
    trtexec = shutil.which("trtexec")
    rows.append(("trtexec", "found" if trtexec else "absent", trtexec or ""))
    tao = shutil.which("tao") or shutil.which("detectnet_v2")
    rows.append(("TAO launcher / detectnet_v2", "found" if tao else "absent", tao or ""))
    ngc = ngc_cli()
    rows.append(("NGC CLI (ngc)", "found" if ngc else "absent", ngc or ""))
    rows.append(("ngcsdk", "importable" if _importable("ngcsdk") else "absent", ""))
    for tool in ("gcloud", "kubectl", "gsutil"):
        found = shutil.which(tool)
        rows.append((tool, "found" if found else "absent", found or ""))
    return pd.DataFrame(rows, columns=["component", "status", "detail"])


def ngc_download_command(model: str, dest: str | os.PathLike[str]) -> list[str]:
    """The NGC CLI command that downloads a model version, e.g.
    ``ngc registry model download-version nvidia/tao/peoplenet:unpruned_v2.1 --dest DIR``."""
    return ["ngc", "registry", "model", "download-version", model, "--dest", str(dest)]


@dataclass
class NgcDownload:
    """Outcome of :func:`download_ngc_model`: ``path`` is set when the model was downloaded."""

    message: str
    path: Path | None = None
    command: list[str] = dataclasses.field(default_factory=list)


def download_ngc_model(
    model: str, dest: str | os.PathLike[str], *, enabled: bool = True, timeout: float = 3600
) -> NgcDownload:
    """Download an NGC model version with the NGC CLI, only when it is installed and NGC is
    reachable; otherwise explain (with the command to run elsewhere). Never prints an API key:
    the CLI reads its own configuration (``ngc config set``)."""
    import subprocess

    command = ngc_download_command(model, dest)
    shown = " ".join(command)
    if not enabled:
        return NgcDownload(
            f"NGC download disabled (DOWNLOAD_NGC_MODEL=False): {shown}", None, command
        )
    if ngc_cli() is None:
        return NgcDownload(
            "NGC CLI not installed: the offline stand-in is used. With the CLI "
            f"(https://ngc.nvidia.com/setup/installers/cli) run: {shown}",
            None,
            command,
        )
    if not internet_reachable():
        return NgcDownload(f"NGC is not reachable (offline): later, run {shown}", None, command)
    Path(dest).mkdir(parents=True, exist_ok=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return NgcDownload(f"NGC download failed ({' | '.join(tail)}): {shown}", None, command)
    return NgcDownload(f"downloaded {model} to {dest}", Path(dest), command)


def gke_setup_script(ws: Workspace, project_id: str, cluster: str, zone: str, region: str) -> str:
    """The lab's GKE cluster commands for your project, written to ``ws.root/gke_setup.sh``
    (printed and saved, never run here); returns the script."""
    from cvlab.cloud.gke import GkeConfig, as_shell_script, gcloud_commands
    from cvlab.fileio import atomic_write_text

    config = GkeConfig(project_id=project_id, cluster_name=cluster, zone=zone, region=region)
    script = as_shell_script(gcloud_commands(config))
    atomic_write_text(ws.root / "gke_setup.sh", script)
    return script


#: What the real lab setup needs, by the environment table's component names: label -> the
#: components of which at least one must be present.
REAL_SETUP_NEEDS: dict[str, tuple[str, ...]] = {
    "GPU": ("GPU (TensorFlow)",),
    "TensorRT": ("TensorRT (python)", "trtexec"),
    "TAO": ("TAO launcher / detectnet_v2",),
    "NGC CLI": ("NGC CLI (ngc)",),
    "gcloud": ("gcloud",),
    "kubectl": ("kubectl",),
    "gsutil": ("gsutil",),
}
_PRESENT = ("found", "importable")


def _present(env: pd.DataFrame, component: str) -> bool:
    rows = env[env["component"] == component]
    if rows.empty:
        return False
    status = str(rows["status"].iloc[0])
    if component == "GPU (TensorFlow)":
        return status.split()[0].isdigit() and int(status.split()[0]) > 0
    return status in _PRESENT


def verdict_table(env: pd.DataFrame) -> pd.DataFrame:
    """Two rows from :func:`environment_table`: can the offline demo run here (TensorFlow and
    the bundled tritonserver), and what the real setup still misses (GPU, TensorRT, TAO, NGC
    CLI, gcloud, kubectl, gsutil).

    >>> env = pd.DataFrame({"component": ["tensorflow-cpu", "tritonserver binary", "gcloud"],
    ...                     "status": ["2.21.0", "found", "found"], "detail": ["", "", ""]})
    >>> verdict_table(env)["verdict"].tolist()
    ['ready', 'missing: GPU, TensorRT, TAO, NGC CLI, kubectl, gsutil']
    """
    tensorflow = any(
        str(s) != "not installed"
        for s in env.loc[env["component"].isin(["tensorflow", "tensorflow-cpu"]), "status"]
    )
    offline_missing = [
        name
        for name, ok in (
            ("TensorFlow", tensorflow),
            ("tritonserver binary", _present(env, "tritonserver binary")),
        )
        if not ok
    ]
    real_missing = [
        label
        for label, components in REAL_SETUP_NEEDS.items()
        if not any(_present(env, c) for c in components)
    ]
    return pd.DataFrame(
        [
            (
                "offline demo",
                "ready" if not offline_missing else "missing: " + ", ".join(offline_missing),
                "synthetic data, stand-in models, local Triton and GCS emulator on this CPU",
            ),
            (
                "real setup",
                "ready" if not real_missing else "missing: " + ", ".join(real_missing),
                "PeopleNet from NGC, TensorRT engines, TAO training, Triton on GKE",
            ),
        ],
        columns=["setup", "verdict", "what it runs"],
    )


def how_long(notebook: str, timings: str | os.PathLike[str] | None = None) -> str:
    """One line: how long ``notebook`` took in the last ``make demo`` (``cvlab lab demo``
    writes the figures to :data:`cvlab.lab.demo.TIMINGS_FILE`), or that it was not measured.

    >>> how_long("00_setup", "/nonexistent.json")
    'How long: not measured yet (make demo measures every notebook).'
    """
    import json

    from cvlab.lab.demo import TIMINGS_FILE

    path = Path(timings) if timings else TIMINGS_FILE
    try:
        data = json.loads(path.read_text())
        seconds = float(data["seconds"][notebook])
    except (OSError, ValueError, KeyError, TypeError):
        return "How long: not measured yet (make demo measures every notebook)."
    shown = _duration(seconds)
    return (
        f"How long: {shown} in the last `make demo` "
        f"({data.get('measured', 'date unknown')}, {data.get('machine', 'this machine')})."
    )


def timings_table(timings: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Each notebook's time in the last ``make demo`` and the total, as a table (notebook,
    seconds); empty when nothing was measured yet.

    >>> timings_table("/nonexistent.json").empty
    True
    """
    import json

    from cvlab.lab.demo import TIMINGS_FILE

    path = Path(timings) if timings else TIMINGS_FILE
    try:
        seconds = {str(k): float(v) for k, v in json.loads(path.read_text())["seconds"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return pd.DataFrame(columns=["notebook", "time"])
    rows = [(name, _duration(s)) for name, s in seconds.items()]
    rows.append(("total", _duration(sum(seconds.values()))))
    return pd.DataFrame(rows, columns=["notebook", "time"])


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
