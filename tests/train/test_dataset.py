"""tf.data pipeline from TAO TFRecords + images, and the TAO augmentations (real TF, real files).

The TFRecord schema, fold split and record reading/writing are tested in
tests/formats/test_tfrecords.py."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from support.train import TINY_INPUT, limit_tf_threads, tiny_dataset  # noqa: F401

from cvlab.formats.tfrecords import read_records, split_folds
from cvlab.train.augment import AugmentConfig, color_augment, spatial_augment
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


def test_hflip_moves_image_and_boxes_alike():
    rng = np.random.default_rng(0)
    image = tf.constant(rng.random((32, 48, 3), dtype=np.float32))
    boxes = tf.constant([[4.0, 2.0, 20.0, 30.0]])
    cfg = AugmentConfig(hflip_probability=1.0, translate_max_x=0, translate_max_y=0)
    out, new_boxes, keep = spatial_augment(image, boxes, cfg)
    np.testing.assert_allclose(out.numpy(), image.numpy()[:, ::-1], atol=1e-5)
    np.testing.assert_allclose(new_boxes.numpy(), [[28.0, 2.0, 44.0, 30.0]], atol=1e-4)
    assert keep.numpy().tolist() == [True]


def test_translation_moves_boxes_with_pixels():
    image = np.zeros((40, 40, 3), np.float32)
    image[10:20, 10:20] = 1.0
    boxes = tf.constant([[10.0, 10.0, 20.0, 20.0], [0.0, 0.0, 1.5, 40.0]])
    cfg = AugmentConfig(
        hflip_probability=0.0, translate_max_x=6, translate_max_y=6, min_bbox_width=2
    )
    tf.random.set_seed(4)
    out, new_boxes, keep = spatial_augment(tf.constant(image), boxes, cfg)
    x1, y1, x2, y2 = new_boxes.numpy()[0]
    ys, xs = np.nonzero(out.numpy()[..., 0] > 0.5)
    assert abs(xs.min() - x1) <= 1 and abs(xs.max() + 1 - x2) <= 1
    assert abs(ys.min() - y1) <= 1 and abs(ys.max() + 1 - y2) <= 1
    assert keep.numpy()[0]


def test_color_augment_identity_and_range():
    rng = np.random.default_rng(1)
    image = tf.constant(rng.random((8, 8, 3), dtype=np.float32))
    off = AugmentConfig(
        hue_rotation_max=0, saturation_shift_max=0, contrast_scale_max=0, brightness_shift_max=0
    )
    np.testing.assert_allclose(color_augment(image, off).numpy(), image.numpy(), atol=1e-6)
    out = color_augment(
        image, AugmentConfig(brightness_shift_max=0.5, contrast_scale_max=0.5)
    ).numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(out, image.numpy())
