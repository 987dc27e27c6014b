"""cvlab.export.padding: TAO's symmetric pads vs keras2onnx's TF-SAME in a DetectNet_v2 ONNX.

Crafted ONNX graphs of each kind (onnx.helper), run with onnxruntime to check the effect the
report states: a TF-SAME stride-2 layer is the symmetric one on its input shifted by one pixel.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cvlab.cli import main
from cvlab.export.padding import onnx_padding

H, W = 32, 64  # a multiple of 16, as DetectNet_v2 inputs


def _graph(conv1_pads, conv2_pads, *, auto_pad=None, pool_pad=(1, 1, 1, 1)) -> onnx.ModelProto:
    """input_1 [N,3,H,W] -> conv1 7x7/2 -> relu -> block_2a_conv_1 3x3/2 -> Pad -> MaxPool 3x3/2
    (TAO's max pooling: an explicit zero Pad, then a "valid" pool)."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 3, 7, 7)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w2")
    top, left, bottom, right = pool_pad
    pads = numpy_helper.from_array(np.array([0, 0, top, left, 0, 0, bottom, right], np.int64), "p")
    conv1 = {"auto_pad": auto_pad} if auto_pad else {"pads": list(conv1_pads)}
    nodes = [
        helper.make_node("Conv", ["input_1", "w1"], ["c1"], name="conv1", kernel_shape=[7, 7],
                         strides=[2, 2], **conv1),
        helper.make_node("Relu", ["c1"], ["r1"], name="activation_1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="block_2a_conv_1",
                         kernel_shape=[3, 3], strides=[2, 2], pads=list(conv2_pads)),
        helper.make_node("Pad", ["c2", "p"], ["padded"], name="pool_pad", mode="constant"),
        helper.make_node("MaxPool", ["padded"], ["out"], name="pool", kernel_shape=[3, 3],
                         strides=[2, 2]),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "detectnet",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["N", 3, H, W])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [w1, w2, pads],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_symmetric_pads_are_taos_trained_function(tmp_path):
    path = tmp_path / "tao_trained.onnx"
    onnx.save(_graph([3, 3, 3, 3], [1, 1, 1, 1]), str(path))
    report = onnx_padding(path)
    assert report.kind == "symmetric" and not report.asymmetric
    assert [(layer.name, layer.pads) for layer in report.layers] == [
        ("conv1", (3, 3, 3, 3)),
        ("block_2a_conv_1", (1, 1, 1, 1)),
        ("pool", (1, 1, 1, 1)),  # the Pad node's pads, read with the pool
    ]
    assert [layer.input_stride for layer in report.layers] == [1, 2, 4]
    assert "computes the trained function" in report.summary()


@pytest.mark.parametrize("auto_pad", [None, "SAME_UPPER"])
def test_tf_same_pads_are_reported_with_their_shift(tmp_path, auto_pad):
    """keras2onnx 1.7.0 (TAO's default DetectNet_v2 export): conv1 [2, 2, 3, 3], a stride-2
    3x3 [0, 0, 1, 1]; with a dynamic H/W it writes auto_pad SAME_UPPER instead."""
    path = tmp_path / "keras2onnx.onnx"
    onnx.save(_graph([2, 2, 3, 3], [0, 0, 1, 1], auto_pad=auto_pad), str(path))
    report = onnx_padding(path)
    assert report.kind == "tf_same"
    assert [(layer.name, layer.pads, layer.input_stride) for layer in report.asymmetric] == [
        ("conv1", (2, 2, 3, 3), 1),
        ("block_2a_conv_1", (0, 0, 1, 1), 2),
    ]
    text = report.summary()
    assert "TF-SAME" in text and "conv1 [2, 2, 3, 3] (1 px)" in text
    assert "shifted function of the trained network" in text


def test_the_stated_effect_is_a_one_pixel_shift():
    """What the report says, checked in onnxruntime: TF-SAME conv1 on an image equals the
    symmetric (trained) conv1 on the image moved one pixel up and left (away from the top and
    left edge: the first two output rows and columns read the row and column the move lost)."""
    import onnxruntime as ort

    def conv1_only(pads):
        model = _graph(pads, [1, 1, 1, 1])
        del model.graph.node[1:]
        model.graph.output[0].name = "c1"
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    x = np.random.default_rng(1).random((1, 3, H, W), dtype=np.float32)
    moved = np.zeros_like(x)
    moved[:, :, :-1, :-1] = x[:, :, 1:, 1:]
    tf_same = conv1_only([2, 2, 3, 3]).run(None, {"input_1": x})[0]
    trained = conv1_only([3, 3, 3, 3])
    np.testing.assert_allclose(
        tf_same[:, :, 2:, 2:], trained.run(None, {"input_1": moved})[0][:, :, 2:, 2:],
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip
    assert not np.allclose(tf_same, trained.run(None, {"input_1": x})[0], atol=1e-3)


def test_other_asymmetry_is_mixed(tmp_path):
    path = tmp_path / "odd.onnx"
    onnx.save(_graph([3, 3, 2, 2], [1, 1, 1, 1]), str(path))
    assert onnx_padding(path).kind == "mixed"


def test_triton_check_reports_the_padding(tmp_path, capsys):
    """``cvlab triton check FILE.onnx`` prints the kind and its effect; a bad file is one line."""
    tf_same = tmp_path / "tf_same.onnx"
    onnx.save(_graph([2, 2, 3, 3], [0, 0, 1, 1]), str(tf_same))
    assert main(["triton", "check", str(tf_same)]) == 0
    assert "TF-SAME padding" in capsys.readouterr().out
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert main(["triton", "check", str(bad)]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err
