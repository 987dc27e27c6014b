"""``cvlab bench gpu``: TensorRT engines (FP32, FP16, INT8) from the exported ONNX, checked against ONNX Runtime.

For each precision the engine is planned (:class:`cvlab.export.tensorrt.EngineBuildPlan`; INT8
calibrates with :mod:`cvlab.export.calibration` on the bench images), built
(:func:`cvlab.export.tensorrt.build_engine`) and run on the same preprocessed batch as ONNX
Runtime. The table gives, per engine, the build time, the largest absolute difference of each
output tensor, and how the detections after clustering agree (boxes matched one to one at IoU >=
0.5 per class, the worst IoU of a match and the largest confidence difference).

Needs TensorRT, cuda-python and a GPU; without TensorRT it stops with one line (exit 2). The
planning, the ONNX Runtime side and the comparison run anywhere (``make gpu-check`` on a GPU
machine). The default model is the demo DetectNet_v2 (:mod:`cvlab.export.demo_model`, TAO
padding, a coverage head that fires on bright objects) on synthetic thermal frames; ``--onnx``
and ``--images`` check any exported model (e.g. ``cvlab export onnx``'s) on real frames.

Example:
    $ cvlab bench gpu --onnx model.onnx --images frames/ --precisions fp32,fp16,int8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvlab.detectnet import INPUT_NAME, OUTPUT_NAMES
from cvlab.errors import CvlabError

#: FP32 engines must agree with ONNX Runtime within this (largest absolute output difference).
FP32_TOLERANCE = 1e-3
#: IoU at which a detection of one runtime matches one of the other.
MATCH_IOU = 0.5

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]


class GpuCheckError(CvlabError, RuntimeError):
    """``cvlab bench gpu`` cannot run here (no TensorRT, no cuda-python)."""


def require_tensorrt() -> None:
    """Raise :class:`GpuCheckError` (one line) unless TensorRT and cuda-python import here."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        raise GpuCheckError(
            "TensorRT is not installed here: `cvlab bench gpu` builds and runs TensorRT engines "
            "and needs a GPU with TensorRT (pip install tensorrt) and cuda-python"
        )
    if importlib.util.find_spec("cuda") is None:
        raise GpuCheckError("cuda-python is not installed here (pip install cuda-python)")


# --- planning ----------------------------------------------------------------------------------
def plan_engines(
    onnx_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    precisions: Sequence[str] = ("fp32", "fp16", "int8"),
    calibration_images: Sequence[str | os.PathLike] = (),
    calibration_batch_size: int = 4,
    max_batch: int = 8,
):
    """One :class:`~cvlab.export.tensorrt.EngineBuildPlan` per precision (input read from the
    ONNX file; INT8 calibrates on ``calibration_images`` into ``out_dir/calibration.bin``)."""
    from cvlab.export.tensorrt import EngineBuildPlan

    out = Path(out_dir)
    plans = []
    for precision in precisions:
        extra = {}
        if precision == "int8":
            extra = {
                "calibration_cache": out / "calibration.bin",
                "calibration_images": [str(p) for p in calibration_images],
                "calibration_batch_size": calibration_batch_size,
                "calibration_max_batches": max(
                    1, len(calibration_images) // calibration_batch_size
                ),
            }
        plans.append(
            EngineBuildPlan.from_onnx(
                onnx_path,
                out / f"model_{precision}.plan",
                precision=precision,
                min_batch=1,
                opt_batch=min(4, max_batch),
                max_batch=max_batch,
                **extra,
            )
        )
    return plans


# --- runners -----------------------------------------------------------------------------------
class OnnxRuntimeRunner:
    """ONNX Runtime (CPU) on a batch: ``runner(batch) -> {output name: array}``."""

    def __init__(self, onnx_path: str | os.PathLike) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})
        return dict(zip(self.output_names, values, strict=True))


def _cudart():
    try:  # cuda-python >= 12.8
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        from cuda import cudart  # type: ignore[import-not-found]
    return cudart


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA call failed: {err}")
    return rest[0] if len(rest) == 1 else rest


