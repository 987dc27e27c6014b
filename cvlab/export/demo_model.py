"""A tiny DetectNet_v2-shaped model the tests and the demo can serve.

Input ``input_1`` is NCHW ``[3, H, W]`` (transposed to NHWC inside: TF CPU convolutions need
it), four stride-2 convolutions with TAO's symmetric "same" padding
(:func:`cvlab.train.model.tao_conv2d`) reach stride 16 and give ``output_bbox`` (linear,
``[4C, H/16, W/16]``); ``output_cov`` (sigmoid, ``[C, H/16, W/16]``) is a fixed detector of
bright 16x16 cells, so the untrained model fires sparsely (on bright objects) like a real one.
Outputs are NCHW like TAO's engine. The trunk weights are random (seeded); the retrained model from
``cvlab.train`` replaces it for real detections.

Example:
    >>> from pathlib import Path  # doctest: +SKIP
    >>> write_demo_onnx(Path("demo.onnx"), num_classes=3, input_size=(320, 192))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from cvlab.detectnet import INPUT_NAME, PEOPLENET_INPUT_SIZE, STRIDE

BRIGHTNESS_GAIN = 40.0
BRIGHTNESS_LEVEL = 0.85


def build_demo_model(
    num_classes: int = 3,
    input_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    seed: int = 0,
    width: int = 8,
):
    """A small Keras model with DetectNet_v2's inputs/outputs; ``input_size`` is (width, height).

    ``width`` scales the trunk (filters width, 2w, 2w, 4w): larger makes the server work harder.
    """
    import keras

    from cvlab.train.model import tao_conv2d

    w, h = input_size
    if w % STRIDE or h % STRIDE:
        raise ValueError(f"input_size {input_size} must be a multiple of {STRIDE}")
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3, h, w), name=INPUT_NAME)
    x = keras.layers.Permute((2, 3, 1), name="to_nhwc")(inputs)
    for i, filters in enumerate((width, 2 * width, 2 * width, 4 * width)):
        # TAO's "same" (symmetric zero padding + "valid"), as every cvlab DetectNet_v2.
        x = tao_conv2d(x, filters, 3, strides=2, activation="relu", name=f"conv{i + 1}")
    # coverage: a fixed "bright blob" detector (mean RGB of each 16x16 cell above ~0.85), so the
    # untrained demo fires sparsely on bright objects like a real detector, not on every cell
    pooled = keras.layers.AveragePooling2D(STRIDE, name="cell_mean")(
        keras.layers.Permute((2, 3, 1), name="to_nhwc_cov")(inputs)
    )
    cov = keras.layers.Conv2D(
        num_classes,
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.Constant(BRIGHTNESS_GAIN / 3.0),
        bias_initializer=keras.initializers.Constant(-BRIGHTNESS_GAIN * BRIGHTNESS_LEVEL),
        name="cov_head",
    )(pooled)
    # bias 2.0: boxes reach 70 px from each cell centre, so neighbouring cells on one bright
    # object overlap enough (IoU > 0.7) to form one DBSCAN cluster, as a trained model would
    bbox = keras.layers.Conv2D(
        4 * num_classes, 1, bias_initializer=keras.initializers.Constant(2.0), name="bbox_head"
    )(x)
    cov = keras.layers.Permute((3, 1, 2), name="output_cov")(cov)
    bbox = keras.layers.Permute((3, 1, 2), name="output_bbox")(bbox)
    return keras.Model(inputs, [cov, bbox], name="detectnet_demo")


def write_demo_onnx(
    path: str | os.PathLike,
    num_classes: int = 3,
    input_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    width: int = 8,
) -> Path:
    """Build the demo model and export it to ONNX at ``path`` (output names as TAO's)."""
    from cvlab.export.onnx import export_keras_to_onnx

    return export_keras_to_onnx(build_demo_model(num_classes, input_size, width=width), path)


def write_demo_repository(
    repo_dir: str | os.PathLike,
    model_name: str = "peoplenet_demo",
    num_classes: int = 3,
    input_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    max_batch_size: int = 16,
    target: str = "python",
    width: int = 8,
) -> Path:
    """A ready local repository serving the demo model; returns the model directory."""
    import tempfile

    from cvlab.triton.model_repository import peoplenet_spec, write_model_repository

    spec = peoplenet_spec(model_name, num_classes, input_size, max_batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = write_demo_onnx(Path(tmp) / "model.onnx", num_classes, input_size, width)
        return write_model_repository(repo_dir, spec, onnx_path, target=target)
