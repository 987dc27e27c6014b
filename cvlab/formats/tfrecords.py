"""TFRecords in TAO DetectNet_v2 ``dataset_convert``'s exact KITTI schema, and reading them back.

Layout written by :func:`write_tfrecords` (as ``detectnet_v2 dataset_convert`` with
``partition_mode: "random"``, ``num_partitions: 2``):

* ``OUT/tfrecords/<prefix>-fold-000-of-002-shard-0000N-of-00010``; fold 0 is validation, fold 1
  training. Frame ids are the image file names (without extension) listed from ``OUT/images``
  and sorted; the first ``int(val_split / 100 * N)`` go to fold 0, the rest to fold 1; both
  folds are shuffled twice with Python's ``random`` seeded 42 (once in TAO's ``_partition``, once
  in ``convert``), then cut into ``num_shards`` shards of ``len // num_shards`` frames (the last
  shard takes the remainder). As in TAO, an empty fold is not written and the next fold takes its
  number (so ``val_split=0`` writes the training frames as fold 000).
* Per frame (no pixels embedded): ``frame/id`` bytes ``"<image_dir_name>/<id>"``,
  ``frame/height``, ``frame/width`` int64; per object ``target/object_class`` bytes (lower case),
  ``target/truncation``, ``target/observation_angle``, ``target/coordinates_x1/y1/x2/y2``
  (pixels), ``target/world_bbox_h/w/l/x/y/z``, ``target/world_bbox_rot_y`` float,
  ``target/occlusion`` int64. Boxes whose integer corners are not ``x1 < x2 and y1 < y2`` are
  skipped (TAO's check) and counted.

Read back with ``tf.data``: ``tf.io.parse_single_example(serialized, FEATURE_SPEC)`` or
:func:`read_tfrecords` (a pandas DataFrame, one row per object).

Example:
    >>> import tempfile
    >>> from cvlab.datasets.prepare import prepare_flir_dataset
    >>> from cvlab.datasets.synthetic import generate_synthetic_flir
    >>> src = generate_synthetic_flir(tempfile.mkdtemp(), "v1", num_images=10)
    >>> report = prepare_flir_dataset(src, tempfile.mkdtemp(), num_shards=2, progress=False)
    >>> df = read_tfrecords(report.tfrecords_dir)
    >>> sorted(df.fold.unique().tolist()), df.frame_id.nunique()
    ([0, 1], 10)
"""

from __future__ import annotations

import glob
import os
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from cvlab.errors import FormatError
from cvlab.images import read_image_size

FLOAT_TARGETS = (
    "target/truncation",
    "target/observation_angle",
    "target/coordinates_x1",
    "target/coordinates_y1",
    "target/coordinates_x2",
    "target/coordinates_y2",
    "target/world_bbox_h",
    "target/world_bbox_w",
    "target/world_bbox_l",
    "target/world_bbox_x",
    "target/world_bbox_y",
    "target/world_bbox_z",
    "target/world_bbox_rot_y",
)
#: KITTI label field index (after the class) -> feature, in TAO's order.
_LABEL_FIELDS = (
    (1, "target/truncation"),
    (3, "target/observation_angle"),
    (4, "target/coordinates_x1"),
    (5, "target/coordinates_y1"),
    (6, "target/coordinates_x2"),
    (7, "target/coordinates_y2"),
    (8, "target/world_bbox_h"),
    (9, "target/world_bbox_w"),
    (10, "target/world_bbox_l"),
    (11, "target/world_bbox_x"),
    (12, "target/world_bbox_y"),
    (13, "target/world_bbox_z"),
    (14, "target/world_bbox_rot_y"),
)
DEFAULT_SEED = 42
_FOLD_RE = re.compile(r"-fold-(\d{3})-of-(\d{3})(?:-shard-(\d{5})-of-(\d{5}))?$")


def _feature_spec() -> dict[str, Any]:
    import tensorflow as tf

    spec: dict[str, Any] = {
        "frame/id": tf.io.FixedLenFeature([], tf.string),
        "frame/height": tf.io.FixedLenFeature([], tf.int64),
        "frame/width": tf.io.FixedLenFeature([], tf.int64),
        "target/object_class": tf.io.VarLenFeature(tf.string),
        "target/occlusion": tf.io.VarLenFeature(tf.int64),
    }
    spec.update({k: tf.io.VarLenFeature(tf.float32) for k in FLOAT_TARGETS})
    return spec


def __getattr__(name: str) -> Any:
    """``FEATURE_SPEC`` is built on first use so importing this module does not load TensorFlow."""
    if name == "FEATURE_SPEC":
        spec = _feature_spec()
        globals()["FEATURE_SPEC"] = spec
        return spec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class LabelFormatError(FormatError):
    """A KITTI label that TAO would reject; the message names the file and line."""


