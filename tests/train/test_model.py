"""Keras DetectNet_v2: shapes, TAO layer names, by-name HDF5 weight loading (real TensorFlow)."""

from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest
from support.train import limit_tf_threads

from cvlab.errors import CvlabError
from cvlab.train.losses import regularization_cost
from cvlab.train.model import (
    HEAD_LAYERS,
    WeightsError,
    WeightsReport,
    build_detectnet_v2,
    check_weights_file,
    load_weights_by_name,
    read_h5_weights,
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


def _tiny(num_classes=1, num_layers=18, width=0.125):
    return build_detectnet_v2(
        num_classes, input_size=(64, 32), num_layers=num_layers, width_multiplier=width
    )


def test_legacy_h5_weights_load_backbone_by_name_as_tao(tmp_path):
    src = _tiny()
    path = tmp_path / "weights.h5"
    save_legacy_h5_weights(src, str(path))
    x = np.random.default_rng(1).random((1, 3, 32, 64), dtype=np.float32)

    # TAO's default (load_graph false): the backbone is loaded, the heads stay fresh.
    dst = _tiny()
    report = load_weights_by_name(dst, path)
    assert isinstance(report, WeightsReport) and not report.heads_loaded
    backbone = [layer.name for layer in src.layers if layer.weights][:-2]
    assert report.loaded == backbone and report.considered == len(backbone)
    assert not report.skipped and not report.missing
    assert "loaded 50/50 backbone layers" in str(report) and "heads" in str(report)
    np.testing.assert_array_equal(
        dst.get_layer("block_4b_conv_2").get_weights()[0],
        src.get_layer("block_4b_conv_2").get_weights()[0],
    )
    for head in HEAD_LAYERS:
        assert not np.array_equal(
            dst.get_layer(head).get_weights()[0], src.get_layer(head).get_weights()[0]
        )

    # load_graph: the heads too, so the whole function is the source's.
    full = _tiny()
    report = load_weights_by_name(full, path, load_graph=True)
    assert report.heads_loaded and len(report.loaded) == len(backbone) + 2
    np.testing.assert_allclose(np.asarray(full(x)[1]), np.asarray(src(x)[1]), rtol=1e-5, atol=1e-6)

    # Another head size (3 classes): the backbone loads; load_graph refuses the heads.
    other = _tiny(num_classes=3)
    assert len(load_weights_by_name(other, path).loaded) == len(backbone)
    with pytest.raises(WeightsError, match="load_graph needs the heads.*output_cov"):
        load_weights_by_name(_tiny(num_classes=3), path, load_graph=True)

    # A ResNet-10 file into the ResNet-18: the shared layers load, the rest is reported.
    small = tmp_path / "r10.h5"
    save_legacy_h5_weights(_tiny(num_layers=10), str(small))
    partial = load_weights_by_name(_tiny(), small, min_fraction=0.3)
    assert "block_1b_conv_1" in partial.missing and "block_1a_conv_1" in partial.loaded


def test_weights_that_match_nothing_fail_loudly(tmp_path):
    path = tmp_path / "wide.h5"
    save_legacy_h5_weights(_tiny(width=0.25), str(path))  # same names, other shapes
    dst = _tiny()
    before = dst.get_layer("conv1").get_weights()[0].copy()
    with pytest.raises(WeightsError, match=r"only 0 of the model's 50 weighted layers match"):
        load_weights_by_name(dst, path)
    np.testing.assert_array_equal(dst.get_layer("conv1").get_weights()[0], before)  # untouched
    renamed = tmp_path / "renamed.h5"
    with h5py.File(renamed, "w") as f:
        f.attrs["layer_names"] = [b"dense_1"]
        g = f.create_group("dense_1")
        g.attrs["weight_names"] = [b"dense_1/kernel:0"]
        g.create_dataset("dense_1/kernel:0", data=np.zeros((3, 3), np.float32))
    with pytest.raises(WeightsError, match="begin: dense_1"):
        load_weights_by_name(dst, renamed)
    # ResNet-10 weights cover too little of a ResNet-34 at the default threshold.
    small = tmp_path / "r10.h5"
    save_legacy_h5_weights(_tiny(num_layers=10), str(small))
    with pytest.raises(WeightsError, match="ResNet-34"):
        load_weights_by_name(_tiny(num_layers=34), small)


def test_tao_model_file_layout_and_nested_models_load(tmp_path):
    """TAO's ``model.save`` puts the layer groups under ``model_weights``; a model nested in a
    layer (``model_1``) keeps its layers' own names in the weight names."""
    from keras.src.legacy.saving import legacy_h5_format

    src = _tiny(num_layers=10)
    whole = tmp_path / "tao_model.hdf5"
    with h5py.File(whole, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f.create_group("model_weights"), src)
    assert read_h5_weights(whole).keys() >= {"conv1", "bn_conv1", "output_cov"}
    nested = tmp_path / "nested.hdf5"
    with h5py.File(nested, "w") as f:
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"model_1"]
        sub = g.create_group("model_1")
        names = []
        for layer in src.layers:
            for w, value in zip(layer.weights, layer.get_weights(), strict=True):
                name = f"{layer.name}/{w.name}:0"
                sub.create_dataset(name, data=value)
                names.append(name.encode())
        sub.attrs["weight_names"] = names
    for path in (whole, nested):
        dst = _tiny(num_layers=10)
        report = load_weights_by_name(dst, path, load_graph=True)
        assert report.heads_loaded and not report.missing, path
        np.testing.assert_array_equal(
            dst.get_layer("block_3a_bn_2").get_weights()[3],
            src.get_layer("block_3a_bn_2").get_weights()[3],
        )


