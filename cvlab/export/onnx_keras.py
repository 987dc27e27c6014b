"""Export a DetectNet_v2-shaped Keras model to ONNX with Triton/TAO tensor names.

Keras 3 forbids ``/`` in layer names, so the Keras outputs are called ``output_cov`` and
``output_bbox``; the exported ONNX graph outputs are renamed to ``output_cov/Sigmoid`` and
``output_bbox/BiasAdd`` (the names TAO's PeopleNet engine uses). The input is ``input_1`` with a
dynamic batch dimension ``[N, 3, H, W]``.

Example:
    >>> from cvlab.export.demo_model import build_demo_model  # doctest: +SKIP
    >>> path = export_keras_to_onnx(build_demo_model(1, (320, 192)), "demo.onnx")  # doctest: +SKIP
    >>> check_onnx_matches_keras(build_demo_model(1, (320, 192)), path)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from cvlab.detectnet import INPUT_NAME, KERAS_OUTPUT_NAMES

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        onnx.save(onnx_model, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
