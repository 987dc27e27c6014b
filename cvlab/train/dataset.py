"""``tf.data`` input pipeline from TAO DetectNet_v2 TFRecords plus the image directory.

Records follow TAO ``dataset_convert`` (the schema, file names and fold split live in
:mod:`cvlab.formats.tfrecords`): ``frame/id`` = ``"<image_dir_name>/<id>"``,
``frame/width``/``frame/height`` (original pixels), ``target/object_class`` (bytes) and
``target/coordinates_x1/y1/x2/y2`` (original pixels). The image of a record is
``<image_root>/<frame/id>.<ext>``; :func:`cvlab.formats.tfrecords.split_folds` picks the
training and validation files.

Each example: decode (parallel) -> RGB float ``[0, 1]`` resized to the model input -> boxes
with sorted corners, those under 1 px wide or high dropped (:func:`tao_label_boxes`) -> TAO
augmentation (training only) -> NCHW -> targets rasterised by :mod:`cvlab.train.targets`.

JPEGs decode as TAO decodes them (:func:`decode_image`: ``dct_method="INTEGER_ACCURATE"``),
which gives the same pixels as OpenCV (:func:`cvlab.images.load_image`, the inference side).

Example:
    >>> ds = make_dataset("data/tfrecords/*", "data", ["person"], (320, 192), batch_size=8)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cvlab.formats.tfrecords import feature_spec, tfrecord_files
from cvlab.train.augment import AugmentConfig, augment_example
from cvlab.train.targets import RasterizerConfig, tf_build_targets

#: The TAO detectnet_v2 features the pipeline reads (see :mod:`cvlab.formats.tfrecords`).
TRAINER_FEATURES = (
    "frame/id",
    "frame/width",
    "frame/height",
    "target/object_class",
    "target/coordinates_x1",
    "target/coordinates_y1",
    "target/coordinates_x2",
    "target/coordinates_y2",
)


def detect_image_extension(files: Sequence[str], image_root: str | os.PathLike) -> str:
    """The extension (``.png``/``.jpg``/...) of the image of the first record in ``files``."""
    import tensorflow as tf

    spec = {"frame/id": tf.io.FixedLenFeature([], tf.string)}
    for raw in tf.data.TFRecordDataset(list(files)).take(1):
        frame_id = tf.io.parse_single_example(raw, spec)["frame/id"].numpy().decode()
        matches = sorted(Path(image_root).glob(f"{frame_id}.*"))
        if not matches:
            raise FileNotFoundError(
                f"{files[0]}: frame/id {frame_id!r}: no image {Path(image_root) / frame_id}.*"
            )
        return matches[0].suffix
    raise ValueError(f"{files[0]}: no records")


#: TAO's minimum box width and height in pixels (its default loader's fixed filter).
TAO_MIN_BOX_SIZE = 1.0


def decode_image(data, extension: str):
    """``uint8 [H, W, 3]`` from an image file's bytes, as TAO's loader decodes them.

    JPEG (``.jpg``/``.jpeg``) with ``dct_method="INTEGER_ACCURATE"`` (TAO's
    ``images2d_reference.decode_image``; TensorFlow's default, INTEGER_FAST, changes about
    half the pixels by up to a few levels); other formats with ``tf.io.decode_image``.
    """
    import tensorflow as tf

    if extension.lower() in (".jpg", ".jpeg"):
        return tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def tao_label_boxes(boxes, class_ids):
    """Boxes ``[N, 4]`` with each box's corners sorted, minus those under 1 px wide or high.

    What TAO's default loader does to every label before augmentation: ``x1, x2`` and
    ``y1, y2`` become their min and max (``segment_min``/``segment_max``), then
    ``filter_bbox_label_based_on_minimum_dims(min_height=1.0, min_width=1.0)`` keeps a box
    when ``x2 - x1 >= 1`` and ``y2 - y1 >= 1``. Returns ``(boxes, class_ids)``.

    >>> import tensorflow as tf
    >>> b, c = tao_label_boxes(tf.constant([[5., 9., 1., 2.], [0., 0., 0.5, 8.]]), tf.constant([0, 1]))
    >>> b.numpy().tolist(), c.numpy().tolist()
    ([[1.0, 2.0, 5.0, 9.0]], [0])
    """
    import tensorflow as tf

    boxes = tf.reshape(boxes, (-1, 4))
    sorted_boxes = tf.stack(
        [
            tf.minimum(boxes[:, 0], boxes[:, 2]),
            tf.minimum(boxes[:, 1], boxes[:, 3]),
            tf.maximum(boxes[:, 0], boxes[:, 2]),
            tf.maximum(boxes[:, 1], boxes[:, 3]),
        ],
        axis=1,
    )
    keep = tf.logical_and(
        sorted_boxes[:, 2] - sorted_boxes[:, 0] >= TAO_MIN_BOX_SIZE,
        sorted_boxes[:, 3] - sorted_boxes[:, 1] >= TAO_MIN_BOX_SIZE,
    )
    return tf.boolean_mask(sorted_boxes, keep), tf.boolean_mask(class_ids, keep)


def _parse(raw, class_table, image_root: str, extension: str, input_size):
    import tensorflow as tf

    ex = tf.io.parse_single_example(raw, feature_spec(TRAINER_FEATURES))
    width, height = input_size
    path = tf.strings.join([image_root, "/", ex["frame/id"], extension])
    image = decode_image(tf.io.read_file(path), extension)
    image = tf.image.resize(tf.image.convert_image_dtype(image, tf.float32), (height, width))
    sx = width / tf.cast(ex["frame/width"], tf.float32)
    sy = height / tf.cast(ex["frame/height"], tf.float32)
    coords = [tf.sparse.to_dense(ex[f"target/coordinates_{k}"]) for k in ("x1", "y1", "x2", "y2")]
    boxes = tf.stack([coords[0] * sx, coords[1] * sy, coords[2] * sx, coords[3] * sy], axis=1)
    names = tf.strings.lower(tf.sparse.to_dense(ex["target/object_class"], b""))
    class_ids = class_table.lookup(names)
    keep = class_ids >= 0
    # In model-input pixels: the same as TAO's (original) pixels when the image is already at
    # the model size, as the lab's prepared images are.
    return (image, *tao_label_boxes(tf.boolean_mask(boxes, keep), tf.boolean_mask(class_ids, keep)))


def make_dataset(
    files: str | Sequence[str],
    image_root: str | os.PathLike,
    class_names: Sequence[str],
    input_size: tuple[int, int],
    batch_size: int,
    *,
    training: bool = True,
    augment: AugmentConfig | None = None,
    epochs: int | None = 1,
    shuffle_buffer: int = 256,
    rasterizer: RasterizerConfig | None = None,
    image_extension: str | None = None,
    seed: int | None = None,
    cache: bool = False,
    class_mapping: dict[str, str] | None = None,
):
    """Batches of ``(images [B,3,H,W], {"cov", "bbox", "cov_norm"})`` for training.

    Args:
        files: a glob pattern or a list of TFRecord files.
        image_root: the directory holding ``<image_dir_name>/<id>.<ext>``.
        class_names: target classes (lower case); other classes are dropped.
        input_size: model input ``(width, height)``.
        batch_size: examples per batch (the last partial batch is kept unless training).
        training: shuffle, augment and drop the remainder.
        augment: augmentation settings (``None`` = TAO defaults when training).
        epochs: how many passes (``None`` = repeat forever).
        cache: keep the decoded, resized images in memory after the first pass (small sets).
        class_mapping: TAO ``target_class_mapping`` (record class -> target class, applied as
            TAO does: :func:`cvlab.train.config.source_class_ids`); None: identity.
    """
    import tensorflow as tf

    paths = [str(f) for f in tfrecord_files(files)] if isinstance(files, str) else list(files)
    if not paths:
        raise FileNotFoundError(f"no TFRecord files match {files!r}")
    image_root = str(image_root)
    extension = image_extension or detect_image_extension(paths, image_root)
    if not extension.startswith("."):
        extension = "." + extension
    from cvlab.train.config import source_class_ids

    names = [n.lower() for n in class_names]
    ids = source_class_ids(names, class_mapping) or {"": -1}  # an empty table is not allowed
    class_table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(ids)), tf.constant(list(ids.values()), tf.int64)
        ),
        default_value=-1,
    )
    aug = (augment or AugmentConfig()) if training else None
    num_classes = len(names)

    ds = tf.data.Dataset.from_tensor_slices(paths)
    if training:
        ds = ds.shuffle(len(paths), seed=seed)
    # Evaluation reads the files one after the other, in record order (as
    # cvlab.formats.tfrecords.read_records does).
    ds = ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(4, len(paths)) if training else 1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not training or cache,
    )

    def decode(raw):
        image, boxes, class_ids = _parse(raw, class_table, image_root, extension, input_size)
        # Ragged-free element: boxes and ids travel as (N, 5) so they cache and shuffle.
        return image, tf.concat([boxes, tf.cast(class_ids[:, None], tf.float32)], axis=1)

    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training or cache)
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.repeat(epochs)

    def to_targets(image, labels):
        boxes, class_ids = labels[:, :4], tf.cast(labels[:, 4], tf.int64)
        if aug is not None:
            image, boxes, class_ids = augment_example(image, boxes, class_ids, aug)
        nchw = tf.transpose(image, (2, 0, 1))
        cov, bbox, norm = tf_build_targets(boxes, class_ids, num_classes, input_size, rasterizer)
        return nchw, {"cov": cov, "bbox": bbox, "cov_norm": norm}

    ds = ds.map(to_targets, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    ds = ds.batch(batch_size, drop_remainder=training)
    return ds.prefetch(tf.data.AUTOTUNE)