@pytest.mark.parametrize("name", ["resnet34_peoplenet.tlt", "model.etlt", "PEOPLENET.TLT"])
def test_encrypted_tao_archives_are_refused_with_the_way_out(name, tmp_path):
    with pytest.raises(WeightsError) as info:
        load_weights_by_name(_tiny(num_layers=10), tmp_path / name)
    message = str(info.value)
    assert isinstance(info.value, CvlabError) and "\n" not in message
    assert "trainable_unencrypted" in message and "tao model detectnet_v2 export" in message
    with pytest.raises(WeightsError, match="ONNX holds a deployable graph"):
        check_weights_file("model.onnx")


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="num_layers 50"):
        build_detectnet_v2(1, num_layers=50)
    with pytest.raises(ValueError, match="multiples of 16"):
        build_detectnet_v2(1, input_size=(100, 96))
    with pytest.raises(WeightsError, match=r"\.hdf5/\.h5"):
        load_weights_by_name(_tiny(num_layers=10), "w.keras")
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        load_weights_by_name(_tiny(num_layers=10), tmp_path / "missing.hdf5")


def test_regularizer_on_every_convolution_kernel_and_bias():
    """TAO's build_regularizer: L1/L2 on the kernel AND bias of every Conv2D, heads included;
    batch norm is not regularised."""
    model = build_detectnet_v2(
        1, (64, 32), num_layers=10, width_multiplier=0.125, regularizer="L2", regularizer_weight=0.5
    )
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 1 + 4 * 3 + 2 and len(model.losses) == 2 * len(convs)
    expected = 0.5 * sum(float(np.sum(w**2)) for c in convs for w in c.get_weights())
    assert float(regularization_cost(model)) == pytest.approx(expected, rel=1e-5)
    l1 = build_detectnet_v2(
        1, (64, 32), num_layers=10, width_multiplier=0.125, regularizer="L1", regularizer_weight=0.1
    )
    expected = 0.1 * sum(
        float(np.sum(np.abs(w)))
        for layer in l1.layers
        if isinstance(layer, keras.layers.Conv2D)
        for w in layer.get_weights()
    )
    assert float(regularization_cost(l1)) == pytest.approx(expected, rel=1e-5)
    assert float(regularization_cost(_tiny(num_layers=10))) == 0.0
    with pytest.raises(ValueError, match="must be >= 0"):
        build_detectnet_v2(1, (64, 32), num_layers=10, regularizer="L1", regularizer_weight=-1)


