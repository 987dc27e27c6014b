"""Retraining from a saved TAO-layout HDF5 starts from the loaded weights (real TF training).

The source model is trained briefly, saved as TAO's ``model.save`` lays weights out (layer groups
under ``model_weights``) and used as ``pretrained_weights`` of a 0-epoch run. So that its AP is
not trivially 0 on this tiny set, the validation fold is labelled with the source model's own
detections: its AP is high, and a run that did not start from its weights cannot match it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from support.train import limit_tf_threads, tiny_dataset, tiny_train_config  # noqa: F401

from cvlab.formats.tfrecords import Record, read_records, split_folds, write_records
from cvlab.train.model import WeightsError, read_h5_weights
from cvlab.train.trainer import train, validate

limit_tf_threads()


def _save_tao_layout(model, path):
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        legacy_h5_format.save_weights_to_hdf5_group(f.create_group("model_weights"), model)
    return path


def _detections(model, files, root, config):
    """The source model's clustered detections on ``files`` (as validation computes them)."""
    from cvlab.train.dataset import make_dataset
    from cvlab.train.validation import detections_from_outputs, validation_postprocessor

    names, size = config.class_names, config.model.input_size
    post = validation_postprocessor(names, size)
    ds = make_dataset(files, root, names, size, 4, training=False, rasterizer=config.rasterizer)
    out, records = [], read_records(files)
    for images, _ in ds:
        cov, bbox = model(images, training=False)
        for c, b in zip(np.asarray(cov), np.asarray(bbox), strict=True):
            rec = records[len(out)]
            dets = detections_from_outputs(
                c, b, names, size, (rec.width, rec.height), postprocessor=post
            )
            out.append((rec, dets))
    return out


@pytest.fixture(scope="module")
def source(tiny_dataset, tmp_path_factory):  # noqa: F811
    """(pattern labelled with the source's detections, image root, source model, TAO hdf5)."""
    pattern, root = tiny_dataset
    work = tmp_path_factory.mktemp("source")
    config = tiny_train_config(epochs=2, validate_every=0)
    model = train(config, pattern, root, work / "run", progress=False, resume=False).model
    train_files, val_files = split_folds(pattern, 0)
    labelled = work / "tfrecords"
    labelled.mkdir()
    for f in train_files:
        shutil.copy(f, labelled / Path(f).name)
    # Two epochs leave coverage and boxes small; raise the heads' biases until the model fires
    # (any weights will do: what matters is that they come back exactly).
    for _ in range(8):
        found = _detections(model, val_files, root, config)
        if sum(len(d) for _, d in found) >= 2:
            break
        for name, step in (("output_cov", 1.0), ("output_bbox", 0.25)):
            kernel, bias = model.get_layer(name).get_weights()
            model.get_layer(name).set_weights([kernel, bias + step])
    records = [Record(r.frame_id, r.width, r.height, ["person"] * len(d), d.xyxy) for r, d in found]
    assert sum(len(r.classes) for r in records) > 0, "the source model detects nothing"
    write_records(labelled / "person-fold-000-of-002", records)
    weights = _save_tao_layout(model, work / "source.hdf5")
    return str(labelled / "*"), root, model, weights


def _zero_epoch_run(source, tmp_path, **overrides):
    pattern, root, _, weights = source
    config = tiny_train_config(pretrained_weights=str(weights), **overrides)
    return config, train(config, pattern, root, tmp_path, epochs=0, progress=False)


def test_zero_epochs_from_tao_hdf5_reproduce_the_source_validation_ap(source, tmp_path):
    pattern, root, model, weights = source
    _, val_files = split_folds(pattern, 0)
    config, result = _zero_epoch_run(source, tmp_path / "graph", load_graph=True)
    report = result.weights_report
    assert report.heads_loaded and not report.missing and not report.skipped
    assert len(report.loaded) == len([n for n, w in read_h5_weights(weights).items() if w])
    source_ap = validate(model, val_files, root, config).ap["person"]
    assert source_ap > 0.5  # labelled with its own detections: high, not trivially 0
    assert validate(result.model, val_files, root, config).ap["person"] == source_ap
    x = np.random.default_rng(0).random((2, 3, 96, 160), dtype=np.float32)
    for got, want in zip(result.model(x, training=False), model(x, training=False), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert result.history.empty and result.model_path.exists()


def test_default_loads_the_backbone_only_as_tao(source, tmp_path):
    pattern, root, model, _ = source
    _, val_files = split_folds(pattern, 0)
    config, result = _zero_epoch_run(source, tmp_path / "backbone")
    report = result.weights_report
    assert not report.heads_loaded and "load_graph is off" in report.summary()
    for name in ("conv1", "bn_conv1", "block_4a_conv_2"):
        for got, want in zip(
            result.model.get_layer(name).get_weights(),
            model.get_layer(name).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(got, want)
    head = result.model.get_layer("output_bbox").get_weights()[0]
    assert not np.array_equal(head, model.get_layer("output_bbox").get_weights()[0])
    source_ap = validate(model, val_files, root, config).ap["person"]
    assert validate(result.model, val_files, root, config).ap["person"] < source_ap


def test_a_file_that_matches_nothing_stops_the_run_before_training(source, tmp_path):
    pattern, root, _, _ = source
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as f:
        f.attrs["layer_names"] = [b"fc"]
        g = f.create_group("fc")
        g.attrs["weight_names"] = [b"fc/kernel:0"]
        g.create_dataset("fc/kernel:0", data=np.zeros((2, 2), np.float32))
    config = tiny_train_config(pretrained_weights=str(other))
    with pytest.raises(WeightsError, match="only 0 of the model's"):
        train(config, pattern, root, tmp_path / "run", epochs=1, progress=False)
    assert not (tmp_path / "run" / "metrics.csv").exists()
