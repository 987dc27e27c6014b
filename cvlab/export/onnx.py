"""Export the retrained Keras DetectNet_v2 to ONNX for Triton / TensorRT, checked numerically.

Built on :mod:`cvlab.export.onnx_keras` (tf2onnx; Triton names ``input_1``,
``output_cov/Sigmoid``, ``output_bbox/BiasAdd``; dynamic batch). :func:`export_onnx` adds the
checks and returns an :class:`ExportReport`.

Example:
    >>> report = export_onnx(model, "model.onnx")  # doctest: +SKIP
    >>> report.outputs  # doctest: +SKIP
    {'output_cov/Sigmoid': ['N', 1, 34, 60], 'output_bbox/BiasAdd': ['N', 4, 34, 60]}
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from cvlab.detectnet import INPUT_NAME, OUTPUT_NAMES

INPUT_NAME = INPUT_NAME
REQUIRED_OUTPUTS = OUTPUT_NAMES


@dataclass
class ExportReport:
    """What was written and how it was checked."""

    path: Path
    input_name: str
    input_shape: list[int | str]
    outputs: dict[str, list[int | str]]
    opset: int
    max_abs_diff: float | None = None
    checked_batches: list[int] = field(default_factory=list)
    seconds: float = 0.0
    size_bytes: int = 0

    @property
    def dynamic_batch(self) -> bool:
        return not isinstance(self.input_shape[0], int) or self.input_shape[0] <= 0

    def to_pandas(self):
        """One row per graph tensor: name, role, shape."""
        import pandas as pd

        rows = [{"name": self.input_name, "role": "input", "shape": self.input_shape}]
        rows += [{"name": n, "role": "output", "shape": s} for n, s in self.outputs.items()]
        return pd.DataFrame(rows)


def _dims(value_info) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value_info.type.tensor_type.shape.dim
    ]


def export_onnx(
    model,
    path: str | os.PathLike,
    *,
    check: bool = True,
    atol: float = 1e-4,
    opset: int = 13,
    check_batches: tuple[int, ...] = (1, 2),
) -> ExportReport:
    """Keras DetectNet_v2 (NCHW input ``[3,H,W]``) -> ONNX at ``path`` with the Triton names.

    With ``check``, onnxruntime and Keras run the same random batches (sizes ``check_batches``:
    the batch is dynamic) and must agree within ``atol``; on a mismatch the file is removed and
    AssertionError is raised. The graph must expose ``input_1`` with a dynamic batch and the
    outputs ``output_cov/Sigmoid`` and ``output_bbox/BiasAdd``.
    """
    import onnx

    from cvlab.export.onnx_keras import check_onnx_matches_keras, export_keras_to_onnx

    start = time.perf_counter()
    path = Path(path)
    written = export_keras_to_onnx(model, path, input_name=INPUT_NAME, opset=opset)
    try:
        graph = onnx.load(str(written)).graph
        inputs = {i.name: _dims(i) for i in graph.input}
        outputs = {o.name: _dims(o) for o in graph.output}
        if INPUT_NAME not in inputs:
            raise AssertionError(f"{written}: no input {INPUT_NAME!r}; has {sorted(inputs)}")
        missing = [n for n in REQUIRED_OUTPUTS if n not in outputs]
        if missing:
            raise AssertionError(f"{written}: missing outputs {missing}; has {sorted(outputs)}")
        report = ExportReport(written, INPUT_NAME, inputs[INPUT_NAME], outputs, opset)
        if not report.dynamic_batch:
            raise AssertionError(f"{written}: batch dimension is fixed: {report.input_shape}")
        if check:
            worst = 0.0
            for b in check_batches:
                worst = max(worst, check_onnx_matches_keras(model, written, atol=atol, batch=b))
            report.max_abs_diff = worst
            report.checked_batches = list(check_batches)
    except BaseException:
        written.unlink(missing_ok=True)
        raise
    report.seconds = time.perf_counter() - start
    report.size_bytes = written.stat().st_size
    return report