class TensorRTRunner:
    """A serialized TensorRT engine on a batch (TensorRT >= 8.5 tensor API, cuda-python)."""

    def __init__(self, engine_path: str | os.PathLike) -> None:
        import tensorrt as trt  # type: ignore[import-not-found]

        self.trt = trt
        self.cudart = _cudart()
        logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{engine_path}: TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) != mode]
        self.stream = _check(self.cudart.cudaStreamCreate())

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        cudart = self.cudart
        batch = np.ascontiguousarray(batch, np.float32)
        (name,) = self.inputs
        self.context.set_input_shape(name, batch.shape)
        buffers = []
        try:
            ptr = _check(cudart.cudaMalloc(batch.nbytes))
            buffers.append(ptr)
            h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            _check(cudart.cudaMemcpy(ptr, batch.ctypes.data, batch.nbytes, h2d))
            self.context.set_tensor_address(name, int(ptr))
            host = {}
            for out in self.outputs:
                shape = tuple(self.context.get_tensor_shape(out))
                host[out] = np.empty(shape, np.float32)
                optr = _check(cudart.cudaMalloc(host[out].nbytes))
                buffers.append(optr)
                self.context.set_tensor_address(out, int(optr))
            if not self.context.execute_async_v3(int(self.stream)):
                raise RuntimeError("TensorRT execution failed")
            _check(cudart.cudaStreamSynchronize(self.stream))
            d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
            for out, optr in zip(self.outputs, buffers[1:], strict=True):
                _check(cudart.cudaMemcpy(host[out].ctypes.data, optr, host[out].nbytes, d2h))
            return host
        finally:
            for ptr in buffers:
                cudart.cudaFree(ptr)


