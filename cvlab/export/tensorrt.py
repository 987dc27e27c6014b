"""The TensorRT engine build, as the lab does it, planned without TensorRT.

:class:`EngineBuildPlan` holds every choice (input name and dims read from the ONNX file,
optimisation profile min 1 / opt 8 / max 16, precision, workspace, calibration cache, timing
cache) and is computed and checked without TensorRT. :func:`build_engine` runs it with the
TensorRT Python API (needs TensorRT and a GPU); :func:`trtexec_command` gives the equivalent
``trtexec`` line; :func:`tao_converter_command` the legacy ``tlt-converter``/``tao-converter``
line for ``.etlt`` files.

Example:
    >>> plan = EngineBuildPlan("model.onnx", "model.plan", precision="fp16")
    >>> trtexec_command(plan).shell  # doctest: +NORMALIZE_WHITESPACE
    'trtexec --onnx=model.onnx --saveEngine=model.plan --minShapes=input_1:1x3x544x960
    --optShapes=input_1:8x3x544x960 --maxShapes=input_1:16x3x544x960 --fp16
    --memPoolSize=workspace:2048M'
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cvlab.detectnet import INPUT_NAME, OUTPUT_NAMES
from cvlab.errors import CvlabError
from cvlab.fileio import atomic_write_bytes
from cvlab.shell import Command

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")


class EnginePlanError(CvlabError, ValueError):
    """An engine build plan that TensorRT would reject; the message names the setting."""


@dataclass
class EngineBuildPlan:
    """Everything the engine build needs; checked on creation, no TensorRT required."""

    onnx_path: Path
    engine_path: Path
    input_name: str = INPUT_NAME
    input_chw: tuple[int, int, int] = (3, 544, 960)
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 16
    precision: Precision = "fp16"
    workspace_mib: int = 2048
    calibration_cache: Path | None = None
    calibration_images: list[str] = field(default_factory=list)
    calibration_batch_size: int = 8
    calibration_max_batches: int = 10
    timing_cache: Path | None = None
    output_names: tuple[str, ...] = OUTPUT_NAMES

    def __post_init__(self) -> None:
        self.onnx_path = Path(self.onnx_path)
        self.engine_path = Path(self.engine_path)
        if self.calibration_cache is not None:
            self.calibration_cache = Path(self.calibration_cache)
        if self.timing_cache is not None:
            self.timing_cache = Path(self.timing_cache)
        self.input_chw = tuple(int(v) for v in self.input_chw)
        self.calibration_images = [str(p) for p in self.calibration_images]
        self.validate()

    def validate(self) -> None:
        """Raise :class:`EnginePlanError` naming the setting that is wrong."""
        if self.precision not in PRECISIONS:
            raise EnginePlanError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise EnginePlanError(
                f"optimisation profile needs 1 <= min ({self.min_batch}) <= opt "
                f"({self.opt_batch}) <= max ({self.max_batch})"
            )
        if len(self.input_chw) != 3 or min(self.input_chw) < 1:
            raise EnginePlanError(f"input_chw must be (C, H, W) > 0, got {self.input_chw}")
        if self.workspace_mib < 1:
            raise EnginePlanError(f"workspace_mib must be >= 1, got {self.workspace_mib}")
        if self.precision == "int8":
            has_cache = self.calibration_cache is not None and self.calibration_cache.is_file()
            if self.calibration_cache is None:
                raise EnginePlanError("int8 needs calibration_cache (a file to read or write)")
            if not has_cache and len(self.calibration_images) < self.calibration_batch_size:
                raise EnginePlanError(
                    f"int8: no calibration cache at {self.calibration_cache} and "
                    f"{len(self.calibration_images)} calibration image(s) for batch size "
                    f"{self.calibration_batch_size}"
                )

    def shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, *self.input_chw)

    @property
    def profile(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """Input name -> (min, opt, max) shapes of the optimisation profile."""
        return {
            self.input_name: (
                self.shape(self.min_batch),
                self.shape(self.opt_batch),
                self.shape(self.max_batch),
            )
        }

    @property
    def workspace_bytes(self) -> int:
        return self.workspace_mib << 20

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model input."""
        return (self.input_chw[2], self.input_chw[1])

    @classmethod
    def from_onnx(
        cls, onnx_path: str | os.PathLike, engine_path: str | os.PathLike, **choices
    ) -> EngineBuildPlan:
        """A plan whose input name and [C,H,W] are read from the ONNX graph (dynamic batch
        required: the profile varies it)."""
        name, chw = read_onnx_input(onnx_path)
        return cls(Path(onnx_path), Path(engine_path), input_name=name, input_chw=chw, **choices)


