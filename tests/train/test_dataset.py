"""tf.data pipeline from TAO TFRecords + images (real TF, real files).

The TFRecord schema, fold split and record reading/writing are tested in
tests/formats/test_tfrecords.py; the augmentations in tests/train/test_augment.py."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from support.train import TINY_INPUT, limit_tf_threads, tiny_dataset  # noqa: F401

from cvlab.formats.tfrecords import read_records, split_folds
from cvlab.train.dataset import make_dataset
from cvlab.train.targets import build_targets

limit_tf_threads()


def test_split_folds_of_the_tiny_set(tiny_dataset):  # noqa: F811
    pattern, _ = tiny_dataset
    train, val = split_folds(pattern)
    assert len(train) == 2 and len(val) == 2
    assert all("-fold-000-" in f for f in val) and all("-fold-001-" in f for f in train)
    # The glob ("tfrecords/*") leaves the split manifest (a dot file) out.
    ds = make_dataset(pattern, tiny_dataset[1], ["person"], TINY_INPUT, 4, training=False)
    assert sum(int(images.shape[0]) for images, _ in ds) == 12


def test_validation_batches_match_targets(tiny_dataset):  # noqa: F811
    pattern, root = tiny_dataset
    _, val = split_folds(pattern)
    records = read_records(val)
    ds = make_dataset(val, root, ["person"], TINY_INPUT, batch_size=3, training=False)
    batches = list(ds)
    assert [int(b[0].shape[0]) for b in batches] == [3, 1]
    images, targets = batches[0]
    assert images.shape == (3, 3, 96, 160) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= 0.0 and float(tf.reduce_max(images)) <= 1.0
    assert targets["cov"].shape == (3, 1, 6, 10) and targets["bbox"].shape == (3, 4, 6, 10)
    # Without augmentation the targets are those of the GT boxes scaled to the model input,
    # and the batches come in read_records order (validation pairs them up).
    flat = [(b[1], i) for b in batches for i in range(int(b[0].shape[0]))]
    for rec, (t, i) in zip(records, flat, strict=True):
        scale = np.array([160 / rec.width, 96 / rec.height] * 2, np.float32)
        cov, bbox, norm = build_targets([rec.boxes * scale], TINY_INPUT)
        np.testing.assert_allclose(t["cov"][i].numpy(), cov, atol=1e-5)
        np.testing.assert_allclose(t["bbox"][i].numpy(), bbox, atol=1e-4)
        np.testing.assert_allclose(t["cov_norm"][i].numpy(), norm, atol=1e-6)


def test_training_batches_repeat_and_augment(tiny_dataset):  # noqa: F811
    pattern, root = tiny_dataset
    train, _ = split_folds(pattern)
    ds = make_dataset(
        train, root, ["person"], TINY_INPUT, batch_size=4, training=True, epochs=2, seed=1
    )
    shapes = [tuple(b[0].shape) for b in ds]
    assert shapes == [(4, 3, 96, 160)] * 4  # 8 images x 2 epochs, remainder dropped
    # Unknown classes are dropped: no targets at all for class "bag".
    ds = make_dataset(train, root, ["bag"], TINY_INPUT, batch_size=8, training=False)
    _, targets = next(iter(ds))
    assert float(tf.reduce_sum(targets["cov"])) == 0.0


def test_missing_image_names_the_path(tiny_dataset, tmp_path):  # noqa: F811
    pattern, _ = tiny_dataset
    with pytest.raises(FileNotFoundError, match="frame/id"):
        make_dataset(pattern, tmp_path, ["person"], TINY_INPUT, batch_size=1)
