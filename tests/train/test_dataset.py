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


def _one_frame_set(tmp_path, boxes, image):
    """One record ``img/f0`` at the tiny model size, its JPEG written by OpenCV."""
    import cv2

    from cvlab.formats.tfrecords import Record, write_records

    (tmp_path / "img").mkdir()
    assert cv2.imwrite(str(tmp_path / "img" / "f0.jpg"), image[..., ::-1])
    boxes = np.asarray(boxes, np.float32)
    write_records(
        tmp_path / "r.tfrecord",
        [Record("img/f0", TINY_INPUT[0], TINY_INPUT[1], ["person"] * len(boxes), boxes)],
    )
    return [str(tmp_path / "r.tfrecord")]


def test_boxes_sorted_and_under_one_pixel_dropped_as_tao(tmp_path):
    """TAO's default loader (drivenet_dataloader.py _extract_bbox_labels) sorts each box's
    corners with segment_min/max and drops boxes under 1 px wide or high
    (filter_bbox_label_based_on_minimum_dims, min 1.0, kept when >= 1) before augmenting."""
    normal = [10.0, 20.0, 60.0, 80.0]
    inverted = [140.0, 70.0, 100.0, 10.0]  # x2 < x1, y2 < y1
    exactly_one = [80.0, 30.0, 81.0, 60.0]  # 1 px wide: kept
    thin = [30.0, 10.0, 30.5, 90.0]  # 0.5 px wide: dropped
    flat = [50.0, 40.0, 90.0, 40.9]  # 0.9 px high: dropped
    files = _one_frame_set(
        tmp_path, [normal, inverted, exactly_one, thin, flat], np.zeros((96, 160, 3), np.uint8)
    )
    ds = make_dataset(files, tmp_path, ["person"], TINY_INPUT, 1, training=False)
    _, targets = next(iter(ds))
    kept = np.array([normal, [100.0, 10.0, 140.0, 70.0], exactly_one], np.float32)
    cov, bbox, norm = build_targets([kept], TINY_INPUT)
    np.testing.assert_allclose(targets["cov"][0].numpy(), cov, atol=1e-6)
    np.testing.assert_allclose(targets["bbox"][0].numpy(), bbox, atol=1e-5)
    np.testing.assert_allclose(targets["cov_norm"][0].numpy(), norm, atol=1e-6)


@pytest.mark.parametrize("kind", ["colour_420", "grey"])
def test_jpeg_decodes_to_opencvs_pixels(tmp_path, kind):
    """TAO decodes JPEGs with dct_method INTEGER_ACCURATE (images2d_reference.py
    decode_image); that is also what OpenCV (inference: cvlab.images.load_image) gives, to the
    last bit. TensorFlow's default (INTEGER_FAST) differs."""
    import cv2

    from cvlab.images import load_image

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur((rng.random((96, 160, 3)) * 255).astype(np.uint8), (7, 7), 2)
    if kind == "grey":
        image = np.repeat(image[..., :1], 3, axis=2)
    files = _one_frame_set(tmp_path, [[10.0, 20.0, 60.0, 80.0]], image)
    opencv = load_image(tmp_path / "img" / "f0.jpg")
    ds = make_dataset(files, tmp_path, ["person"], TINY_INPUT, 1, training=False)
    images, _ = next(iter(ds))
    decoded = np.round(np.transpose(images[0].numpy(), (1, 2, 0)) * 255.0).astype(np.uint8)
    np.testing.assert_array_equal(decoded, opencv)
    data = (tmp_path / "img" / "f0.jpg").read_bytes()
    fast = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_FAST").numpy()
    assert kind == "grey" or (fast != opencv).any()
