"""Keras DetectNet_v2: a ResNet backbone with TAO layer names and the two DetectNet heads.

The graph boundary is NCHW (``input_1`` ``[3, H, W]``, ``output_cov`` ``[C, H/16, W/16]``,
``output_bbox`` ``[4C, H/16, W/16]``) as TAO exports it; inside, the model runs NHWC because
TensorFlow's CPU convolutions need it. Layer names follow TAO's ``nvidia_tao_tf1`` ResNet
template (``conv1``, ``bn_conv1``, ``block_1a_conv_1``, ``block_1a_bn_1``,
``block_1a_conv_shortcut``, ...), so TAO-trained Keras HDF5 weights load by name
(:func:`load_weights_by_name`; kernels are ``(kh, kw, in, out)`` in either layout).

Padding is TAO's, not stock Keras': TAO patches Keras (``third_party/keras/tensorflow_backend.py``)
so that ``padding="same"`` means symmetric zero padding of ``((k - 1) * d + 1) // 2`` pixels on
every side (pooling: ``(k - 1) // 2``, padded with 0) followed by a ``"valid"`` op. Stock "same"
pads stride-2 layers on even inputs by (0, 1) instead of (1, 1), a one-pixel shift that makes
TAO weights compute another function. :func:`tao_conv2d` / :func:`tao_pool2d` build the patched
semantics from an explicit ``ZeroPadding2D`` (named ``<layer>_pad``) and a ``"valid"`` layer.

Example:
    >>> model = build_detectnet_v2(1, input_size=(160, 96), num_layers=10, width_multiplier=0.125)
    >>> [tuple(o.shape) for o in model.outputs]
    [(None, 1, 6, 10), (None, 4, 6, 10)]
    >>> model.get_layer("conv1_pad").padding, model.get_layer("conv1").padding
    (((3, 3), (3, 3)), 'valid')
"""

from __future__ import annotations

import os
import re
import string
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras import layers

from cvlab.detectnet import BBOX_OUTPUT, COV_OUTPUT, INPUT_NAME, PEOPLENET_INPUT_SIZE, STRIDE
from cvlab.errors import CvlabError