@dataclass
class KittiObject:
    """One parsed 15-field KITTI line (as TAO's converter stores it)."""

    object_class: str
    values: dict[str, float]
    occlusion: int


@dataclass
class TFRecordResult:
    """What :func:`write_tfrecords` wrote."""

    files: list[Path] = field(default_factory=list)
    frames_per_fold: dict[int, int] = field(default_factory=dict)
    objects_per_class: Counter[str] = field(default_factory=Counter)
    skipped_boxes: list[str] = field(default_factory=list)


def list_frame_ids(image_dir: str | os.PathLike, extension: str = ".jpg") -> list[str]:
    """Frame ids as TAO lists them: sorted file names ending in ``extension``, minus the suffix."""
    return [
        os.path.splitext(name)[0]
        for name in sorted(os.listdir(image_dir))
        if name.endswith(extension)
    ]


def random_partition(
    frame_ids: Sequence[str], val_split: float, seed: int = DEFAULT_SEED
) -> list[list[str]]:
    """TAO's random mode: ``[validation, training]`` frame ids, shuffled twice with ``seed``."""
    if not 0 <= val_split < 100:
        raise ValueError(f"val_split must satisfy 0 <= val_split < 100, got {val_split}")
    rng = random.Random(seed)
    num_val = int(val_split / 100.0 * len(frame_ids))
    partitions = [list(frame_ids[:num_val]), list(frame_ids[num_val:])]
    for _ in range(2):  # KITTIConverter._partition, then DatasetConverter.convert's _shuffle
        for part in partitions:
            rng.shuffle(part)
    return partitions


def shard_partitions(partitions: Sequence[list[str]], num_shards: int) -> list[list[list[str]]]:
    """TAO's ``_shard``: empty partitions are dropped; the last shard takes the remainder."""
    num_shards = max(num_shards, 1)
    shards = []
    for partition in partitions:
        if not partition:
            continue
        size = len(partition) // num_shards
        shards.append(
            [
                partition[i * size : (i + 1) * size if i + 1 < num_shards else len(partition)]
                for i in range(num_shards)
            ]
        )
    return shards


def shard_file_name(
    prefix: str | os.PathLike, fold: int, num_folds: int, shard: int, num_shards: int
) -> str:
    """``<prefix>-fold-000-of-002-shard-00000-of-00010``."""
    return f"{prefix}-fold-{fold:03d}-of-{num_folds:03d}-shard-{shard:05d}-of-{num_shards:05d}"


def read_label_file(path: str | os.PathLike) -> tuple[list[KittiObject], list[str]]:
    """Parse a training label file as TAO does; returns objects and descriptions of skipped boxes."""
    objects, skipped = [], []
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    for i, parts in enumerate(lines):
        if len(parts) != 15:
            raise LabelFormatError(f"{path}: object {i}: expected 15 fields, got {len(parts)}")
        try:
            nums = [float(v) for v in parts[1:]]
        except ValueError as exc:
            raise LabelFormatError(f"{path}: object {i}: {exc}") from None
        x1, y1, x2, y2 = (int(v) for v in nums[3:7])
        if not (x1 < x2 and y1 < y2):
            skipped.append(f"{path}_{i}: [{x1}, {y1}, {x2}, {y2}]")
            continue
        values = {name: nums[idx - 1] for idx, name in _LABEL_FIELDS}
        objects.append(KittiObject(parts[0].lower(), values, int(nums[1])))
    return objects, skipped


