"""TFRecords in TAO DetectNet_v2 ``dataset_convert``'s KITTI schema: names, split, write, read.

Layout written by :func:`write_tfrecords` (as ``detectnet_v2 dataset_convert`` with
``partition_mode: "random"``, ``num_partitions: 2``):

* ``OUT/tfrecords/<prefix>-fold-000-of-002-shard-0000N-of-00010``; fold 0 is validation, fold 1
  training. Frame ids are the image file names (without extension) listed from ``OUT/images``
  and sorted; the first ``int(val_split / 100 * N)`` go to fold 0, the rest to fold 1; both
  folds are shuffled twice with Python's ``random`` seeded 42 (once in TAO's ``_partition``, once
  in ``convert``), then cut into ``num_shards`` shards of ``len // num_shards`` frames (the last
  shard takes the remainder). As in TAO, an empty fold is not written and the next fold takes its
  number (so ``val_split=0`` writes the training frames as fold 000). File names are made by
  :func:`shard_file_name` and read by :func:`parse_shard_name` (the one parser of
  ``-fold-NNN-of-NNN[-shard-NNNNN-of-NNNNN]``).
* Per frame (no pixels embedded): ``frame/id`` bytes ``"<image_dir_name>/<id>"``,
  ``frame/height``, ``frame/width`` int64; per object ``target/object_class`` bytes (lower case),
  ``target/truncation``, ``target/observation_angle``, ``target/coordinates_x1/y1/x2/y2``
  (pixels), ``target/world_bbox_h/w/l/x/y/z``, ``target/world_bbox_rot_y`` float,
  ``target/occlusion`` int64. Labels are parsed by :func:`cvlab.formats.kitti.read_kitti_objects`;
  boxes that :func:`cvlab.formats.kitti.tao_keeps_box` rejects are skipped (TAO's check) and
  counted.
* The split manifest ``OUT/tfrecords/.<prefix>-split.json`` (:func:`split_manifest_path`):
  which frame ids went into which shard file and fold, so the split is known without reading the
  records (:func:`read_split`; TFRecords made by TAO have no manifest and are read instead). It
  is a dot file so that globs like ``tfrecords/*`` (Python's :func:`glob.glob`, which TAO uses
  for ``tfrecords_path``) do not take it for a TFRecord.
* All or nothing: the shards and the manifest are written into a new dot folder beside
  ``OUT/tfrecords`` that takes its place only when the whole set is written
  (:func:`cvlab.fileio.atomic_directory`); a failure or Ctrl-C half-way leaves the previous
  complete set (or no folder) as it was, never a partial set that training would read. The
  folder is the set (TAO reads ``tfrecords/*``): it holds one prefix's shards and nothing else.

Read back with ``tf.data``: ``tf.io.parse_single_example(serialized, FEATURE_SPEC)``, or
:func:`read_records` (one :class:`Record` per frame), or :func:`read_tfrecords` (a pandas
DataFrame, one row per object); :func:`split_folds` picks the training and validation files.

Example:
    >>> shard_file_name("out/flir", 0, 2, 3, 10)
    'out/flir-fold-000-of-002-shard-00003-of-00010'
    >>> parse_shard_name("flir-fold-001-of-002-shard-00003-of-00010")
    ShardName(prefix='flir', fold=1, num_folds=2, shard=3, num_shards=10)
    >>> [sorted(part) for part in random_partition(["a", "b", "c", "d"], val_split=25)]
    [['a'], ['b', 'c', 'd']]
    >>> import tempfile, pathlib
    >>> prefix = pathlib.Path(tempfile.mkdtemp()) / "flir"
    >>> manifest = SplitManifest("flir", [ManifestShard("flir-fold-000-of-002", 0, ["a"])])
    >>> write_split_manifest(split_manifest_path(prefix), manifest).name
    '.flir-split.json'
    >>> read_split_manifest(split_manifest_path(prefix)).folds()
    {0: ['a']}
"""

from __future__ import annotations

import glob
import json
import os
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cvlab.errors import CvlabError, FormatError
from cvlab.fileio import atomic_directory, atomic_path, atomic_write_text
from cvlab.formats.kitti import KittiObject, read_kitti_objects, tao_keeps_box
from cvlab.images import image_size

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
DEFAULT_SEED = 42
#: Folds written by the random partition mode (validation, training).
NUM_FOLDS = 2
#: ``-fold-NNN-of-NNN`` with an optional ``-shard-NNNNN-of-NNNNN`` (TAO's shard names).
_SHARD_NAME = re.compile(r"-fold-(\d{3})-of-(\d{3})(?:-shard-(\d{5})-of-(\d{5}))?")
#: Suffix of the split manifest, ``.<prefix>-split.json`` beside the shards.
SPLIT_MANIFEST_SUFFIX = "-split.json"
SPLIT_MANIFEST_FORMAT = "cvlab.tfrecords.split"
SPLIT_MANIFEST_VERSION = 1


