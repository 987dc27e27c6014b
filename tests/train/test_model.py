"""Keras DetectNet_v2: shapes, TAO layer names, by-name HDF5 weight loading (real TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest
from support.train import limit_tf_threads

from cvlab.train.model import (
    build_detectnet_v2,
    load_weights_by_name,
    save_legacy_h5_weights,
)

limit_tf_threads()


@pytest.mark.parametrize(
    "num_layers,last_block", [(10, "block_4a"), (18, "block_4b"), (34, "block_4c")]
)
def test_shapes_names_and_stride(num_layers, last_block):
    model = build_detectnet_v2(
        3, input_size=(160, 96), num_layers=num_layers, width_multiplier=0.125
    )
    assert model.input.name == "input_1" or model.inputs[0].name.startswith("input_1")
    assert tuple(model.inputs[0].shape) == (None, 3, 96, 160)
    assert model.output_names == ["output_cov", "output_bbox"]
    assert tuple(model.outputs[0].shape) == (None, 3, 6, 10)  # stride 16
    assert tuple(model.outputs[1].shape) == (None, 12, 6, 10)
    names = {layer.name for layer in model.layers}
    for expected in (
        "conv1",
        "bn_conv1",
        "block_1a_conv_1",
        "block_1a_bn_1",
        "block_1a_conv_2",
        "block_1a_bn_2",
        "block_1a_conv_shortcut",
        "block_1a_bn_shortcut",
        f"{last_block}_conv_2",
        "output_cov",
        "output_bbox",
    ):
        assert expected in names
    expected_blocks = {10: 4, 18: 8, 34: 16}[num_layers]
    assert sum(n.endswith("_conv_1") for n in names) == expected_blocks


def test_outputs_are_sigmoid_coverage_and_nchw():
    model = build_detectnet_v2(2, input_size=(64, 32), num_layers=10, width_multiplier=0.125)
    x = np.random.default_rng(0).random((2, 3, 32, 64), dtype=np.float32)
    cov, bbox = (np.asarray(t) for t in model(x, training=False))
    assert cov.shape == (2, 2, 2, 4) and bbox.shape == (2, 8, 2, 4)
    assert (cov > 0).all() and (cov < 1).all()
    # NCHW: the batch element order is kept and a change in one image's left half moves
    # only that image's outputs.
    x2 = x.copy()
    x2[1, :, :, :8] += 1.0
    cov2 = np.asarray(model(x2, training=False)[0])
    np.testing.assert_allclose(cov2[0], cov[0], rtol=1e-6)
    assert not np.allclose(cov2[1], cov[1])


def test_legacy_h5_weights_load_by_name(tmp_path):
    src = build_detectnet_v2(1, input_size=(64, 32), num_layers=18, width_multiplier=0.125)
    path = tmp_path / "weights.h5"
    save_legacy_h5_weights(src, str(path))
    dst = build_detectnet_v2(1, input_size=(64, 32), num_layers=18, width_multiplier=0.125)
    x = np.random.default_rng(1).random((1, 3, 32, 64), dtype=np.float32)
    assert not np.allclose(dst(x)[1], src(x)[1])
    load_weights_by_name(dst, str(path))
    np.testing.assert_allclose(np.asarray(dst(x)[1]), np.asarray(src(x)[1]), rtol=1e-5, atol=1e-6)
    # A model with another head size (3 classes) takes the backbone by name, skips the heads.
    other = build_detectnet_v2(3, input_size=(64, 32), num_layers=18, width_multiplier=0.125)
    with pytest.warns(UserWarning, match="Skipping loading weights for layer .*output_cov"):
        load_weights_by_name(other, str(path), skip_mismatch=True)
    np.testing.assert_array_equal(
        other.get_layer("block_2b_conv_1").get_weights()[0],
        src.get_layer("block_2b_conv_1").get_weights()[0],
    )


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_layers 50"):
        build_detectnet_v2(1, num_layers=50)
    with pytest.raises(ValueError, match="multiples of 16"):
        build_detectnet_v2(1, input_size=(100, 96))
    with pytest.raises(ValueError, match="legacy .h5"):
        load_weights_by_name(
            build_detectnet_v2(1, (32, 32), num_layers=10, width_multiplier=0.125), "w.keras"
        )


def test_freeze_bn_and_blocks():
    model = build_detectnet_v2(
        1,
        input_size=(64, 32),
        num_layers=10,
        width_multiplier=0.125,
        freeze_bn=True,
        freeze_blocks=(0, 1),
    )
    assert not model.get_layer("conv1").trainable
    assert not model.get_layer("block_1a_conv_1").trainable
    assert model.get_layer("block_2a_conv_1").trainable
    x = np.random.default_rng(2).random((2, 3, 32, 64), dtype=np.float32)
    # Frozen BN: training and inference give the same output.
    np.testing.assert_allclose(
        np.asarray(model(x, training=True)[0]), np.asarray(model(x, training=False)[0]), rtol=1e-5
    )
