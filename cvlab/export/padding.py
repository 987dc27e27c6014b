"""Which padding a DetectNet_v2 ONNX file carries: TAO's trained symmetric pads or TF "SAME".

TAO trains DetectNet_v2 with symmetric zero padding (``(k - 1) * d + 1) // 2`` pixels on every
side, ``third_party/keras/tensorflow_backend.py``), and cvlab's ``cvlab export onnx`` writes those
pads. TAO's default DetectNet_v2 export goes through keras2onnx 1.7.0, which writes TF "SAME"
pads instead: on a stride-2 layer one pixel less at the top and left and one more at the bottom
and right (conv1 ``[2, 2, 3, 3]`` instead of ``[3, 3, 3, 3]``). Such a file computes a shifted
function of the network TAO trained: each such layer samples its input one pixel (of that
layer's input resolution) down and right of where training put it. :func:`onnx_padding` tells
the kinds apart from the graph alone (docs/tao_fidelity.md).

Example:
    >>> report = onnx_padding("model.onnx")  # doctest: +SKIP
    >>> report.kind, report.summary()  # doctest: +SKIP
    ('tf_same', 'model.onnx: TF-SAME padding (keras2onnx, TAO's default DetectNet_v2 export) ...')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

PaddingKind = Literal["symmetric", "tf_same", "mixed", "none"]
_PADDED_OPS = ("Conv", "MaxPool", "AveragePool")


@dataclass(frozen=True)
class PaddedLayer:
    """One convolution or pooling node: its spatial pads ``[top, left, bottom, right]`` (its own
    plus those of a ``Pad`` node right before it) and the stride of its input against the
    network input (1 for conv1)."""

    name: str
    op: str
    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    input_stride: int

    @property
    def symmetric(self) -> bool:
        return self.pads[:2] == self.pads[2:]

    @property
    def tf_same(self) -> bool:
        """Asymmetric the way TF "SAME" is: the extra pixel at the bottom/right only."""
        extra = (self.pads[2] - self.pads[0], self.pads[3] - self.pads[1])
        return not self.symmetric and all(e in (0, 1) for e in extra)


@dataclass
class PaddingReport:
    """What :func:`onnx_padding` found."""

    path: str
    kind: PaddingKind
    layers: list[PaddedLayer] = field(default_factory=list)

    @property
    def asymmetric(self) -> list[PaddedLayer]:
        return [layer for layer in self.layers if not layer.symmetric]

    def summary(self) -> str:
        """One line naming the kind and its expected effect."""
        if self.kind == "none":
            return f"{self.path}: no convolution or pooling with padding found"
        if self.kind == "symmetric":
            return (
                f"{self.path}: symmetric padding on every layer, as TAO trains DetectNet_v2: "
                "the file computes the trained function"
            )
        shown = ", ".join(
            f"{layer.name} {list(layer.pads)} ({layer.input_stride} px)"
            for layer in self.asymmetric[:4]
        ) + (", ..." if len(self.asymmetric) > 4 else "")
        if self.kind == "tf_same":
            return (
                f"{self.path}: TF-SAME padding (keras2onnx, TAO's default DetectNet_v2 export): "
                f"{len(self.asymmetric)} layer(s) pad one pixel less at the top/left than TAO "
                f"trained ({shown}; pads top, left, bottom, right and the layer's input pixel "
                "in network-input pixels), so each samples its input that far down and right "
                "of training: a shifted function of the trained network (coverage and boxes "
                "move by a few pixels, accuracy drops). `cvlab export onnx` and TAO's tf2onnx "
                "route write the trained, symmetric pads"
            )
        return (
            f"{self.path}: asymmetric padding that is neither TAO's symmetric nor TF-SAME "
            f"({shown}): the file does not compute the network TAO trained"
        )


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _constants(graph) -> dict[str, list[int]]:
    """Integer initializers and Constant node outputs, by name (a Pad node's pads)."""
    from onnx import numpy_helper

    out = {i.name: numpy_helper.to_array(i).ravel().tolist() for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            value = _attrs(node).get("value")
            if value is not None:
                out[node.output[0]] = numpy_helper.to_array(value).ravel().tolist()
    return out


def onnx_padding(model_or_path) -> PaddingReport:
    """Read every ``Conv``/``MaxPool``/``AveragePool`` of an ONNX graph (path or
    ``onnx.ModelProto``) and classify its padding: ``symmetric`` (TAO's trained function),
    ``tf_same`` (keras2onnx's TF "SAME", ``auto_pad=SAME_UPPER`` included), ``mixed`` (any other
    asymmetry) or ``none``.
    """
    import onnx

    if isinstance(model_or_path, str | os.PathLike):
        path = str(model_or_path)
        model = onnx.load(path, load_external_data=False)
    else:
        path, model = "<onnx>", model_or_path
    graph = model.graph
    constants = _constants(graph)
    weights = {i.name: tuple(i.dims) for i in graph.initializer}
    pad_nodes = {}  # output -> (input, [top, left, bottom, right])
    stride_of = {v.name: 1 for v in graph.input}
    layers = []
    for node in graph.node:  # ONNX graphs are topologically sorted
        inputs = [stride_of.get(name, 1) for name in node.input if name in stride_of]
        stride_in = max(inputs, default=1)
        attrs = _attrs(node)
        if node.op_type == "Pad" and attrs.get("mode", b"constant") in (b"constant", "constant"):
            pads = attrs.get("pads") or constants.get(node.input[1] if len(node.input) > 1 else "")
            if pads and len(pads) == 8:
                pad_nodes[node.output[0]] = (node.input[0], [pads[2], pads[3], pads[6], pads[7]])
        if node.op_type in _PADDED_OPS:
            kernel = attrs.get("kernel_shape") or weights.get(node.input[1], (0, 0, 0, 0))[2:]
            strides = tuple(attrs.get("strides", (1, 1)))
            own = list(attrs.get("pads", (0, 0, 0, 0)))
            auto = attrs.get("auto_pad", b"NOTSET")
            auto = auto.decode() if isinstance(auto, bytes) else auto
            if auto in ("SAME_UPPER", "SAME_LOWER"):
                total = [max(int(k) - 1, 0) for k in kernel]  # TF "SAME" on an even input
                total = [t - (s - 1) if s > 1 else t for t, s in zip(total, strides, strict=True)]
                small = [max(t, 0) // 2 for t in total]
                big = [max(t, 0) - b for t, b in zip(total, small, strict=True)]
                own = small + big if auto == "SAME_UPPER" else big + small
            source = node.input[0]
            if source in pad_nodes:
                before, extra = pad_nodes[source]
                own = [a + b for a, b in zip(own, extra, strict=True)]
                stride_in = stride_of.get(before, stride_in)
            pads = tuple(int(p) for p in own)
            if any(pads):
                layers.append(
                    PaddedLayer(
                        node.name or node.output[0],
                        node.op_type,
                        tuple(int(k) for k in kernel),
                        tuple(int(s) for s in strides),
                        pads,
                        stride_in,
                    )
                )
            stride_in *= strides[0] if strides else 1
        for name in node.output:
            stride_of[name] = stride_in
    asymmetric = [layer for layer in layers if not layer.symmetric]
    if not layers:
        kind: PaddingKind = "none"
    elif not asymmetric:
        kind = "symmetric"
    elif all(layer.tf_same for layer in asymmetric):
        kind = "tf_same"
    else:
        kind = "mixed"
    return PaddingReport(path, kind, layers)


def check_onnx_padding(path: str | os.PathLike) -> PaddingReport:
    """:func:`onnx_padding` of a file; :class:`~cvlab.errors.CvlabError` naming it when it is
    missing or not ONNX."""
    from cvlab.errors import CvlabError

    path = Path(path)
    if not path.is_file():
        raise CvlabError(f"{path}: no such file")
    try:
        return onnx_padding(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's
        raise CvlabError(f"{path}: not a readable ONNX model ({exc})") from None