# --- the schema ------------------------------------------------------------------------------
def feature_spec(names: Sequence[str] | None = None) -> dict[str, Any]:
    """``tf.io.parse_single_example`` spec of TAO's features (all, or only ``names``)."""
    import tensorflow as tf

    spec: dict[str, Any] = {
        "frame/id": tf.io.FixedLenFeature([], tf.string),
        "frame/height": tf.io.FixedLenFeature([], tf.int64),
        "frame/width": tf.io.FixedLenFeature([], tf.int64),
        "target/object_class": tf.io.VarLenFeature(tf.string),
        "target/occlusion": tf.io.VarLenFeature(tf.int64),
    }
    spec.update({k: tf.io.VarLenFeature(tf.float32) for k in FLOAT_TARGETS})
    return spec if names is None else {k: spec[k] for k in names}


def __getattr__(name: str) -> Any:
    """``FEATURE_SPEC`` is built on first use so importing this module does not load TensorFlow."""
    if name == "FEATURE_SPEC":
        spec = feature_spec()
        globals()["FEATURE_SPEC"] = spec
        return spec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _float_targets(obj: KittiObject) -> tuple[float, ...]:
    """``obj``'s values in :data:`FLOAT_TARGETS` order (KITTI fields 1, 3, 4..14)."""
    return (obj.truncation, obj.alpha, *obj.box, *obj.dimensions, *obj.location, obj.rotation_y)


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
        "target/object_class": b(*(o.class_name.encode("utf-8") for o in objects)),
        "target/occlusion": i(*(o.occlusion for o in objects)),
    }
    values = [_float_targets(o) for o in objects]
    for k, name in enumerate(FLOAT_TARGETS):
        feature[name] = f(*(v[k] for v in values))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def parse_example(serialized: bytes) -> dict[str, Any]:
    """One serialized example as plain Python: scalars for ``frame/*``, lists for ``target/*``."""
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


# --- file names and the partition -----------------------------------------------------------
class ShardName(NamedTuple):
    """The parts of a TFRecord file name (``shard``/``num_shards`` None without a shard part)."""

    prefix: str
    fold: int
    num_folds: int
    shard: int | None
    num_shards: int | None


def shard_file_name(
    prefix: str | os.PathLike, fold: int, num_folds: int, shard: int, num_shards: int
) -> str:
    """``<prefix>-fold-000-of-002-shard-00000-of-00010``."""
    return f"{prefix}-fold-{fold:03d}-of-{num_folds:03d}-shard-{shard:05d}-of-{num_shards:05d}"


def parse_shard_name(name: str | os.PathLike) -> ShardName | None:
    """The fold (and shard) of a TFRecord file name, ``None`` when it has no ``-fold-NNN-of-NNN``.

    TAO picks the validation fold by this part of the name alone (``fold-000-of-``), wherever
    it is; so does :func:`split_folds`.
    """
    base = os.path.basename(os.fspath(name))
    m = _SHARD_NAME.search(base)
    if m is None:
        return None
    shard, num_shards = m.group(3), m.group(4)
    return ShardName(
        base[: m.start()],
        int(m.group(1)),
        int(m.group(2)),
        None if shard is None else int(shard),
        None if num_shards is None else int(num_shards),
    )


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


def tfrecord_files(pattern: str | os.PathLike) -> list[Path]:
    """TFRecord files, sorted: a directory's ``-fold-`` files, or the files a glob matches.

    Folders, dot files (temporary shards, the split manifest) and split manifests are left out.
    Raises :class:`FileNotFoundError` when nothing is left.
    """
    p = Path(pattern)
    if p.is_dir():
        names = sorted(f.name for f in p.iterdir() if parse_shard_name(f.name))
        found = [p / n for n in names]
    else:
        found = [Path(f) for f in sorted(glob.glob(str(pattern)))]
    found = [
        f
        for f in found
        if f.is_file() and not f.name.startswith(".") and not _is_split_manifest(f.name)
    ]
    if not found:
        raise FileNotFoundError(f"no TFRecord files match {str(pattern)!r}")
    return found