#: ResNet depth -> number of sub-blocks in each of the four stages (TAO template).
RESNET_REPEATS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
STAGE_FILTERS = (64, 128, 256, 512)
#: The Keras names of the two heads (TAO's ``output_cov`` / ``output_bbox`` layers).
HEAD_LAYERS = (COV_OUTPUT.split("/")[0], BBOX_OUTPUT.split("/")[0])


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Pixels TAO's patched ``conv2d`` pads on EACH side for ``padding="same"``.

    >>> [same_padding(k) for k in (1, 2, 3, 7)], same_padding(3, dilation=2)
    ([0, 1, 1, 3], 2)
    """
    return ((int(kernel_size) - 1) * int(dilation) + 1) // 2


def pool_padding(pool_size: int) -> int:
    """Pixels TAO's patched ``pool2d`` pads (with 0) on EACH side for ``padding="same"``.

    >>> [pool_padding(k) for k in (1, 2, 3, 7)]
    [0, 0, 1, 3]
    """
    return (int(pool_size) - 1) // 2


def tao_conv2d(
    x,
    filters: int,
    kernel_size: int,
    *,
    name: str,
    strides: int = 1,
    padding: str = "same",
    layer=layers.Conv2D,
    **kwargs,
):
    """A ``Conv2D`` with TAO's "same": explicit symmetric ``ZeroPadding2D`` + ``"valid"``.

    ``layer`` is the convolution class (e.g. :class:`NCHWOutputConv2D` for the heads); ``kwargs``
    go to it. ``padding="valid"`` is passed through untouched (TAO does not patch it).
    """
    if padding not in ("same", "valid"):
        raise ValueError(f"tao_conv2d: padding must be 'same' or 'valid', got {padding!r}")
    if padding == "same":
        pad = same_padding(kernel_size, kwargs.get("dilation_rate", 1))
        if pad:
            x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    return layer(filters, kernel_size, strides=strides, padding="valid", name=name, **kwargs)(x)


def tao_pool2d(x, pool_size: int, strides: int, *, name: str, mode: str = "max"):
    """``MaxPooling2D`` / ``AveragePooling2D`` with TAO's "same": zero padding + ``"valid"``.

    The padded value is 0 for max pooling too (not -inf), and average pooling counts the padded
    zeros, exactly as TAO's patched ``pool2d``.
    """
    pools = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}
    if mode not in pools:
        raise ValueError(f"tao_pool2d: mode must be 'max' or 'avg', got {mode!r}")
    pad = pool_padding(pool_size)
    if pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    return pools[mode](pool_size, strides=strides, padding="valid", name=name)(x)


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


@keras.saving.register_keras_serializable(package="cvlab")
class FrozenStatsBatchNormalization(layers.BatchNormalization):
    """TAO ``freeze_bn``: always normalise with the moving statistics and never update them,
    while gamma and beta stay trainable (TAO calls its BN layers with ``training=False``)."""

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=False, mask=mask)


@dataclass(frozen=True)
class ModelConfig:
    """What :func:`build_detectnet_v2` needs besides the class count (TAO ``model_config``
    plus the ``training_config.regularizer`` that TAO attaches to every convolution)."""

    input_size: tuple[int, int] = (960, 544)  # (width, height)
    num_layers: int = 18
    width_multiplier: float = 1.0
    freeze_bn: bool = False
    dropout: float = 0.0
    all_projections: bool = True
    freeze_blocks: tuple[int, ...] = field(default_factory=tuple)
    use_batch_norm: bool = True
    regularizer: str = "NO_REG"  # TAO RegularizationType: NO_REG, L1 or L2
    regularizer_weight: float = 0.0


#: A config that trains on 2 CPU cores in minutes (ResNet-10 at a quarter of the width). 320x256
#: keeps FLIR's 5:4 aspect ratio (640x512 frames at half size), so small people stay visible.
TINY_CONFIG = ModelConfig(input_size=(320, 256), num_layers=10, width_multiplier=0.25)
#: The lab's PeopleNet-sized config (ResNet-34, 960x544).
PEOPLENET_CONFIG = ModelConfig(input_size=PEOPLENET_INPUT_SIZE, num_layers=34)


def _filters(base: int, width_multiplier: float) -> int:
    return max(4, int(round(base * width_multiplier)))


def _bn(name: str, freeze_bn: bool):
    cls = FrozenStatsBatchNormalization if freeze_bn else layers.BatchNormalization
    return cls(axis=-1, name=name, epsilon=1e-3, momentum=0.99)


def _subblock(
    x,
    filters: int,
    stride: int,
    prefix: str,
    project: bool,
    conv_kwargs: dict,
    use_batch_norm: bool,
    freeze_bn: bool,
):
    """Two 3x3 convolutions plus shortcut, named as TAO's ``CNNBlock._subblocks``."""
    shortcut = x
    for i in (1, 2):
        x = tao_conv2d(
            x,
            filters,
            3,
            strides=stride if i == 1 else 1,
            name=f"{prefix}conv_{i}",
            **conv_kwargs,
        )
        if use_batch_norm:
            x = _bn(f"{prefix}bn_{i}", freeze_bn)(x)
        if i == 1:
            x = layers.Activation("relu", name=f"{prefix}relu_1")(x)
    if project:
        shortcut = tao_conv2d(
            shortcut,
            filters,
            1,
            strides=stride,
            padding="valid",
            name=f"{prefix}conv_shortcut",
            **conv_kwargs,
        )
        if use_batch_norm:
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
    use_batch_norm: bool = True,
    regularizer: str = "NO_REG",
    regularizer_weight: float = 0.0,
) -> keras.Model:
    """Build a DetectNet_v2 (stride 16) with a TAO-named ResNet-10/18/34 backbone.

    Args:
        num_classes: number of target classes ``C``.
        input_size: ``(width, height)``; both must be multiples of 16.
        arch: only ``"resnet"``.
        num_layers: 10, 18 or 34.
        width_multiplier: scales every layer's filter count (``< 1`` for tiny CPU models).
        freeze_bn: batch norm uses (and keeps) its moving statistics; gamma/beta still train
            (TAO ``freeze_bn``).
        dropout: spatial dropout rate before the heads (0 disables; a cvlab extra: TAO's ResNet
            ignores ``dropout_rate``).
        name: model name (default ``resnet{num_layers}_detector``).
        all_projections: 1x1 projection on every shortcut (TAO / PeopleNet default).
        freeze_blocks: TAO block indices (0 = conv1, 1..4 = stages) whose convolutions stay
            fixed (batch norm layers are never frozen by it, as in TAO).
        use_batch_norm: batch norm after every convolution of the backbone (TAO default).
        regularizer, regularizer_weight: TAO ``training_config.regularizer``: ``L1``/``L2`` on
            the kernel AND bias of every convolution, heads included (``NO_REG``: none).
    """
    from cvlab.train.losses import make_regularizer

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
    freeze_blocks = tuple(int(b) for b in freeze_blocks)

    def conv_kwargs(trainable: bool = True) -> dict:
        # One regularizer object per weight, as TAO's build_regularizer gives Keras.
        return {
            "kernel_regularizer": make_regularizer(regularizer, regularizer_weight),
            "bias_regularizer": make_regularizer(regularizer, regularizer_weight),
            "trainable": trainable,
        }

    inputs = keras.Input(shape=(3, height, width), name=INPUT_NAME)
    x = layers.Permute((2, 3, 1), name="input_to_nhwc")(inputs)
    x = tao_conv2d(
        x,
        _filters(64, width_multiplier),
        7,
        strides=2,
        name="conv1",
        **conv_kwargs(0 not in freeze_blocks),
    )
    if use_batch_norm:
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
                conv_kwargs=conv_kwargs(stage not in freeze_blocks),
                use_batch_norm=use_batch_norm,
                freeze_bn=freeze_bn,
            )
    if dropout > 0:
        x = layers.SpatialDropout2D(dropout, name="head_dropout")(x)
    head = conv_kwargs()
    cov = tao_conv2d(
        x, num_classes, 1, name="output_cov", layer=NCHWOutputConv2D, activation="sigmoid", **head
    )
    bbox = tao_conv2d(x, 4 * num_classes, 1, name="output_bbox", layer=NCHWOutputConv2D, **head)
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
        use_batch_norm=config.use_batch_norm,
        regularizer=config.regularizer,
        regularizer_weight=config.regularizer_weight,
    )


