"""``tf.data`` input pipeline from TAO DetectNet_v2 TFRecords plus the image directory.

Records follow TAO ``dataset_convert``: ``frame/id`` = ``"<image_dir_name>/<id>"``,
``frame/width``/``frame/height`` (original pixels), ``target/object_class`` (bytes) and
``target/coordinates_x1/y1/x2/y2`` (original pixels). Files are named
``<prefix>-fold-000-of-002-shard-00000-of-00010``; fold 0 is the validation fold. The image of
a record is ``<image_root>/<frame/id>.<ext>``.

Each example: decode (parallel) -> RGB float ``[0, 1]`` resized to the model input -> TAO
augmentation (training only) -> NCHW -> targets rasterised by :mod:`cvlab.train.targets`.

Example:
    >>> ds = make_dataset("data/tfrecords/*", "data", ["person"], (320, 192), batch_size=8)  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvlab.train.augment import AugmentConfig, augment_example
from cvlab.train.targets import RasterizerConfig, tf_build_targets

_FOLD = re.compile(r"-fold-(\d{3})-of-(\d{3})")


#: The TAO detectnet_v2 features the trainer reads (a subset of cvlab.formats.tfrecords.FEATURE_SPEC).
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


def feature_spec() -> dict:
    """The parsing spec for the fields the trainer reads (TAO detectnet_v2 schema)."""
    from cvlab.formats import tfrecords

    return {k: tfrecords.FEATURE_SPEC[k] for k in TRAINER_FEATURES}


def split_folds(pattern: str, validation_fold: int | None = 0) -> tuple[list[str], list[str]]:
    """``(training files, validation files)`` matching ``pattern``.

    Files without a ``-fold-NNN-`` part, or ``validation_fold=None``, all go to training.
    """
    files = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {pattern!r}")
    train, val = [], []
    for f in files:
        m = _FOLD.search(os.path.basename(f))
        if validation_fold is not None and m and int(m.group(1)) == validation_fold:
            val.append(f)
        else:
            train.append(f)
    if not train:  # only one fold: train on it too (as TAO does with a single fold)
        train = list(val)
    return train, val


@dataclass
class Record:
    """One parsed TFRecord example (original-image pixels)."""

    frame_id: str
    width: int
    height: int
    classes: list[str]
    boxes: np.ndarray  # (N, 4)


def read_records(files: Sequence[str]) -> list[Record]:
    """Parse every example of ``files`` (small sets: validation ground truth)."""
    import tensorflow as tf

    out = []
    spec = feature_spec()
    for path in files:
        for i, raw in enumerate(tf.data.TFRecordDataset([path])):
            try:
                ex = tf.io.parse_single_example(raw, spec)
            except tf.errors.InvalidArgumentError as exc:
                raise ValueError(f"{path}: record {i}: {exc.message}") from exc
            coords = [
                tf.sparse.to_dense(ex[f"target/coordinates_{k}"]).numpy()
                for k in ["x1", "y1", "x2", "y2"]
            ]
            out.append(
                Record(
                    frame_id=ex["frame/id"].numpy().decode(),
                    width=int(ex["frame/width"]),
                    height=int(ex["frame/height"]),
                    classes=[
                        c.decode().lower()
                        for c in tf.sparse.to_dense(ex["target/object_class"], b"").numpy()
                    ],
                    boxes=np.stack(coords, axis=1).astype(np.float32).reshape(-1, 4),
                )
            )
    return out


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


def _parse(raw, class_table, image_root: str, extension: str, input_size):
    import tensorflow as tf

    ex = tf.io.parse_single_example(raw, feature_spec())
    width, height = input_size
    path = tf.strings.join([image_root, "/", ex["frame/id"], extension])
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(tf.image.convert_image_dtype(image, tf.float32), (height, width))
    sx = width / tf.cast(ex["frame/width"], tf.float32)
    sy = height / tf.cast(ex["frame/height"], tf.float32)
    coords = [tf.sparse.to_dense(ex[f"target/coordinates_{k}"]) for k in ("x1", "y1", "x2", "y2")]
    boxes = tf.stack([coords[0] * sx, coords[1] * sy, coords[2] * sx, coords[3] * sy], axis=1)
    names = tf.strings.lower(tf.sparse.to_dense(ex["target/object_class"], b""))
    class_ids = class_table.lookup(names)
    keep = class_ids >= 0
    return image, tf.boolean_mask(boxes, keep), tf.boolean_mask(class_ids, keep)


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
    """
    import tensorflow as tf

    paths = sorted(glob.glob(files)) if isinstance(files, str) else list(files)
    if not paths:
        raise FileNotFoundError(f"no TFRecord files match {files!r}")
    image_root = str(image_root)
    extension = image_extension or detect_image_extension(paths, image_root)
    if not extension.startswith("."):
        extension = "." + extension
    names = [n.lower() for n in class_names]
    class_table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(names), tf.constant(list(range(len(names))), tf.int64)
        ),
        default_value=-1,
    )
    aug = (augment or AugmentConfig()) if training else None
    num_classes = len(names)

    ds = tf.data.Dataset.from_tensor_slices(paths)
    if training:
        ds = ds.shuffle(len(paths), seed=seed)
    # Evaluation reads the files one after the other, in record order (as read_records does).
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


def write_tfrecord_examples(path: str | os.PathLike, records: Sequence[Record]) -> None:
    """Write ``records`` as TAO detectnet_v2 examples (atomic); used by tests and tools.

    Examples are built by :func:`cvlab.formats.tfrecords.make_example`, so they carry every field
    ``dataset_convert`` writes (truncation, occlusion, 3D fields set to 0).
    """
    import tensorflow as tf

    from cvlab.fileio import atomic_path
    from cvlab.formats.tfrecords import FLOAT_TARGETS, KittiObject, make_example

    with atomic_path(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
        for r in records:
            boxes = np.asarray(r.boxes, np.float32).reshape(-1, 4)
            objects = []
            for cls, box in zip(r.classes, boxes.tolist(), strict=True):
                values = dict.fromkeys(FLOAT_TARGETS, 0.0)
                for key, value in zip(("x1", "y1", "x2", "y2"), box, strict=True):
                    values[f"target/coordinates_{key}"] = value
                objects.append(KittiObject(cls, values, 0))
            writer.write(make_example(r.frame_id, r.width, r.height, objects).SerializeToString())