# --- comparison --------------------------------------------------------------------------------
def output_differences(
    reference: Mapping[str, np.ndarray], other: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """Largest absolute difference per output tensor (``reference``'s names; shapes must match).

    >>> a = {"output_cov/Sigmoid": np.zeros((1, 1, 2, 2), np.float32)}
    >>> output_differences(a, {"output_cov/Sigmoid": a["output_cov/Sigmoid"] + 0.25})
    {'output_cov/Sigmoid': 0.25}
    """
    out = {}
    for name, ref in reference.items():
        if name not in other:
            raise KeyError(f"output {name!r} missing; the other run has {sorted(other)}")
        got = np.asarray(other[name])
        if got.shape != ref.shape:
            raise ValueError(f"output {name!r}: shape {got.shape} vs reference {ref.shape}")
        out[name] = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64))))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes ``a (N, 4)`` and ``b (M, 4)`` (continuous areas)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda t: (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass
class DetectionAgreement:
    """How two runtimes' detections agree, over a batch of images."""

    reference: int  # detections of the reference runtime
    other: int  # detections of the other runtime
    matched: int  # one-to-one pairs of the same class with IoU >= MATCH_IOU
    worst_iou: float  # smallest IoU among matched pairs (1.0 when none)
    max_confidence_diff: float  # largest |confidence| difference among matched pairs

    @property
    def identical(self) -> bool:
        return self.matched == self.reference == self.other


def compare_detections(
    reference: Sequence, other: Sequence, iou_threshold: float = MATCH_IOU
) -> DetectionAgreement:
    """Match each image's detections one to one (per class, greedy by IoU, highest first)."""
    if len(reference) != len(other):
        raise ValueError(f"{len(reference)} reference images vs {len(other)} others")
    matched, worst, conf = 0, 1.0, 0.0
    for ref, got in zip(reference, other, strict=True):
        for c in set(np.asarray(ref.class_id).tolist()) | set(np.asarray(got.class_id).tolist()):
            a = np.flatnonzero(np.asarray(ref.class_id) == c)
            b = np.flatnonzero(np.asarray(got.class_id) == c)
            if not len(a) or not len(b):
                continue
            iou = _iou(np.asarray(ref.xyxy)[a], np.asarray(got.xyxy)[b])
            while iou.size and iou.max() >= iou_threshold:
                i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
                matched += 1
                worst = min(worst, float(iou[i, j]))
                diff = abs(float(ref.confidence[a[i]]) - float(got.confidence[b[j]]))
                conf = max(conf, diff)
                iou[i, :] = -1.0
                iou[:, j] = -1.0
    return DetectionAgreement(
        reference=sum(len(d) for d in reference),
        other=sum(len(d) for d in other),
        matched=matched,
        worst_iou=worst,
        max_confidence_diff=conf,
    )


def compare_runs(
    reference: Runner,
    others: Mapping[str, Runner],
    batch: np.ndarray,
    postprocess: Callable[[Mapping[str, np.ndarray]], list],
    build_seconds: Mapping[str, float] | None = None,
):
    """One row per runtime in ``others``: output differences and detection agreement with
    ``reference`` on ``batch`` (``postprocess`` clusters a batch's outputs into Detections)."""
    import pandas as pd

    ref_out = reference(batch)
    ref_dets = postprocess(ref_out)
    rows = []
    for name, run in others.items():
        out = run(batch)
        diffs = output_differences(ref_out, out)
        agree = compare_detections(ref_dets, postprocess(out))
        row = {"engine": name}
        if build_seconds and name in build_seconds:
            row["build_s"] = round(build_seconds[name], 1)
        row.update({f"max|diff| {k.split('/')[0]}": v for k, v in diffs.items()})
        row.update(
            {
                "dets ref": agree.reference,
                "dets engine": agree.other,
                "matched": agree.matched,
                "worst IoU": round(agree.worst_iou, 4),
                "max|conf diff|": agree.max_confidence_diff,
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def detectnet_postprocess(onnx_path: str | os.PathLike, image_sizes: Sequence[tuple[int, int]]):
    """A batch clusterer for a DetectNet_v2 ONNX file: default per-class DBSCAN settings for
    its class count (names ``class0``, ...), boxes in each image's pixels."""
    from cvlab.export.tensorrt import read_onnx_input
    from cvlab.inference.clustering_config import default_config
    from cvlab.inference.postprocess import DetectNetPostprocessor

    _, (_, h, w) = read_onnx_input(onnx_path)
    post: list = []

    def run(outputs: Mapping[str, np.ndarray]) -> list:
        if not post:
            names = [f"class{i}" for i in range(outputs[OUTPUT_NAMES[0]].shape[1])]
            post.append(DetectNetPostprocessor(default_config(names), names, (w, h)))
        return post[0].batch(outputs, list(image_sizes))

    return run


# --- the command -------------------------------------------------------------------------------
def _bench_images(args: argparse.Namespace, work: Path) -> list[Path]:
    from cvlab.fileio import list_images

    if args.images:
        images = list_images(args.images)
    else:
        from cvlab.datasets.synthetic import generate_synthetic_flir

        root = generate_synthetic_flir(work / "flir", "v1", num_images=args.count, seed=0)
        images = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpeg", ".jpg"))
    if len(images) < args.batch:
        raise CvlabError(f"need at least --batch {args.batch} images, found {len(images)}")
    return images[: max(args.count, args.batch)]


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    """``cvlab bench gpu`` options."""
    parser.add_argument("--onnx", default=None, help="DetectNet_v2 ONNX (default: the demo model)")
    parser.add_argument("--images", default=None, help="image folder (default: synthetic frames)")
    parser.add_argument("--precisions", default="fp32,fp16,int8", help="comma-separated")
    parser.add_argument("--batch", type=int, default=4, help="images per compared batch")
    parser.add_argument("--count", type=int, default=16, help="calibration / synthetic images")
    parser.add_argument("--output", default=None, help="work folder (default: a temp dir)")


def bench(args: argparse.Namespace) -> int:
    """Build, run and compare the engines; print the table. Exit 1 when FP32 disagrees."""
    try:
        require_tensorrt()
    except GpuCheckError as exc:
        print(f"cvlab bench gpu: error: {exc}", file=sys.stderr)
        return 2
    import pandas as pd

    from cvlab.export.tensorrt import build_engine
    from cvlab.inference.preprocess import preprocess_images

    work = Path(args.output or tempfile.mkdtemp(prefix="cvlab-bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    onnx_path = Path(args.onnx) if args.onnx else None
    if onnx_path is None:
        from cvlab.export.demo_model import write_demo_onnx

        onnx_path = write_demo_onnx(work / "demo.onnx", num_classes=1, input_size=(640, 512))
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    images = _bench_images(args, work)
    plans = plan_engines(onnx_path, work, precisions, images, calibration_batch_size=args.batch)
    size = plans[0].input_size
    batch = preprocess_images(images[: args.batch], size, on_error="raise")
    runners, seconds = {}, {}
    for plan in plans:
        t0 = time.perf_counter()
        build_engine(plan)
        seconds[plan.precision] = time.perf_counter() - t0
        runners[plan.precision] = TensorRTRunner(plan.engine_path)
    postprocess = detectnet_postprocess(onnx_path, batch.original_sizes)
    table = compare_runs(
        OnnxRuntimeRunner(onnx_path), runners, batch.tensor, postprocess, build_seconds=seconds
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(
            f"cvlab bench gpu: {onnx_path} ({INPUT_NAME} {list(batch.tensor.shape)}) vs ONNX Runtime"
        )
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    fp32 = table[table["engine"] == "fp32"]
    if fp32.empty:
        return 0
    worst = float(fp32.filter(like="max|diff| ").max(axis=1).iloc[0])
    same = (
        int(fp32["matched"].iloc[0])
        == int(fp32["dets ref"].iloc[0])
        == int(fp32["dets engine"].iloc[0])
    )
    ok = worst <= FP32_TOLERANCE and same
    print(
        f"gpu-check: FP32 max |diff| {worst:.3g} (<= {FP32_TOLERANCE:g}), detections identical: {same}"
    )
    return 0 if ok else 1
