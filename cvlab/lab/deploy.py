"""Lab deployment steps: ONNX export, the TensorRT engine (or its commands), the Triton model
repositories, and the GCS upload with a Triton (re)load from ``gs://``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cvlab.lab.data import ensure_prepared_dataset, training_images
from cvlab.lab.inference import ir_postprocessing_config, run_inference, start_triton
from cvlab.lab.training import TrainedModel, ensure_trained_model, shell_line
from cvlab.lab.workspace import (
    IR_MODEL_NAME,
    LAB_IR_MODEL_NAME,
    Workspace,
)


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
    from cvlab.export.onnx import export_onnx

    diff = float(export_onnx(model, path, check=True, atol=atol).max_abs_diff or 0.0)
    if diff > atol:
        raise ValueError(f"{path}: ONNX differs from Keras by {diff:.2e} > atol {atol}")
    ws.update_state(onnx={"path": path, "max_abs_diff": diff})
    return OnnxExport(path, diff)


#: The bucket of the offline demo: a local GCS emulator, never Google Cloud.
EMULATOR_MODEL_REPOSITORY = "gs://cvlab-lab/triton-model"


@dataclass
class EngineStep:
    """TensorRT: the engine when built here, else the command that builds it (from the ONNX
    file written here; the lab's ``.etlt`` route is in :func:`cvlab.lab.real_setup.ir_model_steps`)."""

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
    from cvlab.export import tensorrt as trt

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
    commands = [shell_line(trt.trtexec_command(plan))]
    if trt.tensorrt_available():
        trt.build_engine(plan)
        return EngineStep(
            f"TensorRT engine built with the TensorRT API: {engine}", commands, engine
        )
    return EngineStep(
        f"TensorRT is not installed here (no GPU). On a GPU machine this command builds the "
        f"engine from the ONNX file exported above ({w}x{h} input, batch 1-{max_batch_size}, "
        f"{precision}):",
        commands,
    )


#: The repository check's line when it found nothing wrong.
REPOSITORY_VALID = "valid: every config.pbtxt agrees with its model files"


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
    ``model_repository_gke/<lab_name>/config.pbtxt`` (the lab's tensorrt_plan config for the real
    960x544 engine, with ``1/model.plan`` when an engine of that size was built here). Both
    configs use Triton's protobuf schema."""
    from cvlab.triton.model_repository import (
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
    # the lab's GKE model: the real 960x544 engine's config (real-setup steps of 04); an engine
    # built here joins it only when it has that size (the offline model's does not)
    from cvlab.detectnet import PEOPLENET_INPUT_SIZE
    from cvlab.lab.real_setup import lab_model_config

    lab_config = lab_model_config(ws.gke_model_repository, lab_name, n)
    if engine is not None and Path(engine).exists() and trained.input_size == PEOPLENET_INPUT_SIZE:
        lab_spec = peoplenet_spec(lab_name, n, trained.input_size, max_batch_size)
        write_model_repository(ws.gke_model_repository, lab_spec, engine, target="tensorrt_plan")
    problems = validate_model_repository(ws.model_repository)
    table = pd.DataFrame(
        {
            "repository": [str(ws.model_repository)] * max(1, len(problems)),
            "problem": problems or [REPOSITORY_VALID],
        }
    )
    return IrRepositories(Path(local), lab_config, lab_config.read_text(), table)


def deploy_checks(
    onnx: OnnxExport,
    engine: EngineStep,
    repos: IrRepositories,
    deployment: Deployment,
    atol: float,
) -> pd.DataFrame:
    """The deployment's checks in one table (step, result): ONNX against Keras, TensorRT, the
    repository, the upload, Triton's status and the smoke inference."""
    rows = pd.DataFrame(
        [
            ("ONNX export", f"max |ONNX - Keras| {onnx.max_abs_diff:.1e} <= {atol:g}"),
            ("TensorRT", "engine built" if engine.engine_path else "command printed (no GPU)"),
            ("model repository", "; ".join(repos.problems_table["problem"])),
            ("GKE config", _config_summary(repos.lab_config_path)),
        ],
        columns=["step", "result"],
    )
    return pd.concat([rows, deployment.checks_table()], ignore_index=True)


def _config_summary(path: Path) -> str:
    """``name: input 3x544x960, grids 34x60`` for a written config.pbtxt."""
    from cvlab.triton.model_repository import read_model_config

    config = read_model_config(path)
    dims = "x".join(str(d) for d in config.input[0].dims)
    grid = "x".join(str(d) for d in config.output[0].dims[1:])
    return f"{config.name} ({config.platform}): input {dims}, grids {grid}"


def repository_tree(root: str | os.PathLike[str]) -> str:
    """A model repository as an indented tree with file sizes (``tree``-like, Python caches
    left out).

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "m" / "1").mkdir(parents=True)
    >>> _ = (root / "m" / "config.pbtxt").write_text("name: 'm'")
    >>> print(repository_tree(root).split(chr(10), 1)[1])
    └── m/
        ├── 1/
        └── config.pbtxt  (9 B)
    """
    root = Path(root)
    lines = [f"{root.name}/"]

    def walk(folder: Path, prefix: str) -> None:
        entries = sorted(
            (p for p in folder.iterdir() if p.name != "__pycache__" and p.suffix != ".pyc"),
            key=lambda p: (p.is_file(), p.name),
        )
        for i, path in enumerate(entries):
            last = i == len(entries) - 1
            branch = "└── " if last else "├── "
            if path.is_dir():
                lines.append(f"{prefix}{branch}{path.name}/")
                walk(path, prefix + ("    " if last else "│   "))
            else:
                lines.append(f"{prefix}{branch}{path.name}  ({_size(path.stat().st_size)})")

    if root.is_dir():
        walk(root, "")
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


@dataclass
class Deployment:
    """Outcome of :func:`deploy_from_gcs`: the upload, Triton's status and (offline) the smoke
    inference's images and detections, to show."""

    gcs_url: str
    upload_table: pd.DataFrame
    message: str
    ready: bool
    smoke_images: list[Path] = field(default_factory=list)
    smoke_detections: list[Any] = field(default_factory=list)
    smoke_config: Any = None
    smoke_truth: list[Any] = field(default_factory=list)

    def checks_table(self) -> pd.DataFrame:
        """The deployment's checks as a small table (step, result)."""
        rows = [
            ("upload", f"{len(self.upload_table)} files to {self.gcs_url}"),
            ("Triton", "model READY" if self.ready else "uploaded (Triton on GKE loads it)"),
        ]
        if self.smoke_images:
            boxes = ", ".join(str(len(d)) for d in self.smoke_detections)
            rows.append(
                ("smoke inference", f"{len(self.smoke_images)} validation frames: {boxes} boxes")
            )
        return pd.DataFrame(rows, columns=["step", "result"])


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
    from cvlab.cloud.gcs import GcsLocation, make_client, upload_directory
    from cvlab.cloud.gcs_emulator import GcsEmulator

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
    gcs_url = EMULATOR_MODEL_REPOSITORY
    with GcsEmulator(GcsLocation.parse(gcs_url).bucket) as emulator:
        client = emulator.client()
        report = upload_directory(ws.model_repository, gcs_url, client=client, progress=True)
        mount = ws.root / "triton_gcs_mount"
        mount.mkdir(parents=True, exist_ok=True)
        server = start_triton(gcs_url, env=emulator.triton_env(mount))
        images: list[Path] = []
        truth: list[Any] = []
        dets: list[Any] = []
        config = ir_postprocessing_config(ws)
        try:
            ready = bool(server.model_ready(model_name))
            smoke = ""
            if ready and smoke_images:
                images, truth = _smoke_frames(ws, smoke_images)
                if images:
                    dets = run_inference(
                        server.http_url, model_name, images, config, progress=False
                    ).detections
                    smoke = f"; smoke inference on {len(images)} validation frames: " + ", ".join(
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
    return Deployment(gcs_url, report.to_dataframe(), message, ready, images, dets, config, truth)


def _smoke_frames(ws: Workspace, n: int) -> tuple[list[Path], list[Any]]:
    """The last ``n`` validation frames (held out from training; notebook 05 pictures the
    first ones) and their ground truth, when notebook 02 prepared the dataset."""
    from cvlab.lab.data import evaluation_set

    if "dataset" not in ws.state() or n < 1:
        return [], []
    images, truth = evaluation_set(ws)
    return images[-n:], truth[-n:]