def test_without_batch_norm():
    model = build_detectnet_v2(
        1, (64, 32), num_layers=10, width_multiplier=0.125, use_batch_norm=False
    )
    assert not [layer for layer in model.layers if "bn" in layer.name]
    assert len(model.trainable_weights) == 2 * (1 + 4 * 3 + 2)  # kernels and biases only
    cov, _ = model(np.ones((1, 3, 32, 64), np.float32))
    assert cov.shape == (1, 1, 2, 4)


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
    # TAO: freeze_bn keeps the moving statistics but gamma/beta still train; freeze_blocks
    # freezes convolutions only, never batch norm.
    bn = model.get_layer("bn_conv1")
    assert bn.trainable and sorted(w.name for w in bn.trainable_weights) == ["beta", "gamma"]
    assert model.get_layer("block_1a_bn_1").trainable
    stats = [w.copy() for w in bn.get_weights()[2:]]
    model(x + 3.0, training=True)
    for before, after in zip(stats, bn.get_weights()[2:], strict=True):
        np.testing.assert_array_equal(before, after)
    free = build_detectnet_v2(1, input_size=(64, 32), num_layers=10, width_multiplier=0.125)
    mean = free.get_layer("bn_conv1").get_weights()[2].copy()
    free(x + 3.0, training=True)
    assert not np.allclose(free.get_layer("bn_conv1").get_weights()[2], mean)


def test_weights_report_lists_unused_file_layers_and_names_the_spec_field(tmp_path):
    """The lab's all_projections trap: a file with projection shortcuts in every block
    (PeopleNet, TAO's default spec) loaded into a model without them loses its
    block_*b_conv_shortcut/bn_shortcut layers, in TAO as in cvlab. The report lists them and
    warns with the spec field to change; likewise depth and batch norm."""

    def tiny(**kwargs):
        return build_detectnet_v2(1, input_size=(64, 32), width_multiplier=0.125, **kwargs)

    with_proj = tmp_path / "proj.h5"
    save_legacy_h5_weights(tiny(all_projections=True), str(with_proj))
    with pytest.warns(UserWarning, match="all_projections: true"):
        report = load_weights_by_name(tiny(all_projections=False), with_proj)
    assert len(report.loaded) == report.considered and not report.missing
    shortcuts = [f"block_{s}b_{k}_shortcut" for s in "1234" for k in ("conv", "bn")]
    assert sorted(report.unused) == sorted(shortcuts)
    assert "8 of the file's layers unused (block_1b_conv_shortcut" in report.summary()
    assert "warning: " in str(report) and "model_config.all_projections: true" in str(report)

    without = tmp_path / "noproj.h5"
    save_legacy_h5_weights(tiny(all_projections=False), str(without))
    with pytest.warns(UserWarning, match="all_projections: false"):
        report = load_weights_by_name(tiny(all_projections=True), without)
    assert "block_1b_conv_shortcut" in report.missing and not report.unused

    r10 = tmp_path / "r10.h5"
    save_legacy_h5_weights(tiny(num_layers=10), str(r10))
    with pytest.warns(UserWarning, match="ResNet-10 and the model a ResNet-18"):
        report = load_weights_by_name(tiny(), r10, min_fraction=0.3)
    assert any("model_config.num_layers: 10" in w for w in report.warnings)

    no_bn = tmp_path / "nobn.h5"
    save_legacy_h5_weights(tiny(use_batch_norm=False), str(no_bn))
    with pytest.warns(UserWarning, match="use_batch_norm: false"):
        load_weights_by_name(tiny(), no_bn, min_fraction=0.3)

    # The same architecture: nothing unused, no warning.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = load_weights_by_name(tiny(all_projections=True), with_proj)
    assert not report.unused and not report.warnings
