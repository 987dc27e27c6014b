"""TAO's "same" padding: cvlab's Keras DetectNet_v2 == an independent numpy reference == its ONNX.

TAO patches Keras (third_party/keras/tensorflow_backend.py in NVIDIA/tao_tensorflow1_backend) so
that "same" convolutions pad ((k - 1) * d + 1) // 2 zeros on every side and pooling pads
(k - 1) // 2 zeros, then run "valid". The reference below is written from that rule alone, in
numpy (float64), and runs a ResNet-10 DetectNet_v2 read straight from a TAO-layout HDF5 file
(layer groups under ``model_weights``, as TAO's ``model.save`` writes them). The shape fixtures
are ported from TAO's third_party/keras/test_tensorflow_backend.py (FILTERS = 5).
"""

from __future__ import annotations

import h5py
import keras
import numpy as np
import onnx
import pytest
from support.train import limit_tf_threads

from cvlab.train.model import (
    build_detectnet_v2,
    load_weights_by_name,
    tao_conv2d,
    tao_pool2d,
)

limit_tf_threads()

INPUT = (160, 96)  # every stride-2 layer sees an even size: where TF "SAME" is asymmetric
TOL = 1e-5


# --- the independent reference -------------------------------------------------------------
def tao_pad(k: int) -> tuple[int, int]:
    """TAO's patched conv2d: ((k - 1) * 1 + 1) // 2 on both sides."""
    return (k // 2, k // 2)


def tf_same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    """Stock TensorFlow "SAME" (what Keras' padding="same" does without TAO's patch)."""
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return (total // 2, total - total // 2)


def np_conv(x, kernel, bias, stride, pads):
    """NCHW float64 convolution; ``pads`` = (before, after) on H and W."""
    kh, kw, _, cout = kernel.shape
    x = np.pad(x, ((0, 0), (0, 0), pads, pads))
    ho = (x.shape[2] - kh) // stride + 1
    wo = (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], cout, ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = x[
                :, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride
            ]
            out += np.einsum("nchw,co->nohw", patch, kernel[i, j])
    return out + bias[None, :, None, None]


def np_bn(x, gamma, beta, mean, var, eps=1e-3):
    c = (None, slice(None), None, None)
    return (x - mean[c]) / np.sqrt(var[c] + eps) * gamma[c] + beta[c]


def np_maxpool(x, k, s, pad):
    """TAO's patched pool2d: zero padding (not -inf), then "valid" max pooling."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    out = np.full((*x.shape[:2], ho, wo), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(
                out, x[:, :, i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s]
            )
    return out


def read_tao_h5(path):
    with h5py.File(path, "r") as f:
        g = f["model_weights"]
        return {
            name.decode() if isinstance(name, bytes) else name: [
                np.asarray(g[name][w], np.float64) for w in g[name].attrs["weight_names"]
            ]
            for name in g.attrs["layer_names"]
        }


def reference_resnet10(weights, x, tf_same=False):
    """DetectNet_v2 ResNet-10 (all_projections, BN, stride 16) from TAO's layer names."""
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731

    def conv(name, v, stride, padded=True):
        kernel, bias = weights[name]
        k = kernel.shape[0]
        if not padded:
            pads = (0, 0)
        elif tf_same:
            pads = tf_same_pad(v.shape[2], k, stride)
            assert pads == tf_same_pad(v.shape[3], k, stride)
        else:
            pads = tao_pad(k)
        return np_conv(v, kernel, bias, stride, pads)

    def bn(name, v):
        return np_bn(v, *weights[name])

    v = relu(bn("bn_conv1", conv("conv1", x, 2)))
    for stage, stride in zip((1, 2, 3, 4), (2, 2, 2, 1), strict=True):
        p = f"block_{stage}a_"
        y = relu(bn(p + "bn_1", conv(p + "conv_1", v, stride)))
        y = bn(p + "bn_2", conv(p + "conv_2", y, 1))
        shortcut = bn(p + "bn_shortcut", conv(p + "conv_shortcut", v, stride, padded=False))
        v = relu(y + shortcut)
    cov = 1.0 / (1.0 + np.exp(-conv("output_cov", v, 1)))
    bbox = conv("output_bbox", v, 1)
    return cov, bbox


# --- fixtures --------------------------------------------------------------------------------
def _random_tao_model(seed=0):
    """A ResNet-10 with random kernels, biases and batch-norm statistics (nothing identity)."""
    model = build_detectnet_v2(2, input_size=INPUT, num_layers=10, width_multiplier=0.25)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.weights[0].shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n),
                    rng.normal(0, 0.1, n),
                    rng.normal(0, 0.1, n),
                    rng.uniform(0.5, 1.5, n),
                ]
            )
        elif isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])
    return model


