"""Triton model repositories: write, read and check ``<repo>/<model>/config.pbtxt`` + versions.

``config.pbtxt`` is built and parsed with Triton's own protobuf schema
(``tritonclient.grpc.model_config_pb2.ModelConfig``) and ``google.protobuf.text_format``,
never with string templates. One :class:`ModelSpec` describes the model; one call writes it
for any of three targets:

- ``tensorrt_plan``: ``<version>/model.plan`` (a TensorRT engine, as served on GKE);
- ``onnxruntime_onnx``: ``<version>/model.onnx``;
- ``python``: ``<version>/model.py`` + ``<version>/model.onnx``; ``model.py`` runs the ONNX
  model with onnxruntime (the bundled CPU tritonserver of nvidia-pytriton has only this backend).

Example:
    >>> import tempfile, pathlib
    >>> spec = peoplenet_spec("peoplenet", num_classes=3)
    >>> repo = pathlib.Path(tempfile.mkdtemp())
    >>> plan = repo / "engine.plan"; _ = plan.write_bytes(b"not a real engine")
    >>> write_model_repository(repo, spec, plan, target="tensorrt_plan").name
    'peoplenet'
    >>> read_model_config(repo / "peoplenet" / "config.pbtxt").max_batch_size
    16
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from cvlab.detectnet import BBOX_OUTPUT, COV_OUTPUT, INPUT_NAME, PEOPLENET_INPUT_SIZE
from cvlab.errors import ConfigError
from cvlab.fileio import atomic_path, atomic_write_text, safe_path

TARGETS = ("tensorrt_plan", "onnxruntime_onnx", "python")
#: model file name inside the version directory, per target
MODEL_FILENAMES = {
    "tensorrt_plan": "model.plan",
    "onnxruntime_onnx": "model.onnx",
    "python": "model.py",
}


class ModelConfigError(ConfigError):
    """A config.pbtxt (or a model file next to it) that is wrong; the message names file and field."""


@dataclass
class ModelSpec:
    """What Triton needs to know about a model (one input, several outputs, FP32).

    ``input_dims`` and output dims exclude the batch dimension (Triton adds it when
    ``max_batch_size > 0``).
    """

    name: str
    input_name: str = INPUT_NAME
    input_dims: tuple[int, ...] = (3, 544, 960)
    input_format: str = "FORMAT_NCHW"
    outputs: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    max_batch_size: int = 16
    dynamic_batching: bool = True
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    instance_count: int = 1
    instance_kind: str = "KIND_CPU"
    data_type: str = "TYPE_FP32"

    @property
    def output_names(self) -> list[str]:
        return [name for name, _ in self.outputs]


def peoplenet_spec(
    name: str = "peoplenet",
    num_classes: int = 3,
    input_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    max_batch_size: int = 16,
    stride: int = 16,
) -> ModelSpec:
    """The lab's PeopleNet/DetectNet_v2 config: input_1 [3,H,W], bbox [4C,H/16,W/16], cov [C,...]."""
    w, h = input_size
    if w % stride or h % stride:
        raise ValueError(f"input_size {input_size} must be a multiple of the stride {stride}")
    gw, gh = w // stride, h // stride
    return ModelSpec(
        name=name,
        input_dims=(3, h, w),
        outputs=[(BBOX_OUTPUT, (4 * num_classes, gh, gw)), (COV_OUTPUT, (num_classes, gh, gw))],
        max_batch_size=max_batch_size,
    )


