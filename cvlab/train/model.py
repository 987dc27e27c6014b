"""Keras DetectNet_v2: a ResNet backbone with TAO layer names and the two DetectNet heads.

The graph boundary is NCHW (``input_1`` ``[3, H, W]``, ``output_cov`` ``[C, H/16, W/16]``,
``output_bbox`` ``[4C, H/16, W/16]``) as TAO exports it; inside, the model runs NHWC because
TensorFlow's CPU convolutions need it. Layer names follow TAO's ``nvidia_tao_tf1`` ResNet
template (``conv1``, ``bn_conv1``, ``block_1a_conv_1``, ``block_1a_bn_1``,
``block_1a_conv_shortcut``, ...), so TAO-trained Keras HDF5 weights load with
``model.load_weights(path, by_name=True)`` (kernels are ``(kh, kw, in, out)`` in either layout).

Example:
    >>> model = build_detectnet_v2(1, input_size=(160, 96), num_layers=10, width_multiplier=0.125)
    >>> [tuple(o.shape) for o in model.outputs]
    [(None, 1, 6, 10), (None, 4, 6, 10)]
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import keras
from keras import layers

from cvlab.detectnet import INPUT_NAME, PEOPLENET_INPUT_SIZE, STRIDE

#: ResNet depth -> number of sub-blocks in each of the four stages (TAO template).
RESNET_REPEATS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
STAGE_FILTERS = (64, 128, 256, 512)


@keras.saving.register_keras_serializable(package="cvlab")
class NCHWOutputConv2D(layers.Conv2D):
    """A 1x1 head convolution on NHWC features whose output is transposed to NCHW.

    Its weights are those of a plain ``Conv2D`` (``kernel``, ``bias``), so a TAO head
    named ``output_cov`` / ``output_bbox`` loads into it by name.
    """

    def call(self, inputs):
        return keras.ops.transpose(super().call(inputs), (0, 3, 1, 2))

    def compute_output_shape(self, input_shape):
        n, h, w, c = super().compute_output_shape(input_shape)
        return (n, c, h, w)


@dataclass(frozen=True)
class ModelConfig:
    """What :func:`build_detectnet_v2` needs besides the class count."""

    input_size: tuple[int, int] = (960, 544)  # (width, height)
    num_layers: int = 18
    width_multiplier: float = 1.0
    freeze_bn: bool = False
    dropout: float = 0.0
    all_projections: bool = True
    freeze_blocks: tuple[int, ...] = field(default_factory=tuple)


#: A config that trains on 2 CPU cores in minutes (ResNet-10 at a quarter of the width). 320x256
#: keeps FLIR's 5:4 aspect ratio (640x512 frames at half size), so small people stay visible.
TINY_CONFIG = ModelConfig(input_size=(320, 256), num_layers=10, width_multiplier=0.25)
#: The lab's PeopleNet-sized config (ResNet-34, 960x544).
PEOPLENET_CONFIG = ModelConfig(input_size=PEOPLENET_INPUT_SIZE, num_layers=34)


def _filters(base: int, width_multiplier: float) -> int:
    return max(4, int(round(base * width_multiplier)))


def _bn(name: str, freeze_bn: bool):
    # Keras 3: a non-trainable BatchNormalization runs in inference mode (TAO freeze_bn).
    return layers.BatchNormalization(
        axis=-1, name=name, epsilon=1e-3, momentum=0.99, trainable=not freeze_bn
    )


def _subblock(
    x,
    filters: int,
    stride: int,
    prefix: str,
    project: bool,
    freeze_bn: bool,
    trainable: bool,
):
    """Two 3x3 convolutions plus shortcut, named as TAO's ``CNNBlock._subblocks``."""
    shortcut = x
    for i in (1, 2):
        x = layers.Conv2D(
            filters,
            3,
            strides=stride if i == 1 else 1,
            padding="same",
            name=f"{prefix}conv_{i}",
            trainable=trainable,
        )(x)
        x = _bn(f"{prefix}bn_{i}", freeze_bn)(x)
        if i == 1:
            x = layers.Activation("relu", name=f"{prefix}relu_1")(x)
    if project:
        shortcut = layers.Conv2D(
            filters, 1, strides=stride, name=f"{prefix}conv_shortcut", trainable=trainable
        )(shortcut)
        shortcut = _bn(f"{prefix}bn_shortcut", freeze_bn)(shortcut)
    x = layers.Add(name=f"{prefix}add")([x, shortcut])
    return layers.Activation("relu", name=f"{prefix}relu")(x)


