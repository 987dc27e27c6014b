"""The DetectNet_v2 / PeopleNet model contract, in one place.

Tensor names, the PeopleNet class table, the input size and the grid geometry that decoding,
training, export, TensorRT and Triton all agree on.

Example:
    >>> from cvlab import detectnet
    >>> detectnet.INPUT_NAME, detectnet.COV_OUTPUT, detectnet.BBOX_OUTPUT
    ('input_1', 'output_cov/Sigmoid', 'output_bbox/BiasAdd')
    >>> detectnet.grid_size(detectnet.PEOPLENET_INPUT_SIZE)
    (60, 34)
"""

from __future__ import annotations

#: The network input: NCHW float32 RGB in [0, 1].
INPUT_NAME = "input_1"
#: Per-class coverage (sigmoid), ``[N, C, gh, gw]``.
COV_OUTPUT = "output_cov/Sigmoid"
#: Per-class box distances, ``[N, 4C, gh, gw]``: channels ``4c..4c+3`` are left, top, right, bottom.
BBOX_OUTPUT = "output_bbox/BiasAdd"
OUTPUT_NAMES: tuple[str, str] = (COV_OUTPUT, BBOX_OUTPUT)
#: Keras 3 forbids "/" in layer names: the Keras model names its heads these, and the ONNX
#: export renames them to :data:`OUTPUT_NAMES`.
KERAS_OUTPUT_NAMES: dict[str, str] = {"output_cov": COV_OUTPUT, "output_bbox": BBOX_OUTPUT}

#: PeopleNet's output channels, in order.
PEOPLENET_CLASSES: tuple[str, ...] = ("person", "bag", "face")
#: PeopleNet's input, (width, height).
PEOPLENET_INPUT_SIZE: tuple[int, int] = (960, 544)
#: Output grid stride in input pixels.
STRIDE = 16
#: Box distances are predicted in units of this many pixels.
BBOX_NORM = 35.0
#: Grid-cell centre offset: cell ``i`` is centred at ``STRIDE * i + OFFSET``.
OFFSET = 0.5


def strip_port_suffix(name: str) -> str:
    """A tensor name without TensorFlow's ``:0`` port suffix.

    >>> strip_port_suffix("output_cov/Sigmoid:0")
    'output_cov/Sigmoid'
    """
    return name[:-2] if name.endswith(":0") else name


def grid_size(input_size: tuple[int, int], stride: int = STRIDE) -> tuple[int, int]:
    """The output grid ``(gw, gh)`` of an input ``(width, height)``; both must be multiples of
    ``stride``.

    >>> grid_size((320, 192))
    (20, 12)
    """
    w, h = input_size
    if w % stride or h % stride:
        raise ValueError(f"input size {w}x{h} must be a multiple of the stride {stride}")
    return w // stride, h // stride
