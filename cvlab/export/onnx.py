"""Export a Keras DetectNet_v2 to ONNX for Triton / TensorRT, with TAO's tensor names, checked.

The one exporter (tf2onnx): Keras 3 forbids ``/`` in layer names, so the Keras outputs are
called ``output_cov`` and ``output_bbox``; the exported graph outputs are renamed to
``output_cov/Sigmoid`` and ``output_bbox/BiasAdd`` (the names of TAO's PeopleNet engine). The
input is ``input_1`` with a dynamic batch ``[N, 3, H, W]``. :func:`export_onnx` writes the file
atomically, checks names, the dynamic batch and the numbers against Keras (onnxruntime), and
returns an :class:`ExportReport`; :func:`export_keras_to_onnx` is the bare conversion.
cvlab's models pad as TAO trains (explicit symmetric ``ZeroPadding2D`` + "valid",
:mod:`cvlab.train.model`); tf2onnx folds each padding into its ``Conv`` as
``pads = [p, p, p, p]``, the form TAO's ``_fix_onnx_paddings`` writes (docs/tao_fidelity.md).

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

import numpy as np

from cvlab.detectnet import INPUT_NAME, KERAS_OUTPUT_NAMES, OUTPUT_NAMES
from cvlab.fileio import atomic_path

REQUIRED_OUTPUTS = OUTPUT_NAMES
#: Keras output name -> ONNX/Triton output name
OUTPUT_RENAMES = KERAS_OUTPUT_NAMES


def _keras_output_names(model) -> list[str]:
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    return [t.name.split("/")[0].split(":")[0] for t in model.outputs]


def rename_onnx_outputs(onnx_model, renames: dict[str, str]) -> None:
    """Rename graph outputs in place (and every node input/output that refers to them).

    A name may be a prefix match: tf2onnx sometimes appends ``:0`` or ``_1`` suffixes.
    """
    graph = onnx_model.graph
    mapping = {}
    for out in graph.output:
        for old, new in renames.items():
            if out.name == old or out.name.split(":")[0] == old:
                mapping[out.name] = new
    for out in graph.output:
        if out.name in mapping:
            out.name = mapping[out.name]
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name in mapping:
                node.output[i] = mapping[name]
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]


def export_keras_to_onnx(
    model,
    path: str | os.PathLike,
    input_name: str = INPUT_NAME,
    opset: int = 13,
) -> Path:
    """Convert ``model`` (Keras, NCHW input ``[3,H,W]``) to ONNX at ``path`` (atomic write).

    Graph outputs named ``output_cov``/``output_bbox`` in Keras become ``output_cov/Sigmoid`` and
    ``output_bbox/BiasAdd``; other names are kept. Returns the written path.
    """
    import onnx
    import tensorflow as tf
    import tf2onnx

    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4:
        raise ValueError(f"expected an NCHW model input [N,3,H,W], got shape {shape}")
    spec = (tf.TensorSpec((None, *shape[1:]), tf.float32, name=input_name),)
    onnx_model, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    rename_onnx_outputs(onnx_model, OUTPUT_RENAMES)
    onnx.checker.check_model(onnx_model)
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save(onnx_model, str(tmp))
    return path


def check_onnx_matches_keras(
    model, onnx_path: str | os.PathLike, atol: float = 1e-4, batch: int = 2, seed: int = 0
) -> float:
    """Run Keras and onnxruntime on the same random batch; return the max abs difference.

    Raises AssertionError when an output differs by more than ``atol``.
    """
    import onnxruntime as ort

    shape = tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(seed).random((batch, *shape), dtype=np.float32)
    keras_out = model(x, training=False)
    if not isinstance(keras_out, list | tuple):
        keras_out = [keras_out]
    keras_names = [OUTPUT_RENAMES.get(n, n) for n in _keras_output_names(model)]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    onnx_out = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {input_name: x}),
            strict=True,
        )
    )
    worst = 0.0
    for name, value in zip(keras_names, keras_out, strict=True):
        if name not in onnx_out:
            raise AssertionError(f"{onnx_path}: no output {name!r}; has {sorted(onnx_out)}")
        diff = float(np.max(np.abs(np.asarray(value) - onnx_out[name])))
        worst = max(worst, diff)
    if worst > atol:
        raise AssertionError(f"{onnx_path}: ONNX differs from Keras by {worst:g} > atol {atol:g}")
    return worst


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
