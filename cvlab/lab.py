"""Workspace layout and "ensure" helpers that keep the lab notebooks thin and standalone.

Every notebook works inside one workspace folder (``runs/lab`` by default). Each step writes
its products to a fixed place in it, and each ``ensure_*`` helper returns that product,
building it (and whatever it needs first) only when it is missing. So notebook 05 can run
alone on a fresh machine: it generates the synthetic FLIR set, prepares it, trains the tiny
model and writes the model repository on the way; run in order, the notebooks reuse what
the previous ones produced.

Things the HTML report shows (tables, figures, overlay images) are recorded with
:func:`record_table`, :func:`record_figure` and :func:`record_image` under
``<workspace>/report/``.

Example:
    >>> ws = Workspace("runs/lab")          # doctest: +SKIP
    >>> source = ensure_flir_source(ws)     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import socket
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Repository root when cvlab is installed editable from a checkout (``pyproject.toml`` beside it).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Workspace used by the notebooks when no other is given.
DEFAULT_WORKSPACE = "runs/lab"

#: Model names inside the lab's local Triton repository.
RGB_MODEL_NAME = "peoplenet_rgb_standin"
IR_MODEL_NAME = "peoplenet_ir"
#: The lab's name for the retrained IR model on GKE (tensorrt_plan).
LAB_IR_MODEL_NAME = "peoplenet_ir_tlt"


def resolve_workspace_path(path: str | os.PathLike[str]) -> Path:
    """Absolute path for a workspace: relative paths are taken from the repository root.

    Notebooks run with the notebooks/ folder as their working directory, the CLI from
    wherever it is called; anchoring relative paths at the repository root (when cvlab lives
    in a checkout) makes ``runs/lab`` mean the same folder for both.
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if (REPO_ROOT / "pyproject.toml").exists():
        return (REPO_ROOT / p).resolve()
    return p.resolve()


@dataclass(frozen=True)
class Workspace:
    """The fixed layout of the lab's working folder.

    Attributes:
        root: the workspace folder (created on first use).
    """

    root: Path

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_WORKSPACE) -> None:
        object.__setattr__(self, "root", resolve_workspace_path(root))
        self.root.mkdir(parents=True, exist_ok=True)

    # --- inputs
    @property
    def flir_source(self) -> Path:
        """Synthetic FLIR dataset in the real on-disk layout (when no real FLIR_ROOT is given)."""
        return self.root / "flir_source"

    @property
    def rgb_images(self) -> Path:
        """RGB sample images for notebook 01."""
        return self.root / "rgb_images"

    # --- products
    @property
    def dataset(self) -> Path:
        """Prepared dataset: images/, labels/ (KITTI), tfrecords/."""
        return self.root / "dataset"

    @property
    def training(self) -> Path:
        """Trainer output: checkpoints, history CSV, the trained Keras model."""
        return self.root / "training"

    @property
    def export(self) -> Path:
        """Exported ONNX model, TensorRT plan or the commands that build it."""
        return self.root / "export"

    @property
    def model_repository(self) -> Path:
        """Local Triton model repository (CPU-servable variants of both models)."""
        return self.root / "model_repository"

    @property
    def gke_model_repository(self) -> Path:
        """The lab's GKE layout: peoplenet_ir_tlt with a tensorrt_plan config.pbtxt."""
        return self.root / "model_repository_gke"

    @property
    def outputs(self) -> Path:
        """Inference outputs (KITTI labels, overlay images) per notebook."""
        return self.root / "outputs"

    @property
    def report(self) -> Path:
        """Tables, figures and images recorded for the HTML report."""
        return self.root / "report"

    @property
    def state_file(self) -> Path:
        return self.root / "lab_state.json"

    def state(self) -> dict[str, Any]:
        """The small JSON record of what the steps produced (paths, sizes, names)."""
        if not self.state_file.exists():
            return {}
        try:
            return json.loads(self.state_file.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.state_file}: not valid JSON ({exc})") from exc

    def update_state(self, **values: Any) -> dict[str, Any]:
        """Merge ``values`` into the state file (atomic write) and return the new state."""
        state = self.state()
        state.update({k: _jsonable(v) for k, v in values.items()})
        atomic_write_text(self.state_file, json.dumps(state, indent=2, sort_keys=True))
        return state


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write text through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- environment


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


# --------------------------------------------------------------------------- report records


def _slug(name: str) -> str:
    keep = [c if c.isalnum() or c in "-_." else "_" for c in name.strip()]
    return "".join(keep) or "item"


def record_table(ws: Workspace, name: str, df: pd.DataFrame, title: str | None = None) -> Path:
    """Save a table for the HTML report (CSV under report/tables, atomic)."""
    path = ws.report / "tables" / f"{_slug(name)}.csv"
    atomic_write_text(path, df.to_csv(index=False))
    _record_title(ws, path, title or name)
    return path


def record_figure(ws: Workspace, name: str, fig: Any, title: str | None = None) -> Path:
    """Save a matplotlib figure for the HTML report (PNG under report/figures, atomic)."""
    path = ws.report / "figures" / f"{_slug(name)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=80, bbox_inches="tight")
    os.replace(tmp, path)
    _record_title(ws, path, title or name)
    return path