# --- weights files ----------------------------------------------------------------------------
class WeightsError(CvlabError, ValueError):
    """A pretrained-weights file cvlab cannot use (encrypted, unknown format, nothing matches)."""


#: What to do with TAO's encrypted archives (the message of :class:`WeightsError`).
ENCRYPTED_MODEL_HELP = (
    "is an encrypted TAO archive (.tlt/.etlt) that only TAO can decrypt; cvlab needs plain "
    "Keras HDF5 weights (.hdf5/.h5): download a 'trainable_unencrypted' version of NGC's "
    "PeopleNet (list them with `ngc registry model list 'nvidia/tao/peoplenet:*'`), or use "
    "TAO 5, whose `tao model detectnet_v2 train` writes .hdf5 models and "
    "`tao model detectnet_v2 export` writes a plain ONNX for deployment"
)


def check_weights_file(path: str | os.PathLike) -> Path:
    """The path if it names a file cvlab can load weights from; raises :class:`WeightsError`
    (encrypted ``.tlt``/``.etlt``, ONNX, anything but ``.h5``/``.hdf5``).

    >>> check_weights_file("resnet34_peoplenet.tlt")
    Traceback (most recent call last):
    ...
    cvlab.train.model.WeightsError: resnet34_peoplenet.tlt is an encrypted TAO archive ...
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tlt", ".etlt"):
        raise WeightsError(f"{path} {ENCRYPTED_MODEL_HELP}")
    if suffix not in (".h5", ".hdf5"):
        raise WeightsError(
            f"{path}: pretrained weights must be a Keras HDF5 file (.hdf5/.h5), got {suffix!r}"
            + (
                " (ONNX holds a deployable graph, not trainable Keras weights)"
                if suffix == ".onnx"
                else ""
            )
        )
    return path


def save_legacy_h5_weights(model: keras.Model, path: str) -> None:
    """Write the weights in the legacy Keras HDF5 layout TAO uses (atomic: temp file + rename)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    from cvlab.fileio import atomic_path

    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_h5_weights(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """Layer name -> weight arrays (in the layer's order) of a Keras HDF5 file.

    Reads both layouts TAO and Keras write: a weights file (``save_weights``: layer groups at
    the root) and a whole-model file (``model.save``: layer groups under ``model_weights``).
    A nested model's weights (``model_1`` holding ``conv1/kernel:0``, ...) are listed under
    their own layer names.
    """
    import h5py

    path = check_weights_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(f"{path}: not an HDF5 file ({exc})") from None
    with f:
        group = f.get("model_weights", f)
        if "layer_names" not in group.attrs:
            raise WeightsError(f"{path}: not a Keras HDF5 weights file (no 'layer_names')")
        out: dict[str, list[np.ndarray]] = {}
        for layer_name in (_text(n) for n in group.attrs["layer_names"]):
            layer_group = group[layer_name]
            names = [_text(n) for n in layer_group.attrs.get("weight_names", [])]
            parts = [n.split("/") for n in names]
            # A sub-model's weights carry several layer prefixes (``conv1/kernel:0``, ...).
            if len({p[-2] for p in parts if len(p) >= 2}) > 1:
                for n, p in zip(names, parts, strict=True):
                    out.setdefault(p[-2], []).append(np.asarray(layer_group[n]))
            else:
                out[layer_name] = [np.asarray(layer_group[n]) for n in names]
        return out


@dataclass
class WeightsReport:
    """What :func:`load_weights_by_name` did: which layers were set, skipped or absent."""

    path: Path
    loaded: list[str]
    skipped: dict[str, str]  # layer -> why (shape mismatch)
    missing: list[str]  # weighted layers in scope that the file does not have
    heads_loaded: bool
    considered: int  # weighted layers in scope (the backbone, plus the heads with load_graph)
    #: the file's weighted layers that set nothing in the model (the heads excluded when
    #: load_graph is off: TAO never loads them then)
    unused: list[str] = field(default_factory=list)
    #: where the file's architecture disagrees with the model's, each naming the spec field
    #: to change (:func:`architecture_warnings`)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line, e.g. ``loaded 21/21 backbone layers from w.hdf5; heads not loaded ...``,
        then one ``warning:`` line per architecture mismatch."""
        scope = "layers (backbone + heads)" if self.heads_loaded else "backbone layers"
        text = f"loaded {len(self.loaded)}/{self.considered} {scope} from {self.path}"
        if self.skipped:
            text += f"; {len(self.skipped)} skipped (shape mismatch: {', '.join(self.skipped)})"
        if self.missing:
            text += f"; {len(self.missing)} not in the file"
        if self.unused:
            shown = ", ".join(self.unused[:4]) + (", ..." if len(self.unused) > 4 else "")
            text += f"; {len(self.unused)} of the file's layers unused ({shown})"
        if not self.heads_loaded:
            text += "; heads (output_cov, output_bbox) not loaded: load_graph is off, as in TAO"
        return "\n".join([text, *(f"warning: {w}" for w in self.warnings)])

    def __str__(self) -> str:
        return self.summary()


def load_weights_by_name(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    load_graph: bool = False,
    min_fraction: float = 0.5,
) -> WeightsReport:
    """Load Keras HDF5 weights (e.g. TAO's) into ``model`` by layer name, as TAO does.

    With ``load_graph`` off (TAO's default) only the backbone is loaded: every weighted layer
    but the heads whose name is in the file and whose weight shapes match; the heads keep their
    fresh initialisation (TAO builds them after loading). ``load_graph=True`` loads the heads
    too and requires them to match. Nothing is set unless at least ``min_fraction`` of the
    layers in scope match: a file whose names or shapes match nothing (another architecture,
    width or a non-TAO model) raises :class:`WeightsError` instead of loading silently.
    ``.tlt``/``.etlt`` files are refused with the way to get plain weights.
    Returns a :class:`WeightsReport` (``str(report)`` is a one-line summary).
    """
    path = Path(path)
    stored = read_h5_weights(path)
    scope = [
        layer
        for layer in model.layers
        if layer.weights and (load_graph or layer.name not in HEAD_LAYERS)
    ]
    plan, skipped, missing = [], {}, []
    for layer in scope:
        arrays = stored.get(layer.name)
        if arrays is None:
            missing.append(layer.name)
            continue
        want = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in arrays]
        if want != got:
            skipped[layer.name] = f"file {got} vs model {want}"
            continue
        plan.append((layer, arrays))
    if load_graph:
        bad = [h for h in HEAD_LAYERS if h in missing or h in skipped]
        if bad:
            reasons = "; ".join(f"{h}: {skipped.get(h, 'not in the file')}" for h in bad)
            raise WeightsError(
                f"{path}: load_graph needs the heads in the file with the model's shapes "
                f"({reasons}); leave load_graph off to load the backbone only"
            )
    needed = max(1, int(np.ceil(min_fraction * len(scope))))
    if len(plan) < needed:
        example = ", ".join(sorted(n for n, w in stored.items() if w)[:6]) or "none"
        raise WeightsError(
            f"{path}: only {len(plan)} of the model's {len(scope)} weighted layers match the "
            f"file by name and shape (need {needed}); {len(missing)} absent, {len(skipped)} with "
            f"other shapes. The file's layers begin: {example}. Is it a DetectNet_v2 ResNet-"
            f"{_depth(model)} at the same width?"
        )
    for layer, arrays in plan:
        layer.set_weights(arrays)
    loaded = [layer.name for layer, _ in plan]
    done = set(loaded)
    unused = [
        name
        for name, arrays in stored.items()
        if arrays and name not in done and (load_graph or name not in HEAD_LAYERS)
    ]
    found = architecture_warnings(
        [n for n, w in stored.items() if w], [layer.name for layer in model.layers if layer.weights]
    )
    for text in found:
        warnings.warn(f"{path}: {text}", UserWarning, stacklevel=2)
    return WeightsReport(
        path=path,
        loaded=loaded,
        skipped=skipped,
        missing=missing,
        heads_loaded=load_graph,
        considered=len(scope),
        unused=unused,
        warnings=found,
    )


_SUBBLOCK = re.compile(r"block_(\d)([a-z])_conv_1$")
_LATER_SHORTCUT = re.compile(r"block_\d[b-z]_conv_shortcut$")
_DEPTH_OF_SUBBLOCKS = {4: 10, 8: 18, 16: 34}


def _resnet_shape(names: list[str]) -> tuple[int | None, bool | None, bool]:
    """``(depth or None, projection shortcuts in every block, batch norm)`` from TAO layer
    names (``block_1b_conv_shortcut`` exists only with ``all_projections``; a ResNet-10 has no
    second sub-block, so its projections are None: either way)."""
    subblocks = sum(bool(_SUBBLOCK.match(n)) for n in names)
    later = any(m and m.group(2) != "a" for m in map(_SUBBLOCK.match, names))
    projections = any(_LATER_SHORTCUT.match(n) for n in names) if later else None
    batch_norm = any(n == "bn_conv1" or re.match(r"block_\d[a-z]_bn_", n) for n in names)
    return _DEPTH_OF_SUBBLOCKS.get(subblocks), projections, batch_norm


def architecture_warnings(file_layers: list[str], model_layers: list[str]) -> list[str]:
    """Where a TAO ResNet weights file's architecture disagrees with the model's, one sentence
    each naming the spec field to change (``model_config.all_projections``, ``num_layers``,
    ``use_batch_norm``); ``[]`` when they agree or the file is not a TAO ResNet.

    TAO (and cvlab) load by name and silently leave out what does not fit: a PeopleNet file
    with projection shortcuts in every block loaded by a spec without ``all_projections`` loses
    its ``block_*b_conv_shortcut``/``bn_shortcut`` layers.

    >>> f = ["conv1", "bn_conv1", "block_1a_conv_1", "block_1b_conv_1", "block_1b_conv_shortcut"]
    >>> architecture_warnings(f, ["conv1", "bn_conv1", "block_1a_conv_1", "block_1b_conv_1"])[0]
    'the file has projection shortcuts in every block (block_1b_conv_shortcut) and the model does not: set model_config.all_projections: true'
    """
    if not any(_SUBBLOCK.match(n) for n in file_layers):
        return []
    f_depth, f_proj, f_bn = _resnet_shape(file_layers)
    m_depth, m_proj, m_bn = _resnet_shape(model_layers)
    out = []
    if f_proj is not None and m_proj is not None and f_proj != m_proj:
        if f_proj:
            examples = ", ".join(n for n in file_layers if _LATER_SHORTCUT.match(n))
            shown = examples if len(examples) < 80 else examples[:77] + "..."
            out.append(
                f"the file has projection shortcuts in every block ({shown}) and the model does "
                "not: set model_config.all_projections: true"
            )
        else:
            out.append(
                "the model has projection shortcuts in every block and the file does not "
                "(no block_1b_conv_shortcut): set model_config.all_projections: false"
            )
    if f_depth and m_depth and f_depth != m_depth:
        out.append(
            f"the file is a ResNet-{f_depth} and the model a ResNet-{m_depth}: set "
            f"model_config.num_layers: {f_depth}"
        )
    if f_bn != m_bn:
        out.append(
            f"the file has {'' if f_bn else 'no '}batch norm layers and the model "
            f"{'none' if f_bn else 'has'}: set model_config.use_batch_norm: "
            f"{'true' if f_bn else 'false'}"
        )
    return out


def _depth(model: keras.Model) -> str:
    blocks = sum(layer.name.endswith("_conv_1") for layer in model.layers)
    return {4: "10", 8: "18", 16: "34"}.get(blocks, "?")


def distribution_strategy():
    """``MirroredStrategy`` when more than one GPU is visible, else the default strategy."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