def split_folds(
    pattern: str | os.PathLike, validation_fold: int | None = 0
) -> tuple[list[str], list[str]]:
    """``(training files, validation files)`` matching ``pattern``, as TAO splits them.

    Files without a ``-fold-NNN-`` part, or ``validation_fold=None``, all go to training; when
    only the validation fold is there, it is the training set too (as TAO does with one fold).
    """
    train, val = [], []
    for f in tfrecord_files(pattern):
        name = parse_shard_name(f)
        if validation_fold is not None and name and name.fold == validation_fold:
            val.append(str(f))
        else:
            train.append(str(f))
    if not train:
        train = list(val)
    return train, val


# --- writing --------------------------------------------------------------------------------
@dataclass
class TFRecordResult:
    """What :func:`write_tfrecords` wrote."""

    files: list[Path] = field(default_factory=list)
    frames_per_fold: dict[int, int] = field(default_factory=dict)
    objects_per_class: Counter[str] = field(default_factory=Counter)
    skipped_boxes: list[str] = field(default_factory=list)
    manifest: Path | None = None


def _frame_objects(label: Path) -> tuple[list[KittiObject], list[str]]:
    """A training label file as TAO's converter reads it: objects, and the skipped boxes."""
    objects, skipped = [], []
    for i, obj in enumerate(read_kitti_objects(label, allow_score=False)):
        if tao_keeps_box(obj.box):
            objects.append(obj)
        else:
            x1, y1, x2, y2 = (int(v) for v in obj.box)
            skipped.append(f"{label}_{i}: [{x1}, {y1}, {x2}, {y2}]")
    return objects, skipped