# --- spec <-> protobuf ----------------------------------------------------------------------------
def build_model_config(spec: ModelSpec, target: str) -> mc.ModelConfig:
    """The ModelConfig message for ``spec`` served by ``target`` (see :data:`TARGETS`)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    cfg = mc.ModelConfig(name=spec.name, max_batch_size=spec.max_batch_size)
    if target == "python":
        cfg.backend = "python"
    else:
        cfg.platform = target
    cfg.input.add(
        name=spec.input_name,
        data_type=mc.DataType.Value(spec.data_type),
        format=mc.ModelInput.Format.Value(spec.input_format),
        dims=list(spec.input_dims),
    )
    for out_name, dims in spec.outputs:
        cfg.output.add(name=out_name, data_type=mc.DataType.Value(spec.data_type), dims=list(dims))
    if spec.dynamic_batching:
        cfg.dynamic_batching.SetInParent()
        cfg.dynamic_batching.preferred_batch_size.extend(spec.preferred_batch_sizes)
        cfg.dynamic_batching.max_queue_delay_microseconds = spec.max_queue_delay_us
    if target != "tensorrt_plan" or spec.instance_kind != "KIND_CPU":
        cfg.instance_group.add(
            count=spec.instance_count, kind=mc.ModelInstanceGroup.Kind.Value(spec.instance_kind)
        )
    validate_model_config(cfg)
    return cfg


def spec_from_config(cfg: mc.ModelConfig) -> ModelSpec:
    """The :class:`ModelSpec` described by a ModelConfig (first input; all outputs)."""
    validate_model_config(cfg)
    inp = cfg.input[0]
    group = cfg.instance_group[0] if cfg.instance_group else None
    return ModelSpec(
        name=cfg.name,
        input_name=inp.name,
        input_dims=tuple(inp.dims),
        input_format=mc.ModelInput.Format.Name(inp.format),
        outputs=[(o.name, tuple(o.dims)) for o in cfg.output],
        max_batch_size=cfg.max_batch_size,
        dynamic_batching=cfg.HasField("dynamic_batching"),
        preferred_batch_sizes=tuple(cfg.dynamic_batching.preferred_batch_size),
        max_queue_delay_us=cfg.dynamic_batching.max_queue_delay_microseconds,
        instance_count=group.count if group and group.count else 1,
        instance_kind=mc.ModelInstanceGroup.Kind.Name(group.kind) if group else "KIND_CPU",
        data_type=mc.DataType.Name(inp.data_type),
    )


def validate_model_config(cfg: mc.ModelConfig, source: str = "<config>") -> None:
    """Raise :class:`ModelConfigError` naming ``source`` and the field when ``cfg`` is unusable."""

    def fail(field_name: str, why: str) -> None:
        raise ModelConfigError(f"{source}: field {field_name}: {why}")

    if not cfg.name:
        fail("name", "missing")
    if not cfg.platform and not cfg.backend:
        fail("platform", "neither platform nor backend is set")
    if cfg.max_batch_size < 0:
        fail("max_batch_size", f"must be >= 0, got {cfg.max_batch_size}")
    if not cfg.input:
        fail("input", "no inputs")
    if not cfg.output:
        fail("output", "no outputs")
    for kind, tensors in (("input", cfg.input), ("output", cfg.output)):
        seen: set[str] = set()
        for i, t in enumerate(tensors):
            if not t.name:
                fail(f"{kind}[{i}].name", "missing")
            if t.name in seen:
                fail(f"{kind}[{i}].name", f"duplicate name {t.name!r}")
            seen.add(t.name)
            if t.data_type == mc.TYPE_INVALID:
                fail(f"{kind}[{i}].data_type", f"missing for {t.name!r}")
            if not t.dims:
                fail(f"{kind}[{i}].dims", f"missing for {t.name!r}")
            if any(d == 0 or d < -1 for d in t.dims):
                fail(f"{kind}[{i}].dims", f"invalid dims {list(t.dims)} for {t.name!r}")


def config_to_text(cfg: mc.ModelConfig) -> str:
    """Protobuf text format of ``cfg`` (what goes into config.pbtxt)."""
    return text_format.MessageToString(cfg)


def parse_model_config(text: str, source: str = "<config>") -> mc.ModelConfig:
    """Parse config.pbtxt text; errors name ``source`` with the line and column."""
    cfg = mc.ModelConfig()
    try:
        text_format.Parse(text, cfg)
    except text_format.ParseError as exc:
        raise ModelConfigError(f"{source}:{exc}") from None
    validate_model_config(cfg, source)
    return cfg


def read_model_config(path: str | os.PathLike) -> mc.ModelConfig:
    """Read and validate a config.pbtxt file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ModelConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_model_config(text, str(path))


# --- writing --------------------------------------------------------------------------------------
#: The python-backend model copied as ``<version>/model.py`` (a real file of this package).
PYTHON_MODEL_FILE = Path(__file__).resolve().parent / "python_backend" / "model.py"


def _atomic_copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def write_model_repository(
    repo_dir: str | os.PathLike,
    spec: ModelSpec,
    model_file: str | os.PathLike,
    target: str = "python",
    version: int = 1,
) -> Path:
    """Write ``<repo>/<spec.name>/config.pbtxt`` and ``<repo>/<spec.name>/<version>/<model>``.

    ``model_file`` is a TensorRT engine for ``tensorrt_plan``, an ONNX file otherwise (for the
    ``python`` target it is copied next to the generated ``model.py``). Every file is written
    atomically. Returns the model directory.
    """
    model_file = Path(model_file)
    if not model_file.is_file():
        raise FileNotFoundError(f"model file not found: {model_file}")
    cfg = build_model_config(spec, target)
    model_dir = safe_path(repo_dir, spec.name)  # a name from a config.pbtxt stays in repo_dir
    version_dir = model_dir / str(int(version))
    version_dir.mkdir(parents=True, exist_ok=True)
    if target == "python":
        _atomic_copy(model_file, version_dir / "model.onnx")
        _atomic_copy(PYTHON_MODEL_FILE, version_dir / "model.py")
    else:
        _atomic_copy(model_file, version_dir / MODEL_FILENAMES[target])
    atomic_write_text(model_dir / "config.pbtxt", config_to_text(cfg))
    return model_dir