def record_image(ws: Workspace, name: str, rgb: np.ndarray, title: str | None = None) -> Path:
    """Save an RGB image (e.g. an overlay) for the HTML report (JPEG under report/images)."""
    import cv2

    path = ws.report / "images" / f"{_slug(name)}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.jpg")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(np.asarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {tmp}")
    os.replace(tmp, path)
    _record_title(ws, path, title or name)
    return path


def _record_title(ws: Workspace, path: Path, title: str) -> None:
    """Remember ``title`` for ``path`` in report/index.json (kept in recording order)."""
    index_path = ws.report / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[str(path.relative_to(ws.report))] = title
    atomic_write_text(index_path, json.dumps(index, indent=2))


def produced_table(
    paths: Iterable[str | os.PathLike[str]], root: Path | None = None
) -> pd.DataFrame:
    """A table of produced files/folders: path, kind, files, size (MB).

    Used by the last cell of every notebook ("what was produced and where").
    """
    rows = []
    for p in map(Path, paths):
        if not p.exists():
            rows.append((str(p), "missing", 0, 0.0))
            continue
        if p.is_dir():
            files = [f for f in p.rglob("*") if f.is_file()]
            size = sum(f.stat().st_size for f in files)
            kind, count = "folder", len(files)
        else:
            kind, count, size = "file", 1, p.stat().st_size
        shown = str(p.relative_to(root)) if root and p.is_relative_to(root) else str(p)
        rows.append((shown, kind, count, round(size / 1e6, 3)))
    return pd.DataFrame(rows, columns=["path", "kind", "files", "size_mb"])


# --------------------------------------------------------------------------- lab steps


def _call_with_supported(func: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Call ``func`` with only the keyword arguments it accepts (APIs grow options over time)."""
    import inspect

    params = inspect.signature(func).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return func(*args, **kwargs)
    return func(*args, **{k: v for k, v in kwargs.items() if k in params})


def ensure_flir_source(
    ws: Workspace,
    flir_root: str | os.PathLike[str] | None = None,
    *,
    layout: str = "v2",
    num_images: int = 120,
    seed: int = 0,
) -> Path:
    """The FLIR dataset root: ``flir_root`` when given (a real download), else a synthetic set.

    The synthetic set is generated once into ``ws.flir_source`` (real FLIR on-disk layout,
    v1 or v2) and reused afterwards.
    """
    if flir_root:
        root = Path(flir_root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"FLIR_ROOT {root} is not a folder")
        return root
    marker = ws.flir_source / ".complete.json"
    wanted = {"layout": layout, "num_images": num_images, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return ws.flir_source
    from cvlab.flir.synthetic import generate_synthetic_flir

    if ws.flir_source.exists():
        shutil.rmtree(ws.flir_source)
    root = Path(
        _call_with_supported(
            generate_synthetic_flir, ws.flir_source, layout=layout, num_images=num_images, seed=seed
        )
    )
    atomic_write_text(ws.flir_source / ".complete.json", json.dumps(wanted))
    ws.update_state(flir_source=root, flir_layout=layout)
    return root


@dataclass
class PreparedDataset:
    """Where the prepared dataset lives (from the state file or a fresh preparation)."""

    root: Path
    images: Path
    labels: Path
    tfrecords_pattern: str
    class_names: tuple[str, ...]
    output_size: tuple[int, int]
    report: Any = None

    def validation_ids(self) -> list[str]:
        """Image ids (file stems) in the validation fold (fold 0 of the TFRecords)."""
        from cvlab.flir.tfrecords import read_tfrecords

        df = read_tfrecords(self.tfrecords_pattern)
        return sorted({str(v).split("/")[-1] for v in df.loc[df["fold"] == 0, "frame_id"]})


def _report_value(report: Any, *names: str) -> Any:
    for name in names:
        value = getattr(report, name, None)
        if value is not None:
            return value
    return None


def ensure_prepared_dataset(
    ws: Workspace,
    source: str | os.PathLike[str] | None = None,
    *,
    classes: Sequence[str] = ("person",),
    output_size: tuple[int, int] = (960, 544),
    val_split: int = 20,
    num_synthetic: int = 120,
    force: bool = False,
) -> PreparedDataset:
    """FLIR -> KITTI labels -> resized images -> TFRecords, in ``ws.dataset`` (done once)."""
    state = ws.state().get("dataset")
    wanted = {"classes": list(classes), "output_size": list(output_size), "val_split": val_split}
    if state and not force and state.get("params") == wanted and Path(state["root"]).exists():
        return PreparedDataset(
            root=Path(state["root"]),
            images=Path(state["images"]),
            labels=Path(state["labels"]),
            tfrecords_pattern=state["tfrecords_pattern"],
            class_names=tuple(state["class_names"]),
            output_size=tuple(state["output_size"]),
        )
    if source is None:
        source = ensure_flir_source(ws, num_images=num_synthetic)
    report = _prepare(
        source,
        ws.dataset,
        classes=tuple(classes),
        output_size=tuple(output_size),
        val_split=val_split,
        progress=True,
    )
    images = Path(_report_value(report, "images_dir") or ws.dataset / "images")
    labels = Path(_report_value(report, "labels_dir") or ws.dataset / "labels")
    tf_dir = Path(_report_value(report, "tfrecords_dir") or ws.dataset / "tfrecords")
    pattern = str(tf_dir / "*-fold-*")
    prepared = PreparedDataset(
        root=ws.dataset,
        images=images,
        labels=labels,
        tfrecords_pattern=str(pattern),
        class_names=tuple(classes),
        output_size=tuple(output_size),
        report=report,
    )
    ws.update_state(
        dataset={
            "root": str(ws.dataset),
            "images": str(images),
            "labels": str(labels),
            "tfrecords_pattern": str(pattern),
            "class_names": list(classes),
            "output_size": list(output_size),
            "params": wanted,
        }
    )
    return prepared


def read_ground_truth(
    labels_dir: Path, image_paths: Sequence[Path], class_names: Sequence[str]
) -> list[Any]:
    """KITTI training labels of ``image_paths`` (same stem) as Detections, in the same order."""
    from cvlab.kitti import read_kitti
    from cvlab.preprocess import load_image

    truth = []
    for path in image_paths:
        h, w = load_image(path).shape[:2]
        truth.append(
            _call_with_supported(
                read_kitti,
                labels_dir / f"{Path(path).stem}.txt",
                image_size=(w, h),
                class_names=tuple(class_names),
            )
        )
    return truth


def sample_rgb_images(ws: Workspace, count: int = 4) -> list[Path]:
    """RGB sample images for notebook 01: matplotlib's grace_hopper.jpg plus a few
    synthetic frames (thermal-style people drawn in colour), copied into ``ws.rgb_images``."""
    import cv2
    from matplotlib import cbook

    out = ws.rgb_images
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    target = out / "grace_hopper.jpg"
    if not target.exists():
        with cbook.get_sample_data("grace_hopper.jpg") as src:
            data = src.read()
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    paths.append(target)
    rng = np.random.default_rng(7)
    for i in range(max(0, count - 1)):
        path = out / f"street_{i:02d}.jpg"
        if not path.exists():
            frame = _rgb_street_frame(rng, (960, 544))
            tmp = path.with_name(f".{path.stem}.tmp.jpg")
            cv2.imwrite(str(tmp), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            os.replace(tmp, path)
        paths.append(path)
    return paths


def _rgb_street_frame(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A simple colour street scene with a few standing figures (for the RGB notebook)."""
    import cv2

    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2] = (135, 180, 225)  # sky
    img[h // 2 :] = (90, 90, 95)  # road
    for _ in range(4):  # buildings
        x = int(rng.integers(0, w - 120))
        bw, bh = int(rng.integers(80, 200)), int(rng.integers(100, h // 2))
        color = tuple(int(c) for c in rng.integers(120, 200, 3))
        cv2.rectangle(img, (x, h // 2 - bh), (x + bw, h // 2), color, -1)
    for _ in range(int(rng.integers(2, 5))):  # people: head, torso, legs
        ph = int(rng.integers(120, 300))
        cx, foot = int(rng.integers(60, w - 60)), int(rng.integers(h // 2 + 40, h - 5))
        top = foot - ph
        shirt = tuple(int(c) for c in rng.integers(30, 230, 3))
        cv2.circle(img, (cx, top + ph // 10), ph // 10, (224, 172, 140), -1)
        cv2.rectangle(
            img, (cx - ph // 8, top + ph // 5), (cx + ph // 8, top + ph // 2 + 20), shirt, -1
        )
        cv2.rectangle(img, (cx - ph // 9, top + ph // 2 + 20), (cx - 2, foot), (40, 40, 80), -1)
        cv2.rectangle(img, (cx + 2, top + ph // 2 + 20), (cx + ph // 9, foot), (40, 40, 80), -1)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def dataclass_table(obj: Any) -> pd.DataFrame:
    """A dataclass (e.g. a config) as a two-column table (field, value)."""
    if not dataclasses.is_dataclass(obj):
        raise TypeError(f"{type(obj).__name__} is not a dataclass")
    return pd.DataFrame(
        [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)],
        columns=["field", "value"],
    )


def import_optional(module: str) -> Any | None:
    """Import ``module`` or return None when it (or one of its dependencies) is absent."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


# --------------------------------------------------------------------------- 00 setup


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


# --------------------------------------------------------------------------- Triton and inference


def ensure_rgb_standin(ws: Workspace, input_size: tuple[int, int] = (960, 544)) -> Path:
    """The offline stand-in for RGB PeopleNet (untrained, PeopleNet-shaped: person/bag/face)
    in the workspace's model repository; returns its model folder."""
    from cvlab.triton.demo_model import write_demo_repository

    model_dir = ws.model_repository / RGB_MODEL_NAME
    if (model_dir / "config.pbtxt").exists():
        return model_dir
    return Path(
        write_demo_repository(
            ws.model_repository, RGB_MODEL_NAME, num_classes=3, input_size=tuple(input_size)
        )
    )


def start_triton(repository: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Start the bundled tritonserver on 127.0.0.1 for ``repository`` (a folder or gs:// URL)
    and wait until its models are ready; returns the running
    :class:`cvlab.triton.server.TritonServer` (call ``.stop()`` when done)."""
    from cvlab.triton.server import TritonServer

    kwargs.setdefault("startup_timeout", 120)
    server = TritonServer(repository, **kwargs).start()
    print(f"tritonserver ready: http {server.http_url}, grpc {server.grpc_url}")
    return server


def input_images(directory: str | os.PathLike[str]) -> list[Path]:
    """The jpg/jpeg/png files of ``directory`` (sorted); a clear error when there are none."""
    from cvlab.preprocess import list_images

    found = list_images(directory)
    if not found:
        raise FileNotFoundError(f"{directory}: no .jpg/.jpeg/.png images")
    return found


def run_inference(
    url: str,
    model_name: str,
    images: Sequence[str | os.PathLike[str]],
    config: Any,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 16,
    protocol: str = "http",
    model_version: str = "",
) -> list[Any]:
    """The lab's client on ``images``: batched async requests, clustering with ``config``;
    KITTI labels and overlays written to ``output_dir`` (infer_labels/, infer_images/) as
    ``cvlab infer`` does. Returns Detections in image order; failed requests raise."""
    from cvlab.postprocess import DetectNetPostprocessor
    from cvlab.triton.client import TritonDetectNetClient

    with TritonDetectNetClient(url, model_name, model_version, protocol) as client:
        batch_size = min(batch_size, client.max_batch_size or batch_size)
        post = DetectNetPostprocessor(config, config.class_names, model_size=client.input_size)
        on_result = _writer(output_dir, config) if output_dir is not None else None
        dets = client.infer_images(
            [str(p) for p in images], batch_size, post, async_mode=True, on_result=on_result
        )
    return dets


def _writer(output_dir: str | os.PathLike[str], config: Any) -> Any:
    from cvlab.triton.infer import _Writer

    out = Path(output_dir)
    return _Writer(out / "infer_labels", out / "infer_images", config)


@dataclass
class RawOutputs:
    """Images and their raw model outputs (one dict of arrays per image)."""

    images: list[np.ndarray]
    outputs: list[dict[str, np.ndarray]]
    input_size: tuple[int, int]


def raw_outputs(
    url: str,
    model_name: str,
    images: Sequence[str | os.PathLike[str]],
    *,
    protocol: str = "http",
    model_version: str = "",
) -> RawOutputs:
    """Fetch the raw output grids of ``images`` once (for the threshold tuner)."""
    from cvlab.preprocess import load_image, preprocess_images
    from cvlab.triton.client import TritonDetectNetClient

    with TritonDetectNetClient(url, model_name, model_version, protocol) as client:
        size = client.input_size
        step = client.max_batch_size or len(images)
        outputs: list[dict[str, np.ndarray]] = []
        for start in range(0, len(images), step):
            batch = preprocess_images(list(images[start : start + step]), size, on_error="raise")
            result = client.infer_batch(batch.tensor)
            outputs += [{k: v[i] for k, v in result.items()} for i in range(len(batch.paths))]
    return RawOutputs([load_image(p) for p in images], outputs, size)


def detections_table(detections: Sequence[Any]) -> pd.DataFrame:
    """One row per image: boxes per class and the best confidence."""
    rows = []
    for d in detections:
        row: dict[str, Any] = {"image": Path(d.image_path or "?").name, "boxes": len(d)}
        for name in d.class_names:
            row[name] = int(sum(1 for n in d.names if n == name))
        row["max_confidence"] = float(d.confidence.max()) if len(d) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _overlay(rgb: np.ndarray, dets: Any, config: Any, truth: Any = None) -> np.ndarray:
    from cvlab.overlay import colors_from_config, draw_detections

    out = rgb
    if truth is not None and len(truth):
        out = draw_detections(
            out,
            truth,
            colors=dict.fromkeys(truth.class_names, (255, 255, 255)),
            linewidth=1,
            show_labels=False,
        )
    if dets is not None:
        colors = colors_from_config(config) if config is not None else None
        linewidth = config.linewidth if config is not None else 2
        out = draw_detections(out, dets, colors=colors, linewidth=linewidth)
    return out


def show_overlays(
    images: Sequence[str | os.PathLike[str]],
    detections: Sequence[Any],
    config: Any = None,
    *,
    title: str = "",
    truth: Sequence[Any] | None = None,
    ncols: int = 2,
) -> Any:
    """Overlays of ``detections`` (and ground truth in thin white, when given) in a grid;
    returns the matplotlib Figure (shown inline in notebooks)."""
    import matplotlib.pyplot as plt

    from cvlab.preprocess import load_image

    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (path, dets) in enumerate(zip(images, detections, strict=False)):
        ax = axes.ravel()[i]
        gt = truth[i] if truth is not None else None
        ax.imshow(_overlay(load_image(path), dets, config, gt))
        ax.set_title(f"{title}: {Path(path).name} ({len(dets)} boxes)", fontsize=9)
    fig.tight_layout()
    plt.show()
    return fig


def show_image(rgb: np.ndarray, title: str = "") -> Any:
    """Show one RGB image inline; returns the Figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.6))
    ax.imshow(rgb)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    plt.show()
    return fig


def record_overlay_images(
    ws: Workspace, prefix: str, images: Sequence[Path], detections: Sequence[Any], config: Any
) -> list[Path]:
    """Save overlays for the HTML report (report/images/<prefix>_<stem>.jpg)."""
    from cvlab.preprocess import load_image

    return [
        record_image(
            ws, f"{prefix}_{Path(p).stem}", _overlay(load_image(p), d, config), Path(p).name
        )
        for p, d in zip(images, detections, strict=False)
    ]


# --------------------------------------------------------------------------- 02 dataset


def _prepare(*args: Any, **kwargs: Any) -> Any:
    from cvlab.flir.convert import prepare_flir_dataset

    return _call_with_supported(prepare_flir_dataset, *args, **kwargs)


def prepare_summary(prepared: PreparedDataset) -> pd.DataFrame:
    """The preparation report as a table (or, when reused, counts read from the folders)."""
    if prepared.report is not None and hasattr(prepared.report, "to_pandas"):
        return prepared.report.to_pandas().reset_index()
    images = list(prepared.images.glob("*.jpg"))
    labels = list(prepared.labels.glob("*.txt"))
    return pd.DataFrame(
        [("images", len(images)), ("labels", len(labels)), ("reused", "yes")],
        columns=["metric", "value"],
    )


def tfrecords_dir(prepared: PreparedDataset) -> Path:
    """Folder holding the TFRecords."""
    return Path(prepared.tfrecords_pattern).parent


def dataset_statistics(prepared: PreparedDataset) -> tuple[pd.DataFrame, Any]:
    """Per-class counts, boxes per image and box sizes read back from the TFRecords, plus a
    Figure (box count per class, boxes per image, box height histogram)."""
    from cvlab.flir.tfrecords import read_tfrecords

    df = read_tfrecords(prepared.tfrecords_pattern)
    try:
        from cvlab.flir.stats import plot_dataset_stats

        fig = plot_dataset_stats(df)
    except ImportError:
        fig = _plot_stats(df)
    objects = df[df["object_class"].notna()]
    per_class = objects.groupby("object_class").agg(
        boxes=("x1", "size"),
        images=("frame_id", "nunique"),
        median_height=("y2", lambda s: float((s - objects.loc[s.index, "y1"]).median())),
    )
    per_class["frames_total"] = df["frame_id"].nunique()
    return per_class.reset_index(), fig


def _plot_stats(df: pd.DataFrame) -> Any:
    import matplotlib.pyplot as plt

    objects = df[df["object_class"].notna()]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    objects["object_class"].value_counts().plot.bar(ax=axes[0], title="boxes per class")
    df.groupby("frame_id")["object_class"].count().plot.hist(
        ax=axes[1], bins=15, title="boxes per image"
    )
    (objects["y2"] - objects["y1"]).plot.hist(ax=axes[2], bins=20, title="box height (px)")
    fig.tight_layout()
    plt.show()
    return fig


def training_images(prepared: PreparedDataset) -> list[Path]:
    """Prepared images of the training folds (sorted)."""
    val = set(prepared.validation_ids())
    return [p for p in sorted(prepared.images.glob("*.jpg")) if p.stem not in val]


def validation_images(prepared: PreparedDataset) -> list[Path]:
    """Prepared images of the validation fold (held out from training), sorted."""
    val = set(prepared.validation_ids())
    return [p for p in sorted(prepared.images.glob("*.jpg")) if p.stem in val]


# --------------------------------------------------------------------------- 03 training

#: Epochs of the tiny embedded-default run (about 2 minutes on 2 CPU cores).
TINY_EPOCHS = 12


@dataclass
class TrainedModel:
    """The trained Keras model and its training record."""

    model_path: Path
    output_dir: Path
    history: pd.DataFrame
    input_size: tuple[int, int]
    class_names: tuple[str, ...]

    def load(self) -> Any:
        """The Keras model (loaded from ``model_path``)."""
        import keras

        import cvlab.train.model  # noqa: F401  (registers the custom layers)

        return keras.models.load_model(self.model_path, compile=False)


def _train_config(name: str, class_names: Sequence[str]) -> Any:
    from cvlab.train.trainer import TrainConfig

    if name == "tiny":
        return TrainConfig.tiny(class_names=tuple(class_names), epochs=TINY_EPOCHS, threads=2)
    if name == "peoplenet":
        from cvlab.train.model import PEOPLENET_CONFIG

        return TrainConfig(class_names=tuple(class_names), model=PEOPLENET_CONFIG, epochs=60)
    raise ValueError(f"MODEL_CONFIG must be 'tiny' or 'peoplenet', got {name!r}")


def ensure_trained_model(
    ws: Workspace,
    prepared: PreparedDataset | None = None,
    *,
    config: str = "tiny",
    epochs: int | None = None,
    batch_size: int | None = None,
    force: bool = False,
) -> TrainedModel:
    """Train DetectNet_v2 on the prepared TFRecords with cvlab's trainer (once; ``force``
    retrains from scratch). Returns the model path and the history DataFrame."""
    state = ws.state().get("trained")
    if state and not force and Path(state["model_path"]).exists():
        return TrainedModel(
            model_path=Path(state["model_path"]),
            output_dir=Path(state["output_dir"]),
            history=pd.read_csv(state["metrics_csv"]),
            input_size=tuple(state["input_size"]),
            class_names=tuple(state["class_names"]),
        )
    from cvlab.train.trainer import train

    prepared = prepared or ensure_prepared_dataset(ws)
    train_config = _train_config(config, prepared.class_names)
    if force and ws.training.exists():
        shutil.rmtree(ws.training)
    result = train(
        train_config,
        prepared.tfrecords_pattern,
        prepared.root,
        ws.training,
        epochs=epochs,
        batch_size=batch_size,
        resume=not force,
        progress=True,
        validate_every=epochs or train_config.epochs,
    )
    trained = TrainedModel(
        model_path=Path(result.model_path),
        output_dir=ws.training,
        history=result.history,
        input_size=tuple(train_config.model.input_size),
        class_names=tuple(train_config.class_names),
    )
    ws.update_state(
        trained={
            "model_path": trained.model_path,
            "output_dir": trained.output_dir,
            "metrics_csv": result.metrics_csv,
            "input_size": trained.input_size,
            "class_names": trained.class_names,
            "config": config,
        }
    )
    return trained


def plot_history(history: pd.DataFrame) -> Any:
    """Loss terms and validation mAP per epoch (cvlab.train.metrics.plot_training), inline."""
    import matplotlib.pyplot as plt

    from cvlab.train.metrics import plot_training

    fig = plot_training(history)
    plt.show()
    return fig


@dataclass
class TaoStep:
    """The TAO training spec written for the prepared dataset and the commands to run."""

    spec_path: Path
    commands: list[str]
    available: bool


def write_tao_spec(
    ws: Workspace,
    prepared: PreparedDataset,
    *,
    num_epochs: int = 60,
    key: str = "tlt_encode",
    gpus: int = 8,
) -> TaoStep:
    """Write the lab's DetectNet_v2 training spec (TAO protobuf) for ``prepared`` and build the
    ``detectnet_v2 train/export`` commands (run them where TAO is installed)."""
    from cvlab.train.spec import build_lab_spec, load_training_spec, write_training_spec

    spec = build_lab_spec(
        prepared.tfrecords_pattern,
        str(prepared.root),
        class_names=prepared.class_names,
        num_epochs=num_epochs,
        image_extension="jpg",
    )
    spec_path = write_training_spec(spec, ws.training.parent / "tao" / "training_spec.txt")
    load_training_spec(spec_path)  # parse back: the file is valid for TAO's schema
    results = ws.root / "tao" / "experiments"
    commands, available = _tao_commands(spec_path, results, key, gpus)
    return TaoStep(Path(spec_path), commands, available)


def _tao_commands(spec: Path, results: Path, key: str, gpus: int) -> tuple[list[str], bool]:
    from cvlab.train import tao

    commands = [
        tao.detectnet_v2_train(spec, results, name="final_model", key=key, gpus=gpus),
        tao.detectnet_v2_export(
            results / "weights" / "final_model.tlt", results / "final_model.etlt", key=key
        ),
        tao.detectnet_v2_train(
            spec, results, name="final_model", key=key, gpus=gpus, launcher="tao5"
        ),
    ]
    return [_shell(c) for c in commands], bool(tao.tao_available())


def _shell(command: Any) -> str:
    import shlex

    if isinstance(command, str):
        return command
    if hasattr(command, "shell"):
        return str(command.shell)
    return shlex.join(str(c) for c in command)


# --------------------------------------------------------------------------- 04 deploy


@dataclass
class OnnxExport:
    """The exported ONNX model and how far it is from Keras."""

    path: Path
    max_abs_diff: float


def ensure_onnx(
    ws: Workspace, trained: TrainedModel | None = None, *, atol: float = 1e-4, force: bool = False
) -> OnnxExport:
    """Export the trained model to ``ws.export/model.onnx`` with Triton's names and dynamic
    batch, checked against Keras with onnxruntime (max |diff| <= ``atol``, else an error)."""
    path = ws.export / "model.onnx"
    state = ws.state().get("onnx")
    if state and not force and path.exists():
        return OnnxExport(path, float(state["max_abs_diff"]))
    trained = trained or ensure_trained_model(ws)
    model = trained.load()
    ws.export.mkdir(parents=True, exist_ok=True)
    try:
        from cvlab.train.export import export_onnx
    except ImportError:
        export_onnx = None
    if export_onnx is not None:
        report = _call_with_supported(export_onnx, model, path, check=True, atol=atol)
        diff = float(_report_value(report, "max_abs_diff", "max_diff") or 0.0)
    else:
        from cvlab.triton.onnx_export import check_onnx_matches_keras, export_keras_to_onnx

        export_keras_to_onnx(model, path)
        diff = float(check_onnx_matches_keras(model, path, atol=atol))
    if diff > atol:
        raise ValueError(f"{path}: ONNX differs from Keras by {diff:.2e} > atol {atol}")
    ws.update_state(onnx={"path": path, "max_abs_diff": diff})
    return OnnxExport(path, diff)


@dataclass
class EngineStep:
    """TensorRT: the engine when built here, else the commands that build it."""

    message: str
    commands: list[str]
    engine_path: Path | None = None


def tensorrt_step(
    ws: Workspace,
    onnx_path: Path,
    trained: TrainedModel,
    *,
    precision: str = "fp16",
    max_batch_size: int = 16,
) -> EngineStep:
    """Build the TensorRT engine with the TensorRT API when it is importable; otherwise
    return the equivalent ``trtexec`` command and the lab's ``tao-converter`` command."""
    from cvlab.train import tensorrt as trt

    engine = ws.export / "model.plan"
    w, h = trained.input_size
    calibration: list[str] = []
    if precision == "int8":
        prepared = ensure_prepared_dataset(ws)
        calibration = [str(p) for p in training_images(prepared)]
    plan = trt.EngineBuildPlan.from_onnx(
        onnx_path,
        engine,
        precision=precision,
        max_batch=max_batch_size,
        opt_batch=min(8, max_batch_size),
        calibration_cache=ws.export / "calibration.cache",
        calibration_images=calibration,
        timing_cache=ws.export / "timing.cache",
    )
    commands = [
        _shell(trt.trtexec_command(plan)),
        _shell(
            trt.tao_converter_command(
                ws.export / "model.etlt",
                "tlt_encode",
                dims=(3, h, w),
                engine=engine,
                data_type=precision,
                max_batch=max_batch_size,
            )
        ),
    ]
    if trt.tensorrt_available():
        trt.build_engine(plan)
        return EngineStep(
            f"TensorRT engine built with the TensorRT API: {engine}", commands, engine
        )
    return EngineStep(
        "TensorRT is not installed here (no GPU): build the engine where it is with the "
        "trtexec command (ONNX) or, for a TAO .etlt, the tao-converter command",
        commands,
    )


@dataclass
class IrRepositories:
    """The two model repositories written for the IR model."""

    local_model_dir: Path
    lab_config_path: Path
    lab_config_text: str
    problems_table: pd.DataFrame


def ensure_ir_repository(
    ws: Workspace,
    trained: TrainedModel | None = None,
    onnx_path: Path | None = None,
    *,
    name: str = IR_MODEL_NAME,
    lab_name: str = LAB_IR_MODEL_NAME,
    engine: Path | None = None,
    max_batch_size: int = 16,
) -> IrRepositories:
    """Write ``model_repository/<name>`` (CPU-servable: ONNX via Triton's python backend) and
    ``model_repository_gke/<lab_name>/config.pbtxt`` (the lab's tensorrt_plan config, with
    ``1/model.plan`` when an engine exists). Both configs use Triton's protobuf schema."""
    from cvlab.triton.model_repository import (
        build_model_config,
        config_to_text,
        peoplenet_spec,
        validate_model_repository,
        write_model_repository,
    )

    trained = trained or ensure_trained_model(ws)
    onnx_path = onnx_path or ensure_onnx(ws, trained).path
    n = len(trained.class_names)
    local = write_model_repository(
        ws.model_repository,
        peoplenet_spec(name, n, trained.input_size, max_batch_size),
        onnx_path,
        target="python",
    )
    lab_spec = peoplenet_spec(lab_name, n, trained.input_size, max_batch_size)
    lab_dir = ws.gke_model_repository / lab_name
    if engine is not None and Path(engine).exists():
        write_model_repository(ws.gke_model_repository, lab_spec, engine, target="tensorrt_plan")
    else:
        atomic_write_text(
            lab_dir / "config.pbtxt", config_to_text(build_model_config(lab_spec, "tensorrt_plan"))
        )
    problems = validate_model_repository(ws.model_repository)
    table = pd.DataFrame(
        {
            "repository": [str(ws.model_repository)] * max(1, len(problems)),
            "problem": problems or ["none: config.pbtxt files agree with the model files"],
        }
    )
    return IrRepositories(
        Path(local), lab_dir / "config.pbtxt", (lab_dir / "config.pbtxt").read_text(), table
    )


class LocalGcsEmulator:
    """gcp-storage-emulator in this process on 127.0.0.1 (a real GCS JSON API server).

    Example:
        >>> with LocalGcsEmulator("cvlab-lab") as emu:  # doctest: +SKIP
        ...     print(emu.endpoint)
    """

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self._server: Any = None
        self.endpoint = ""

    def start(self) -> LocalGcsEmulator:
        from gcp_storage_emulator.server import create_server

        self._server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=self.bucket)
        self._server.start()
        port = self._server._api._httpd.server_address[1]  # the emulator has no public accessor
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def triton_env(self, mount_dir: Path) -> dict[str, str]:
        """Environment for tritonserver to read gs:// from this emulator (no credentials)."""
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()  # nothing listens there: the metadata-server lookup fails fast
        return {
            "CLOUD_STORAGE_EMULATOR_ENDPOINT": self.endpoint,
            "GCE_METADATA_ROOT": f"127.0.0.1:{port}",
            "TRITON_GCS_MOUNT_DIRECTORY": str(mount_dir),
        }

    def __enter__(self) -> LocalGcsEmulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class Deployment:
    """Outcome of :func:`deploy_from_gcs`."""

    gcs_url: str
    upload_table: pd.DataFrame
    message: str
    ready: bool


def deploy_from_gcs(
    ws: Workspace,
    gcs_url: str | None = None,
    *,
    project: str | None = None,
    model_name: str = IR_MODEL_NAME,
    smoke_images: int = 2,
) -> Deployment:
    """Upload the local model repository to GCS and check Triton serves ``model_name`` from it.

    ``gcs_url=None``: a local emulator bucket; a local tritonserver is started on the gs://
    URL, must report the model ready and answer a smoke inference, then both are stopped.
    A real bucket is only uploaded to (default credentials, never printed); the GKE Triton
    then loads it (``cvlab deploy``)."""
    from cvlab.cloud.gcs import make_client, upload_directory

    if not (ws.model_repository / model_name / "config.pbtxt").exists():
        ensure_ir_repository(ws, name=model_name)
    if gcs_url is not None:
        client = make_client(project=project)
        report = upload_directory(ws.model_repository, gcs_url, client=client, progress=True)
        return Deployment(
            gcs_url,
            report.to_dataframe(),
            report.summary() + f"\nnext: point the GKE Triton at {gcs_url} (cvlab deploy)",
            False,
        )
    gcs_url = "gs://cvlab-lab/triton-model"
    with LocalGcsEmulator("cvlab-lab") as emulator:
        client = make_client(emulator_host=emulator.endpoint)
        report = upload_directory(ws.model_repository, gcs_url, client=client, progress=True)
        mount = ws.root / "triton_gcs_mount"
        mount.mkdir(parents=True, exist_ok=True)
        server = start_triton(gcs_url, env=emulator.triton_env(mount))
        try:
            ready = bool(server.model_ready(model_name))
            smoke = ""
            if ready and smoke_images:
                state = ws.state().get("dataset")
                images = sorted(Path(state["images"]).glob("*.jpg"))[:smoke_images] if state else []
                if images:
                    dets = run_inference(
                        server.http_url, model_name, images, ir_postprocessing_config(ws)
                    )
                    smoke = f"; smoke inference on {len(images)} images: " + ", ".join(
                        f"{len(d)} boxes" for d in dets
                    )
        finally:
            server.stop()
    message = (
        f"{report.summary()}\nTriton loaded {gcs_url} from the local GCS emulator: "
        f"model {model_name} {'READY' if ready else 'NOT READY'}{smoke}"
    )
    if not ready:
        raise RuntimeError(message)
    return Deployment(gcs_url, report.to_dataframe(), message, ready)


# --------------------------------------------------------------------------- 05 evaluation


def ir_postprocessing_config(
    ws: Workspace | None = None,
    path: str | os.PathLike[str] | None = None,
    confidence_threshold: float | None = None,
) -> Any:
    """The PeopleNet IR clustering config (person), optionally with another DBSCAN
    confidence threshold."""
    from cvlab.postprocess_config import PEOPLENET_IR_CONFIG, load_clustering_config

    config = load_clustering_config(path or PEOPLENET_IR_CONFIG).for_classes(("person",))
    return _with_threshold(config, confidence_threshold)


def rgb_person_config(confidence_threshold: float | None = None) -> Any:
    """The PeopleNet RGB clustering config reduced to ``person`` (for thermal evaluation)."""
    from cvlab.postprocess_config import PEOPLENET_RGB_CONFIG, load_clustering_config

    config = load_clustering_config(PEOPLENET_RGB_CONFIG)
    return _with_threshold(config, confidence_threshold)


def _with_threshold(config: Any, threshold: float | None) -> Any:
    if threshold is None:
        return config
    classes = {
        n: dataclasses.replace(c, dbscan_confidence_threshold=float(threshold))
        for n, c in config.classes.items()
    }
    return dataclasses.replace(config, classes=classes)


def evaluation_set(
    ws: Workspace,
    images_dir: str | os.PathLike[str] | None = None,
    labels_dir: str | os.PathLike[str] | None = None,
    class_names: Sequence[str] = ("person",),
) -> tuple[list[Path], list[Any]]:
    """Held-out thermal images and their ground truth: the validation fold of the prepared
    dataset by default, or ``images_dir`` + ``labels_dir`` (KITTI)."""
    if images_dir is not None:
        if labels_dir is None:
            raise ValueError("IMAGES_DIR needs LABELS_DIR (KITTI ground truth) for evaluation")
        images = input_images(images_dir)
        return images, read_ground_truth(Path(labels_dir), images, class_names)
    prepared = ensure_prepared_dataset(ws)
    images = validation_images(prepared)
    return images, read_ground_truth(prepared.labels, images, class_names)


def evaluate(
    predictions: Sequence[Any],
    truth: Sequence[Any],
    class_names: Sequence[str],
    mode: str = "INTEGRATE",
) -> Any:
    """TAO's evaluation (IoU 0.5, min box 4x4) on predictions restricted to ``class_names``."""
    from cvlab.train.evaluate import evaluate_detections

    return evaluate_detections(list(predictions), list(truth), tuple(class_names), mode=mode)


def compare_evaluations(results: dict[str, Any]) -> pd.DataFrame:
    """AP (and precision/recall where given) of several models side by side, one row each."""
    rows = []
    for label, result in results.items():
        table = result.per_class
        for _, r in table.iterrows():
            rows.append({"model": label, **{k: r[k] for k in table.columns}})
    return pd.DataFrame(rows)


def show_before_after(
    images: Sequence[Path],
    before: Sequence[Any],
    after: Sequence[Any],
    truth: Sequence[Any],
    before_config: Any,
    after_config: Any,
) -> Any:
    """Side-by-side overlays: RGB model (left) and IR model (right), ground truth in white."""
    import matplotlib.pyplot as plt

    from cvlab.preprocess import load_image

    n = len(images)
    fig, axes = plt.subplots(n, 2, figsize=(12, 3.4 * n), squeeze=False)
    for i, path in enumerate(images):
        rgb = load_image(path)
        for j, (dets, cfg, label) in enumerate(
            ((before[i], before_config, "RGB model"), (after[i], after_config, "IR model"))
        ):
            axes[i, j].imshow(_overlay(rgb, dets, cfg, truth[i]))
            axes[i, j].set_title(f"{label}: {Path(path).name} ({len(dets)} boxes)", fontsize=9)
            axes[i, j].axis("off")
    fig.tight_layout()
    plt.show()
    return fig