def _save_tao_layout(model, path):
    """The HDF5 layout of TAO's ``keras_model.save``: layer groups under ``model_weights``."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        legacy_h5_format.save_weights_to_hdf5_group(f.create_group("model_weights"), model)
    return path


@pytest.fixture(scope="module")
def tao_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tao") / "resnet10_detector.hdf5"
    return _save_tao_layout(_random_tao_model(), path)


@pytest.fixture(scope="module")
def batch():
    w, h = INPUT
    return np.random.default_rng(1).random((2, 3, h, w), dtype=np.float32)


# --- tests -----------------------------------------------------------------------------------
def test_keras_equals_the_numpy_reference_of_tao_padding(tao_file, batch):
    model = build_detectnet_v2(2, input_size=INPUT, num_layers=10, width_multiplier=0.25)
    report = load_weights_by_name(model, tao_file, load_graph=True)
    assert report.heads_loaded and not report.skipped and not report.missing
    weights = read_tao_h5(tao_file)
    ref_cov, ref_bbox = reference_resnet10(weights, batch.astype(np.float64))
    cov, bbox = (np.asarray(t, np.float64) for t in model(batch, training=False))
    assert cov.shape == ref_cov.shape == (2, 2, 6, 10) and bbox.shape == (2, 8, 6, 10)
    assert np.abs(cov - ref_cov).max() < TOL
    assert np.abs(bbox - ref_bbox).max() < TOL
    # The same weights with stock TF "SAME" padding compute another function: the test can fail.
    tf_cov, tf_bbox = reference_resnet10(weights, batch.astype(np.float64), tf_same=True)
    assert np.abs(bbox - tf_bbox).max() > 100 * TOL


def test_onnx_export_equals_the_reference_and_writes_tao_pads(tao_file, batch, tmp_path):
    import onnxruntime as ort

    from cvlab.export.onnx import export_onnx

    model = build_detectnet_v2(2, input_size=INPUT, num_layers=10, width_multiplier=0.25)
    load_weights_by_name(model, tao_file, load_graph=True)
    report = export_onnx(model, tmp_path / "m.onnx", atol=TOL)
    assert report.max_abs_diff < TOL
    graph = onnx.load(str(report.path)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert len(convs) == 1 + 4 * 3 + 2
    for node in convs:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        k = attrs["kernel_shape"][0]
        # As TAO's KerasExporter._fix_onnx_paddings writes them: auto_pad NOTSET and
        # [top, left, bottom, right] = (k - 1) // 2 each (1x1 shortcuts and heads: 0 or none).
        assert attrs.get("auto_pad", b"NOTSET") == b"NOTSET", node.name
        assert list(attrs.get("pads", [0, 0, 0, 0])) == [(k - 1) // 2] * 4, node.name
    assert not [n for n in graph.node if n.op_type == "Pad"]  # folded into the convolutions

    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    cov, bbox = session.run(["output_cov/Sigmoid", "output_bbox/BiasAdd"], {"input_1": batch})
    ref_cov, ref_bbox = reference_resnet10(read_tao_h5(tao_file), batch.astype(np.float64))
    assert np.abs(cov - ref_cov).max() < TOL
    assert np.abs(bbox - ref_bbox).max() < TOL


# TAO third_party/keras/test_tensorflow_backend.py: (input, expected output, kernel, strides,
# padding, data_format). cvlab's layers run NHWC; channels_first cases are transposed around.
CONV2D_TESTS = [
    ((1, 4, 4, 3), (1, 4, 4, 5), (3, 3), (1, 1), "same", "channels_last"),
    ((1, 4, 4, 3), (1, 2, 2, 5), (3, 3), (2, 2), "same", "channels_last"),
    ((1, 4, 4, 3), (1, 2, 2, 5), (3, 3), (1, 1), "valid", "channels_last"),
    ((1, 4, 4, 3), (1, 1, 1, 5), (3, 3), (2, 2), "valid", "channels_last"),
    ((1, 3, 4, 4), (1, 5, 4, 4), (3, 3), (1, 1), "same", "channels_first"),
    ((1, 3, 4, 4), (1, 5, 2, 2), (3, 3), (2, 2), "same", "channels_first"),
    ((1, 3, 4, 4), (1, 5, 2, 2), (3, 3), (1, 1), "valid", "channels_first"),
    ((1, 3, 4, 4), (1, 5, 1, 1), (3, 3), (2, 2), "valid", "channels_first"),
]
POOL2D_TESTS = [
    ((1, 4, 4, 3), (1, 4, 4, 3), (3, 3), (1, 1), "same", "channels_last", "max"),
    ((1, 4, 4, 3), (1, 2, 2, 3), (3, 3), (2, 2), "same", "channels_last", "average"),
    ((1, 4, 4, 3), (1, 2, 2, 3), (3, 3), (1, 1), "valid", "channels_last", "max"),
    ((1, 4, 4, 3), (1, 1, 1, 3), (3, 3), (2, 2), "valid", "channels_last", "average"),
    ((1, 3, 4, 4), (1, 3, 4, 4), (3, 3), (1, 1), "same", "channels_first", "max"),
    ((1, 3, 4, 4), (1, 3, 2, 2), (3, 3), (2, 2), "same", "channels_first", "average"),
    ((1, 3, 4, 4), (1, 3, 2, 2), (3, 3), (1, 1), "valid", "channels_first", "max"),
    ((1, 3, 4, 4), (1, 3, 1, 1), (3, 3), (2, 2), "valid", "channels_first", "average"),
]


def _nhwc(shape, data_format):
    return shape if data_format == "channels_last" else (shape[0], shape[2], shape[3], shape[1])


@pytest.mark.parametrize("case", CONV2D_TESTS)
def test_conv2d_shapes_ported_from_tao(case):
    in_shape, out_shape, kernel, strides, padding, data_format = case
    inputs = keras.Input(_nhwc(in_shape, data_format)[1:])
    out = tao_conv2d(inputs, 5, kernel[0], strides=strides[0], padding=padding, name="c")
    y = keras.Model(inputs, out)(np.ones(_nhwc(in_shape, data_format), np.float32))
    assert tuple(y.shape) == _nhwc(out_shape, data_format)


@pytest.mark.parametrize("case", POOL2D_TESTS)
def test_pool2d_shapes_ported_from_tao(case):
    in_shape, out_shape, pool, strides, padding, data_format, mode = case
    inputs = keras.Input(_nhwc(in_shape, data_format)[1:])
    if padding == "same":
        out = tao_pool2d(
            inputs, pool[0], strides[0], name="p", mode="max" if mode == "max" else "avg"
        )
    else:
        layer = keras.layers.MaxPooling2D if mode == "max" else keras.layers.AveragePooling2D
        out = layer(pool, strides=strides, padding="valid")(inputs)
    y = keras.Model(inputs, out)(np.ones(_nhwc(in_shape, data_format), np.float32))
    assert tuple(y.shape) == _nhwc(out_shape, data_format)


def test_stride2_conv_reads_the_row_above_as_tao_does():
    """A 4x4 ramp through a 3x3/s2 conv whose kernel picks the top-left tap: TAO's output row 0
    reads input row -1 (zero padding), stock TF "SAME" reads row 0."""
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, tao_conv2d(inputs, 1, 3, strides=2, name="c", use_bias=False))
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[0, 0] = 1.0
    model.get_layer("c").set_weights([kernel])
    ramp = np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4, 1)
    y = np.asarray(model(ramp))[0, :, :, 0]
    np.testing.assert_array_equal(y, [[0, 0], [0, 6]])  # taps at (-1,-1), (-1,1), (1,-1), (1,1)
    stock = keras.layers.Conv2D(1, 3, strides=2, padding="same", use_bias=False)
    stock.build((1, 4, 4, 1))
    stock.set_weights([kernel])
    np.testing.assert_array_equal(np.asarray(stock(ramp))[0, :, :, 0], [[1, 3], [9, 11]])


def test_max_pool_pads_with_zero_like_tao():
    """On negative inputs TAO's zero padding wins the max at the border (stock Keras: -inf)."""
    x = -np.random.default_rng(2).uniform(1, 2, (1, 4, 6, 3)).astype(np.float32)
    inputs = keras.Input(x.shape[1:])
    y = np.asarray(keras.Model(inputs, tao_pool2d(inputs, 3, 2, name="p"))(x))
    ref = np_maxpool(x.transpose(0, 3, 1, 2).astype(np.float64), 3, 2, 1).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y, ref, atol=1e-7)
    assert (y[:, 0, :, :] == 0).all() and (y < 0).any()