def make_example(frame_id: str, width: int, height: int, objects: Sequence[KittiObject]) -> Any:
    """A ``tf.train.Example`` with TAO's KITTI features (``frame_id`` includes the image dir)."""
    import tensorflow as tf

    def b(*v: bytes) -> Any:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(v)))

    def f(*v: float) -> Any:
        return tf.train.Feature(float_list=tf.train.FloatList(value=list(v)))

    def i(*v: int) -> Any:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(v)))

    feature = {
        "frame/id": b(frame_id.encode("utf-8")),
        "frame/height": i(int(height)),
        "frame/width": i(int(width)),
        "target/object_class": b(*(o.object_class.encode("utf-8") for o in objects)),
        "target/occlusion": i(*(o.occlusion for o in objects)),
    }
    for name in FLOAT_TARGETS:
        feature[name] = f(*(o.values[name] for o in objects))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def write_tfrecords(
    root: str | os.PathLike,
    output_prefix: str | os.PathLike,
    *,
    image_dir_name: str = "images",
    label_dir_name: str = "labels",
    image_extension: str = ".jpg",
    val_split: float = 10,
    num_shards: int = 10,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
) -> TFRecordResult:
    """Convert ``root/<image_dir_name>`` + ``root/<label_dir_name>`` like TAO ``dataset_convert``.

    Each shard is written to a temporary file and renamed, so a failure leaves no partial shard.
    Image sizes come from the file headers (no decoding).
    """
    import tensorflow as tf

    root = Path(root)
    output_prefix = Path(output_prefix)
    output_prefix.parent.mkdir(parents=True, exist_ok=True)
    ids = list_frame_ids(root / image_dir_name, image_extension)
    folds = shard_partitions(random_partition(ids, val_split, seed), num_shards)
    result = TFRecordResult()
    bar = tqdm(total=len(ids), desc="TFRecords", unit="img", disable=not progress)
    for fold, shards in enumerate(folds):
        result.frames_per_fold[fold] = sum(len(s) for s in shards)
        for s, shard in enumerate(shards):
            out = Path(shard_file_name(output_prefix, fold, 2, s, max(num_shards, 1)))
            tmp = out.with_name(f".{out.name}.tmp")
            try:
                with tf.io.TFRecordWriter(str(tmp)) as writer:
                    for frame in shard:
                        label = root / label_dir_name / f"{frame}.txt"
                        if not label.is_file():
                            raise FileNotFoundError(f"{label}: label file missing for {frame}")
                        objects, skipped = read_label_file(label)
                        result.skipped_boxes.extend(skipped)
                        width, height = read_image_size(
                            root / image_dir_name / f"{frame}{image_extension}"
                        )
                        ex = make_example(f"{image_dir_name}/{frame}", width, height, objects)
                        writer.write(ex.SerializeToString())
                        result.objects_per_class.update(o.object_class for o in objects)
                        bar.update()
                os.replace(tmp, out)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            result.files.append(out)
    bar.close()
    return result


def parse_example(serialized: bytes) -> dict[str, Any]:
    """Decode one serialized example to plain Python: scalars for ``frame/*``, lists for ``target/*``."""
    import tensorflow as tf

    ex = tf.train.Example.FromString(serialized)
    feat = ex.features.feature
    out: dict[str, Any] = {
        "frame/id": feat["frame/id"].bytes_list.value[0].decode("utf-8"),
        "frame/height": int(feat["frame/height"].int64_list.value[0]),
        "frame/width": int(feat["frame/width"].int64_list.value[0]),
        "target/object_class": [
            v.decode("utf-8") for v in feat["target/object_class"].bytes_list.value
        ],
        "target/occlusion": [int(v) for v in feat["target/occlusion"].int64_list.value],
    }
    for name in FLOAT_TARGETS:
        out[name] = [float(v) for v in feat[name].float_list.value]
    return out


def tfrecord_files(pattern: str | os.PathLike) -> list[Path]:
    """Shard files from a glob pattern or a directory (its ``*-fold-*`` files), sorted."""
    p = Path(pattern)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if _FOLD_RE.search(f.name))
    return sorted(Path(f) for f in glob.glob(str(pattern)))


def read_tfrecords(pattern: str | os.PathLike) -> pd.DataFrame:
    """All examples as a DataFrame: one row per object, one row (class None) per empty frame.

    Columns: file, fold, frame_id, width, height, object_class, x1, y1, x2, y2, truncation,
    occlusion.
    """
    import tensorflow as tf

    files = tfrecord_files(pattern)
    if not files:
        raise FileNotFoundError(f"{pattern}: no TFRecord files found")
    rows = []
    for path in files:
        m = _FOLD_RE.search(path.name)
        fold = int(m.group(1)) if m else -1
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            ex = parse_example(record)
            base = {
                "file": path.name,
                "fold": fold,
                "frame_id": ex["frame/id"],
                "width": ex["frame/width"],
                "height": ex["frame/height"],
            }
            classes = ex["target/object_class"]
            if not classes:
                rows.append(base | {"object_class": None})
            for k, cls in enumerate(classes):
                rows.append(
                    base
                    | {
                        "object_class": cls,
                        "x1": ex["target/coordinates_x1"][k],
                        "y1": ex["target/coordinates_y1"][k],
                        "x2": ex["target/coordinates_x2"][k],
                        "y2": ex["target/coordinates_y2"][k],
                        "truncation": ex["target/truncation"][k],
                        "occlusion": ex["target/occlusion"][k],
                    }
                )
    columns = ["file", "fold", "frame_id", "width", "height", "object_class"]
    columns += ["x1", "y1", "x2", "y2", "truncation", "occlusion"]
    return pd.DataFrame(rows, columns=columns)