# --- checking -------------------------------------------------------------------------------------
def _onnx_problems(onnx_path: Path, cfg: mc.ModelConfig, config_path: Path) -> list[str]:
    import onnx

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a problem to report
        return [f"{onnx_path}: not a readable ONNX model: {exc}"]
    problems = []

    def dims_of(value_info) -> list[int]:
        return [
            d.dim_value if d.HasField("dim_value") else -1
            for d in value_info.type.tensor_type.shape.dim
        ]

    init_names = {i.name for i in model.graph.initializer}
    graph_tensors = {
        "input": {v.name: dims_of(v) for v in model.graph.input if v.name not in init_names},
        "output": {v.name: dims_of(v) for v in model.graph.output},
    }
    for kind, tensors in (("input", cfg.input), ("output", cfg.output)):
        available = graph_tensors[kind]
        for i, t in enumerate(tensors):
            if t.name not in available:
                problems.append(
                    f"{config_path}: {kind}[{i}].name {t.name!r} is not an ONNX graph {kind} of "
                    f"{onnx_path} (has {sorted(available)})"
                )
                continue
            onnx_dims = available[t.name]
            expected = ([-1] if cfg.max_batch_size > 0 else []) + list(t.dims)
            agree = len(onnx_dims) == len(expected) and all(
                a == b or a == -1 or b == -1 for a, b in zip(onnx_dims, expected, strict=True)
            )
            if not agree:
                problems.append(
                    f"{config_path}: {kind}[{i}].dims {list(t.dims)} (with batch: {expected}) "
                    f"disagree with {onnx_path} {t.name!r} dims {onnx_dims}"
                )
    return problems


def validate_model_repository(
    repo_dir: str | os.PathLike, *, tensors_only: bool = False
) -> list[str]:
    """Check every model of a local repository; return the problems found (empty when fine).

    Checks: config.pbtxt parses and is complete, a numeric version directory with the model
    file the platform/backend expects exists, and ONNX files agree with the config on input/output
    names and dims. TensorRT engines can only be checked for presence here.

    ``tensors_only``: only the ONNX-versus-config disagreements, what tritonserver itself does
    not see for a python-backend model (it reports the model ready, then every request fails);
    ``cvlab triton serve`` refuses to start on them. The rest tritonserver reports itself.
    """
    repo = Path(repo_dir)
    if not repo.is_dir():
        return [] if tensors_only else [f"{repo}: not a directory"]
    problems: list[str] = []
    model_dirs = sorted(p for p in repo.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not model_dirs:
        return [] if tensors_only else [f"{repo}: no model directories"]
    for model_dir in model_dirs:
        config_path = model_dir / "config.pbtxt"
        try:
            cfg = read_model_config(config_path)
        except ModelConfigError as exc:
            problems.extend([] if tensors_only else [str(exc)])
            continue
        if tensors_only:
            problems.extend(_tensor_problems(model_dir, cfg, config_path))
            continue
        if cfg.name != model_dir.name:
            problems.append(
                f"{config_path}: field name: {cfg.name!r} differs from directory {model_dir.name!r}"
            )
        versions = sorted(p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
        if not versions:
            problems.append(f"{model_dir}: no numeric version directory (e.g. {model_dir}/1)")
            continue
        kind = "python" if cfg.backend == "python" else cfg.platform
        filename = cfg.default_model_filename or MODEL_FILENAMES.get(kind, "")
        for version_dir in versions:
            model_path = version_dir / filename if filename else None
            if model_path is None or not model_path.is_file():
                problems.append(f"{version_dir}: missing {filename or 'model file'} for {kind}")
                continue
            onnx_path = _onnx_file(version_dir, cfg)
            if onnx_path is not None:
                if onnx_path.is_file():
                    problems.extend(_onnx_problems(onnx_path, cfg, config_path))
                else:
                    problems.append(f"{version_dir}: missing model.onnx next to model.py")
    return problems


def _onnx_file(version_dir: Path, cfg: mc.ModelConfig) -> Path | None:
    """The ONNX file a version of the model runs (None: not an ONNX model)."""
    if cfg.backend == "python":
        return version_dir / "model.onnx"  # beside the generated model.py
    if cfg.platform == "onnxruntime_onnx":
        return version_dir / (cfg.default_model_filename or MODEL_FILENAMES[cfg.platform])
    return None


def _tensor_problems(model_dir: Path, cfg: mc.ModelConfig, config_path: Path) -> list[str]:
    """The ONNX-versus-config disagreements of one model (its ONNX files that exist)."""
    problems: list[str] = []
    for version_dir in sorted(p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        onnx_path = _onnx_file(version_dir, cfg)
        if onnx_path is not None and onnx_path.is_file():
            problems.extend(_onnx_problems(onnx_path, cfg, config_path))
    return problems