def read_onnx_input(onnx_path: str | os.PathLike) -> tuple[str, tuple[int, int, int]]:
    """Name and ``(C, H, W)`` of the ONNX model's single input; its batch must be dynamic."""
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise EnginePlanError(f"{path}: expected one input, found {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise EnginePlanError(f"{path}: input {inputs[0].name!r} has rank {len(dims)}, need 4")
    if dims[0].HasField("dim_value") and dims[0].dim_value > 0:
        raise EnginePlanError(
            f"{path}: input {inputs[0].name!r} has a fixed batch of {dims[0].dim_value}; "
            "export with a dynamic batch for the min/opt/max profile"
        )
    chw = tuple(int(d.dim_value) for d in dims[1:])
    if min(chw) < 1:
        raise EnginePlanError(f"{path}: input {inputs[0].name!r} has unknown C/H/W dims {chw}")
    return inputs[0].name, chw  # type: ignore[return-value]


def _shape_flag(name: str, shape: Sequence[int]) -> str:
    return f"{name}:{'x'.join(str(v) for v in shape)}"


def trtexec_command(plan: EngineBuildPlan, trtexec: str = "trtexec") -> Command:
    """The ``trtexec`` equivalent of :func:`build_engine`."""
    lo, opt, hi = plan.profile[plan.input_name]
    argv = [
        trtexec,
        f"--onnx={plan.onnx_path}",
        f"--saveEngine={plan.engine_path}",
        f"--minShapes={_shape_flag(plan.input_name, lo)}",
        f"--optShapes={_shape_flag(plan.input_name, opt)}",
        f"--maxShapes={_shape_flag(plan.input_name, hi)}",
    ]
    if plan.precision == "fp32":
        argv.append("--noTF32")  # as build_engine: FP32 math, not TF32
    if plan.precision == "fp16":
        argv.append("--fp16")
    elif plan.precision == "int8":
        argv.append("--int8")
        argv.append(f"--calib={plan.calibration_cache}")
    argv.append(f"--memPoolSize=workspace:{plan.workspace_mib}M")
    if plan.timing_cache is not None:
        argv.append(f"--timingCacheFile={plan.timing_cache}")
    return Command(tuple(argv))


def tao_converter_command(
    etlt: str | os.PathLike,
    key: str,
    *,
    dims: tuple[int, int, int] = (3, 544, 960),
    outputs: Sequence[str] = OUTPUT_NAMES,
    engine: str | os.PathLike = "model.plan",
    data_type: Precision | None = "fp16",
    max_batch: int | None = 16,
    calibration_cache: str | os.PathLike | None = None,
    workspace_bytes: int | None = None,
    input_profile: tuple[str, int, int, int] | None = None,
    tool: str = "tao-converter",
) -> Command:
    """The legacy ``tlt-converter`` / ``tao-converter`` line for an ``.etlt`` file.

    The lab's: ``tao_converter_command("/tlt/models/ir.etlt", "tlt_encode",
    engine="/tlt/models/ir.engine", data_type=None, max_batch=None, tool="tlt-converter")``.
    ``input_profile=("input_1", 1, 8, 16)`` adds ``-p`` for ONNX-based .etlt files.
    """
    if data_type is not None and data_type not in PRECISIONS:
        raise EnginePlanError(f"data_type must be one of {PRECISIONS}, got {data_type!r}")
    if data_type == "int8" and calibration_cache is None:
        raise EnginePlanError("data_type int8 needs calibration_cache (-c)")
    argv = [
        tool,
        "-k",
        key,
        "-d",
        ",".join(str(int(v)) for v in dims),
        "-e",
        str(engine),
        "-o",
        ",".join(outputs),
    ]
    if data_type is not None:
        argv += ["-t", data_type]
    if max_batch is not None:
        argv += ["-m", str(max_batch)]
    if calibration_cache is not None:
        argv += ["-c", str(calibration_cache)]
    if workspace_bytes is not None:
        argv += ["-w", str(workspace_bytes)]
    if input_profile is not None:
        name, lo, opt, hi = input_profile
        shapes = [f"{b}x{'x'.join(str(int(v)) for v in dims)}" for b in (lo, opt, hi)]
        argv += ["-p", ",".join([name, *shapes])]
    argv.append(str(etlt))
    return Command(tuple(argv))


def tensorrt_available() -> bool:
    """True when the ``tensorrt`` Python package can be imported here."""
    return importlib.util.find_spec("tensorrt") is not None


def build_engine(plan: EngineBuildPlan, verbose: bool = False) -> Path:
    """Build and save the engine with the TensorRT Python API (needs TensorRT and a GPU).

    Explicit batch network from the ONNX parser, one optimisation profile on the input
    (also the calibration profile), FP16/INT8 flags, INT8 entropy calibration over
    ``plan.calibration_images`` or the cached table, workspace pool limit, timing cache
    read before and written after the build. The engine file is written atomically.
    """
    import tensorrt as trt  # type: ignore[import-not-found]

    plan.validate()
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # implicit in TRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(plan.onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{plan.onnx_path}: TensorRT ONNX parser failed: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in plan.profile.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    if plan.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means FP32 math (TF32 is on by default)
    if plan.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.precision == "int8":
        from cvlab.export.calibration import CalibrationBatches, make_entropy_calibrator

        config.set_flag(trt.BuilderFlag.INT8)
        images = plan.calibration_images or []
        batches = (
            CalibrationBatches(
                images,
                plan.calibration_batch_size,
                plan.input_size,
                plan.calibration_max_batches,
                progress=True,
            )
            if len(images) >= plan.calibration_batch_size
            else _EmptyBatches(plan.calibration_batch_size)
        )
        config.int8_calibrator = make_entropy_calibrator(
            batches, plan.calibration_cache, input_name=plan.input_name
        )
        config.set_calibration_profile(profile)
    timing = None
    if plan.timing_cache is not None:
        data = plan.timing_cache.read_bytes() if plan.timing_cache.is_file() else b""
        timing = config.create_timing_cache(data)
        config.set_timing_cache(timing, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {plan.onnx_path}")
    atomic_write_bytes(plan.engine_path, bytes(serialized))
    if timing is not None:
        atomic_write_bytes(plan.timing_cache, bytes(config.get_timing_cache().serialize()))
    return plan.engine_path


@dataclass
class _EmptyBatches:
    """No batches: the calibrator then relies on the cache file."""

    batch_size: int
    nbytes: int = 0

    def __iter__(self):
        return iter(())