def build_detectnet_v2(
    num_classes: int,
    input_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    arch: str = "resnet",
    num_layers: int = 18,
    width_multiplier: float = 1.0,
    freeze_bn: bool = False,
    dropout: float = 0.0,
    name: str | None = None,
    *,
    all_projections: bool = True,
    freeze_blocks: tuple[int, ...] = (),
) -> keras.Model:
    """Build a DetectNet_v2 (stride 16) with a TAO-named ResNet-10/18/34 backbone.

    Args:
        num_classes: number of target classes ``C``.
        input_size: ``(width, height)``; both must be multiples of 16.
        arch: only ``"resnet"``.
        num_layers: 10, 18 or 34.
        width_multiplier: scales every layer's filter count (``< 1`` for tiny CPU models).
        freeze_bn: run batch norm in inference mode (TAO ``freeze_bn``).
        dropout: spatial dropout rate before the heads (0 disables).
        name: model name (default ``resnet{num_layers}_detector``).
        all_projections: 1x1 projection on every shortcut (TAO / PeopleNet default).
        freeze_blocks: TAO block indices (0 = conv1, 1..4 = stages) whose weights stay fixed.
    """
    if arch != "resnet":
        raise ValueError(f"build_detectnet_v2: arch {arch!r} not supported; use 'resnet'")
    if num_layers not in RESNET_REPEATS:
        raise ValueError(
            f"build_detectnet_v2: num_layers {num_layers} not supported; use one of "
            f"{sorted(RESNET_REPEATS)}"
        )
    width, height = (int(v) for v in input_size)
    if width % STRIDE or height % STRIDE or width <= 0 or height <= 0:
        raise ValueError(f"build_detectnet_v2: input_size {input_size} must be multiples of 16")
    if num_classes < 1:
        raise ValueError("build_detectnet_v2: num_classes must be >= 1")

    inputs = keras.Input(shape=(3, height, width), name=INPUT_NAME)
    x = layers.Permute((2, 3, 1), name="input_to_nhwc")(inputs)
    x = layers.Conv2D(
        _filters(64, width_multiplier),
        7,
        strides=2,
        padding="same",
        name="conv1",
        trainable=0 not in freeze_blocks,
    )(x)
    x = _bn("bn_conv1", freeze_bn)(x)
    x = layers.Activation("relu", name="activation_1")(x)
    # TAO DetectNet_v2 uses use_pooling=False: strides conv1 2, stages 2, 2, 2, 1 -> 16.
    stage_strides = (2, 2, 2, 1)
    for stage, (repeat, base, stride) in enumerate(
        zip(RESNET_REPEATS[num_layers], STAGE_FILTERS, stage_strides, strict=True), start=1
    ):
        for r in range(repeat):
            prefix = f"block_{stage}{string.ascii_lowercase[r]}_"
            x = _subblock(
                x,
                _filters(base, width_multiplier),
                stride if r == 0 else 1,
                prefix,
                project=all_projections or r == 0,
                freeze_bn=freeze_bn,
                trainable=stage not in freeze_blocks,
            )
    if dropout > 0:
        x = layers.SpatialDropout2D(dropout, name="head_dropout")(x)
    cov = NCHWOutputConv2D(num_classes, 1, activation="sigmoid", name="output_cov")(x)
    bbox = NCHWOutputConv2D(4 * num_classes, 1, name="output_bbox")(x)
    return keras.Model(inputs, [cov, bbox], name=name or f"resnet{num_layers}_detector")


def build_from_config(num_classes: int, config: ModelConfig, name: str | None = None):
    """:func:`build_detectnet_v2` from a :class:`ModelConfig`."""
    return build_detectnet_v2(
        num_classes,
        input_size=config.input_size,
        num_layers=config.num_layers,
        width_multiplier=config.width_multiplier,
        freeze_bn=config.freeze_bn,
        dropout=config.dropout,
        name=name,
        all_projections=config.all_projections,
        freeze_blocks=tuple(config.freeze_blocks),
    )


def save_legacy_h5_weights(model: keras.Model, path: str) -> None:
    """Write the weights in the legacy Keras HDF5 layout TAO uses (atomic: temp file + rename)."""
    import os
    import tempfile

    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".h5", dir=directory)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_weights_by_name(model: keras.Model, path: str, skip_mismatch: bool = False) -> None:
    """Load legacy HDF5 weights (e.g. TAO's) into ``model`` by layer name."""
    if not str(path).endswith((".h5", ".hdf5")):
        raise ValueError(f"{path}: by-name loading needs a legacy .h5/.hdf5 weights file")
    model.load_weights(str(path), by_name=True, skip_mismatch=skip_mismatch)


def distribution_strategy():
    """``MirroredStrategy`` when more than one GPU is visible, else the default strategy."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