def _entries_not_of_the_set(folder: Path, prefix: str) -> list[str]:
    """Entries of ``folder`` that a new set of ``prefix`` would not replace: anything but its
    shards and dot files (its split manifest, temporaries left by a killed writer)."""
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a directory")
    foreign = []
    for entry in sorted(folder.iterdir()):
        name = parse_shard_name(entry.name)
        if entry.name.startswith(".") and not entry.is_dir():
            continue
        if name is None or name.prefix != prefix:
            foreign.append(entry.name)
    return foreign


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

    All or nothing: the shards and the split manifest (:func:`split_manifest_path`) are written
    into a new folder that replaces ``output_prefix``'s folder only when the set is complete
    (:func:`cvlab.fileio.atomic_directory`), so shards of an earlier run (another ``num_shards``
    included) never mix with this run's, and a failure leaves the earlier set as it was. That
    folder must hold nothing but this prefix's TFRecords (:class:`cvlab.errors.CvlabError`
    otherwise, before anything is written). Image sizes come from the file headers (no decoding).
    """
    import tensorflow as tf

    root = Path(root)
    output_prefix = Path(output_prefix)
    folder, prefix = output_prefix.parent, output_prefix.name
    foreign = _entries_not_of_the_set(folder, prefix)
    if foreign:
        raise CvlabError(
            f"{folder}: holds {len(foreign)} entries that are not {prefix!r} TFRecords "
            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); the folder is "
            "replaced as a whole, so write the TFRecords into a folder of their own"
        )
    ids = list_frame_ids(root / image_dir_name, image_extension)
    folds = shard_partitions(random_partition(ids, val_split, seed), num_shards)
    result = TFRecordResult()
    manifest = SplitManifest(
        prefix, [], image_dir_name, image_extension, val_split, seed, num_shards
    )
    with (
        tqdm(total=len(ids), desc="TFRecords", unit="img", disable=not progress) as bar,
        atomic_directory(folder.absolute()) as new_folder,
    ):
        for fold, shards in enumerate(folds):
            result.frames_per_fold[fold] = sum(len(s) for s in shards)
            for s, shard in enumerate(shards):
                name = shard_file_name(prefix, fold, NUM_FOLDS, s, max(num_shards, 1))
                with tf.io.TFRecordWriter(str(new_folder / name)) as writer:
                    for frame in shard:
                        label = root / label_dir_name / f"{frame}.txt"
                        if not label.is_file():
                            raise FileNotFoundError(f"{label}: label file missing for {frame}")
                        objects, skipped = _frame_objects(label)
                        result.skipped_boxes.extend(skipped)
                        image = root / image_dir_name / f"{frame}{image_extension}"
                        # the stored frame: TAO's decoder ignores EXIF orientation
                        width, height = image_size(image, oriented=False)
                        ex = make_example(f"{image_dir_name}/{frame}", width, height, objects)
                        writer.write(ex.SerializeToString(deterministic=True))
                        result.objects_per_class.update(o.class_name for o in objects)
                        bar.update()
                result.files.append(folder / name)
                manifest.shards.append(ManifestShard(name, fold, list(shard)))
        write_split_manifest(split_manifest_path(new_folder / prefix), manifest)
    result.manifest = split_manifest_path(output_prefix)
    return result


@dataclass
class Record:
    """One frame of a TFRecord file: ``boxes`` ``(N, 4)`` float32 in original-image pixels,
    ``classes`` lower case."""

    frame_id: str
    width: int
    height: int
    classes: list[str]
    boxes: np.ndarray


def write_records(path: str | os.PathLike, records: Sequence[Record]) -> None:
    """Write ``records`` as one TFRecord file of TAO examples, atomically (tests and tools).

    Examples are built by :func:`make_example`, so they carry every field ``dataset_convert``
    writes (truncation, occlusion, 3D fields set to 0).
    """
    import tensorflow as tf

    with atomic_path(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
        for r in records:
            boxes = np.asarray(r.boxes, np.float32).reshape(-1, 4).tolist()
            objects = [
                KittiObject(cls, tuple(box)) for cls, box in zip(r.classes, boxes, strict=True)
            ]
            example = make_example(r.frame_id, r.width, r.height, objects)
            writer.write(example.SerializeToString(deterministic=True))


# --- reading --------------------------------------------------------------------------------
def _examples(files: Sequence[str | os.PathLike]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``(file, parsed example)`` for every record of ``files``, in file and record order."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    for path in map(Path, files):
        try:
            for i, raw in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
                try:
                    ex = parse_example(raw)
                except (DecodeError, IndexError) as exc:
                    raise FormatError(f"record {i}: not a TAO example ({exc})", path=path) from None
                yield path, ex
        except tf.errors.DataLossError as exc:
            raise FormatError(f"corrupt TFRecord file: {exc.message}", path=path) from None


def _files(files: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(files, str | os.PathLike):
        return tfrecord_files(files)
    return [Path(f) for f in files]


def read_records(files: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Record]:
    """Every example of ``files`` (a list, a glob or a folder) as a :class:`Record`, in order."""
    out = []
    for _, ex in _examples(_files(files)):
        coords = [
            np.array(ex[f"target/coordinates_{k}"], np.float32) for k in ("x1", "y1", "x2", "y2")
        ]
        out.append(
            Record(
                frame_id=ex["frame/id"],
                width=ex["frame/width"],
                height=ex["frame/height"],
                classes=[c.lower() for c in ex["target/object_class"]],
                boxes=np.stack(coords, axis=1).astype(np.float32).reshape(-1, 4),
            )
        )
    return out


def read_tfrecords(pattern: str | os.PathLike) -> pd.DataFrame:
    """All examples as a DataFrame: one row per object, one row (class None) per empty frame.

    Columns: file, fold, frame_id, width, height, object_class, x1, y1, x2, y2, truncation,
    occlusion. ``fold`` is -1 for a file without a fold in its name.
    """
    rows = []
    for path, ex in _examples(tfrecord_files(pattern)):
        name = parse_shard_name(path)
        base = {
            "file": path.name,
            "fold": name.fold if name else -1,
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


# --- the split manifest ---------------------------------------------------------------------
@dataclass
class ManifestShard:
    """One shard file (name only) of a split manifest, its fold and its frame ids in order."""

    file: str
    fold: int
    frame_ids: list[str]


@dataclass
class SplitManifest:
    """Which frame ids :func:`write_tfrecords` put into which shard file and fold.

    Frame ids are image file stems; a record's ``frame/id`` is ``"<image_dir_name>/<id>"``.
    """

    prefix: str
    shards: list[ManifestShard]
    image_dir_name: str = "images"
    image_extension: str = ".jpg"
    val_split: float | None = None
    seed: int | None = None
    num_shards: int | None = None

    def folds(self) -> dict[int, list[str]]:
        """``{fold: frame ids}`` in shard order."""
        out: dict[int, list[str]] = {}
        for shard in self.shards:
            out.setdefault(shard.fold, []).extend(shard.frame_ids)
        return out


def _is_split_manifest(name: str) -> bool:
    return name.startswith(".") and name.endswith(SPLIT_MANIFEST_SUFFIX)


def split_manifest_path(output_prefix: str | os.PathLike) -> Path:
    """``<dir>/.<prefix>-split.json`` for the shards ``<dir>/<prefix>-fold-*``."""
    p = Path(output_prefix)
    return p.parent / f".{p.name}{SPLIT_MANIFEST_SUFFIX}"


def write_split_manifest(path: str | os.PathLike, manifest: SplitManifest) -> Path:
    """Write ``manifest`` as JSON, atomically; returns the path.

    ``{"format": "cvlab.tfrecords.split", "version": 1, "prefix", "image_dir_name",
    "image_extension", "val_split", "seed", "num_shards", "shards": [{"file", "fold",
    "frame_ids"}]}``.
    """
    doc = {"format": SPLIT_MANIFEST_FORMAT, "version": SPLIT_MANIFEST_VERSION, **asdict(manifest)}
    return atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


def read_split_manifest(path: str | os.PathLike) -> SplitManifest:
    """Read a manifest written by :func:`write_split_manifest` (:class:`FormatError` if not one)."""
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise FormatError(f"malformed JSON: {exc.msg}", path=path, line=exc.lineno) from None
    if not isinstance(doc, dict) or doc.get("format") != SPLIT_MANIFEST_FORMAT:
        raise FormatError(f"not a {SPLIT_MANIFEST_FORMAT} manifest", path=path, field="format")
    if doc.get("version") != SPLIT_MANIFEST_VERSION:
        raise FormatError(
            f"version {doc.get('version')!r} is not supported", path=path, field="version"
        )
    try:
        shards = [
            ManifestShard(str(s["file"]), int(s["fold"]), [str(i) for i in s["frame_ids"]])
            for s in doc["shards"]
        ]
        fields = {
            k: doc[k]
            for k in ("image_dir_name", "image_extension", "val_split", "seed", "num_shards")
            if k in doc
        }
        return SplitManifest(str(doc["prefix"]), shards, **fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"missing or bad entry {exc}", path=path, field="shards") from None


@dataclass
class Split:
    """Which frames are in which fold: ``folds`` maps fold -> frame ids (image file stems) in
    file and record order; ``manifests`` are the manifests it was read from (empty when every
    record was read)."""

    folds: dict[int, list[str]]
    manifests: list[Path] = field(default_factory=list)

    def frame_ids(self, fold: int) -> list[str]:
        """The frame ids of ``fold`` (empty when there is no such fold)."""
        return list(self.folds.get(fold, []))


def _manifest_shards(files: list[Path]) -> tuple[Path, dict[str, ManifestShard]] | None:
    """The manifest entries of ``files`` (one folder, one prefix) if a current manifest has them."""
    name = parse_shard_name(files[0])
    if name is None:
        return None
    path = split_manifest_path(files[0].parent / name.prefix)
    try:
        stamp = path.stat().st_mtime_ns
        manifest = read_split_manifest(path)
    except (OSError, FormatError):
        return None
    shards = {s.file: s for s in manifest.shards}
    for f in files:
        if f.name not in shards or f.stat().st_mtime_ns > stamp:
            return None  # not written with this manifest, or rewritten since
    return path, shards


def read_split(pattern: str | os.PathLike) -> Split:
    """The fold of every frame in the TFRecords of ``pattern`` (a glob or a folder).

    Read from the split manifests beside the shards when they are there and not older than the
    shards; otherwise (TFRecords made by TAO) from the records themselves.
    """
    files = tfrecord_files(pattern)
    groups: dict[tuple[Path, str | None], list[Path]] = {}
    for f in files:
        name = parse_shard_name(f)
        groups.setdefault((f.parent, name.prefix if name else None), []).append(f)
    from_manifest: dict[Path, ManifestShard] = {}
    manifests = []
    for group in groups.values():
        found = _manifest_shards(group)
        if found is not None:
            manifests.append(found[0])
            from_manifest.update({f: found[1][f.name] for f in group})
    unread = [f for f in files if f not in from_manifest]
    from_records: dict[Path, list[str]] = {f: [] for f in unread}
    for path, ex in _examples(unread):
        from_records[path].append(ex["frame/id"].rsplit("/", 1)[-1])
    folds: dict[int, list[str]] = {}
    for f in files:
        if f in from_manifest:
            fold, ids = from_manifest[f].fold, from_manifest[f].frame_ids
        else:
            name = parse_shard_name(f)
            fold, ids = (name.fold if name else -1), from_records[f]
        folds.setdefault(fold, []).extend(ids)
    return Split(folds, manifests)
