"""FLIR COCO -> KITTI labels + resized 3-channel JPEGs + TAO TFRecords, in one call.

Output layout of :func:`prepare_flir_dataset` (``OUT`` = ``output_dir``):

* ``OUT/images/<id>.jpg``: 3 equal channels, resized to ``output_size`` (960x544 by default).
* ``OUT/labels/<id>.txt``: 15-field KITTI lines in pixels of the written image (640x512 ->
  960x544 scales x by 1.5 and y by 1.0625); an empty file for a frame without kept objects.
* ``OUT/tfrecords/flir-fold-00F-of-002-shard-0000N-of-00010`` (fold 0 = validation) and the
  split manifest ``OUT/tfrecords/.flir-split.json`` (frame ids per shard and fold), see
  :mod:`cvlab.formats.tfrecords`; written all or nothing (a new folder takes the old one's place
  when complete: a failure or Ctrl-C leaves the previous complete set, or none);
  ``OUT/dataset_convert_spec.txt`` to regenerate them with TAO
  (:func:`cvlab.formats.tao_spec.build_dataset_convert_spec`), written after them.
* ``OUT/prepare_options.json``: options of the run and the SHA-256 of each annotation file read,
  the resume marker. Images/labels in ``OUT`` that are not part of the current run (an earlier
  run on other splits, or a now unreadable source) are removed, because TAO's converter takes
  every image in the folder.

Resume (a re-run into the same ``OUT``): an image is reused when it is newer than its source's
last change (mtime and ctime: a ``cp -p`` replacement with an older mtime is redone) and the
options are those of the last run; its label is recomputed from the CURRENT annotations every
time and rewritten when it differs (``labels_updated``), and the TFRecords are always rebuilt from
the labels, so an edited annotation file never leaves stale training data. A dataset without a
single usable image raises :class:`cvlab.formats.flir_coco.FlirFormatError` and writes nothing.

Box rules (each counted in the :class:`PrepareReport`): boxes of other classes are dropped (or
written as ``dontcare`` with ``keep_background``); boxes with ``w <= 0`` or ``h <= 0``, or whose
written integer corners would fail TAO's ``x1 < x2 and y1 < y2``, are dropped as degenerate;
boxes fully outside the image are dropped; boxes partly outside are clipped.

Example:
    >>> import tempfile
    >>> from cvlab.datasets.synthetic import generate_synthetic_flir
    >>> src = generate_synthetic_flir(tempfile.mkdtemp(), "v2", num_images=6)
    >>> report = prepare_flir_dataset(src, tempfile.mkdtemp(), num_shards=2, progress=False)
    >>> report.images, sorted(report.objects)
    (6, ['person'])
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from cvlab.datasets.classes import ClassMapping, canonical_class_name
from cvlab.detectnet import PEOPLENET_INPUT_SIZE
from cvlab.fileio import UnsafePathError, atomic_write_image, atomic_write_text, safe_path
from cvlab.formats.flir_coco import (
    FlirAnnotation,
    FlirDataset,
    FlirFormatError,
    FlirImage,
    describe_unknown_image_ids,
    load_flir,
)
from cvlab.formats.kitti import format_kitti_line, tao_keeps_box
from cvlab.formats.tao_spec import build_dataset_convert_spec, write_dataset_convert_spec
from cvlab.images import (
    JPEG_QUALITY,
    ImageType,
    UnreadableImageError,
    image_size,
    load_thermal,
    to_training_image,
)

IMAGES_DIR, LABELS_DIR, TFRECORDS_DIR = "images", "labels", "tfrecords"
TFRECORD_PREFIX = "flir"
SPEC_FILE, OPTIONS_FILE = "dataset_convert_spec.txt", "prepare_options.json"


@dataclass
class BoxCounts:
    """Per-image (or summed) box bookkeeping."""

    objects: Counter[str] = field(default_factory=Counter)
    dropped_class: Counter[str] = field(default_factory=Counter)
    degenerate: int = 0
    outside: int = 0
    clipped: int = 0

    def add(self, other: BoxCounts) -> None:
        self.objects.update(other.objects)
        self.dropped_class.update(other.dropped_class)
        self.degenerate += other.degenerate
        self.outside += other.outside
        self.clipped += other.clipped


def kitti_lines(
    annotations: Sequence[FlirAnnotation],
    mapping: ClassMapping,
    source_size: tuple[int, int],
    output_size: tuple[int, int],
) -> tuple[list[str], BoxCounts]:
    """KITTI lines for one image's COCO boxes, scaled from ``source_size`` to ``output_size``.

    >>> from cvlab.formats.flir_coco import FlirAnnotation
    >>> a = FlirAnnotation(0, 1, 1, "person", (100.0, 50.0, 20.0, 80.0))
    >>> lines, c = kitti_lines([a], ClassMapping(), (640, 512), (960, 544))
    >>> lines[0].split()[4:8]
    ['150.00', '53.12', '180.00', '138.12']
    """
    src_w, src_h = source_size
    sx, sy = output_size[0] / src_w, output_size[1] / src_h
    counts = BoxCounts()
    lines = []
    for ann in annotations:
        name = mapping.map(ann.category)
        if name is None:
            counts.dropped_class[ann.category] += 1
            continue
        x, y, w, h = ann.bbox
        x1, y1, x2, y2 = x, y, x + w, y + h
        if w <= 0 or h <= 0:
            counts.degenerate += 1
            continue
        if x2 <= 0 or y2 <= 0 or x1 >= src_w or y1 >= src_h:
            counts.outside += 1
            continue
        cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, src_w), min(y2, src_h)
        box = [round(cx1 * sx, 2), round(cy1 * sy, 2), round(cx2 * sx, 2), round(cy2 * sy, 2)]
        if not tao_keeps_box(box):
            counts.degenerate += 1  # TAO's converter would skip it
            continue
        if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
            counts.clipped += 1
        counts.objects[name] += 1
        lines.append(format_kitti_line(name, box))
    return lines, counts


@dataclass
class _Options:
    classes: list[str]
    keep_background: bool
    output_size: list[int]
    image_type: str


@dataclass
class _ImageResult:
    image: FlirImage
    status: str  # "written" | "resumed" | "relabelled" (resumed, label rewritten) | "unreadable"
    counts: BoxCounts
    error: str = ""


class _Marker:
    """The resume marker ``OUT/prepare_options.json``: the options and annotation hashes of a run.

    ``resume`` says whether the last run had the same options (finished images are reusable).
    :meth:`write` is called before the first output file of this run is written (from any
    worker; it writes once), so a run that writes nothing leaves no marker either, and a file
    written under new options is never reused under the old ones.
    """

    def __init__(self, path: Path, options: _Options, annotations: dict[str, str]) -> None:
        self.path = path
        self.content = asdict(options) | {"annotations": annotations}
        try:
            previous = json.loads(path.read_bytes())
        except (OSError, ValueError):
            previous = {}
        previous = previous if isinstance(previous, dict) else {}
        old_annotations = previous.pop("annotations", None)
        self.resume = previous == asdict(options)
        self.annotations_changed = (
            self.resume and old_annotations is not None and old_annotations != annotations
        )
        self._lock = threading.Lock()
        self._written = False

    def write(self) -> None:
        with self._lock:
            if not self._written:
                atomic_write_text(self.path, json.dumps(self.content, indent=2))
                self._written = True


def _source_path(image: FlirImage, image_type: ImageType) -> Path:
    return image.path_16bit() if image_type == "16bit" else image.path


def _is_finished(src: Path, img_out: Path, label_out: Path) -> bool:
    """True when both outputs were written after the source last changed.

    "Changed" is the later of the source's mtime and its ctime: ``cp -p``, ``tar x`` and
    ``unzip`` give a replaced source an older mtime, but no tool can set the ctime, which any
    write or rename moves to now. (A ``chmod`` or ``touch`` of a source costs one
    reconversion, never a stale image.)
    """
    try:
        st = src.stat()
        changed = max(st.st_mtime_ns, st.st_ctime_ns)
        return img_out.stat().st_mtime_ns >= changed and label_out.stat().st_mtime_ns >= changed
    except OSError:
        return False


def _convert_one(
    image: FlirImage,
    out: Path,
    mapping: ClassMapping,
    output_size: tuple[int, int],
    image_type: ImageType,
    marker: _Marker,
) -> _ImageResult:
    try:  # the id comes from the annotations' file_name: written nowhere but in out
        img_out = safe_path(out / IMAGES_DIR, f"{image.id}.jpg")
        label_out = safe_path(out / LABELS_DIR, f"{image.id}.txt")
    except UnsafePathError:
        return _ImageResult(image, "unreadable", BoxCounts(), f"unsafe output name {image.id!r}")
    try:
        src = _source_path(image, image_type)
        if marker.resume and _is_finished(src, img_out, label_out):
            # The image is reused; its label follows the annotations as they are NOW (the
            # header size is the decoded size the written path scales with).
            lines, counts = kitti_lines(image.annotations, mapping, image_size(src), output_size)
            text = _label_text(lines)
            if label_out.read_bytes() == text.encode():
                return _ImageResult(image, "resumed", counts)
            marker.write()
            atomic_write_text(label_out, text)
            return _ImageResult(image, "relabelled", counts)
        grey = load_thermal(src, image_type)
    except (UnreadableImageError, FileNotFoundError) as exc:  # the report names the path
        why = exc.reason if isinstance(exc, UnreadableImageError) else str(exc)
        return _ImageResult(image, "unreadable", BoxCounts(), why)
    size = (grey.shape[1], grey.shape[0])  # the decoded frame is the truth for scaling
    lines, counts = kitti_lines(image.annotations, mapping, size, output_size)
    marker.write()
    atomic_write_image(
        img_out, to_training_image(grey, output_size), bgr=True, quality=JPEG_QUALITY
    )
    atomic_write_text(label_out, _label_text(lines))
    return _ImageResult(image, "written", counts)


def _label_text(lines: Sequence[str]) -> str:
    return "".join(line + "\n" for line in lines)


@dataclass
class PrepareReport:
    """Counts and paths of one :func:`prepare_flir_dataset` run."""

    source_dir: Path
    output_dir: Path
    layout: str
    splits: list[str]
    images: int = 0
    images_written: int = 0
    images_resumed: int = 0
    labels_updated: int = 0
    annotations_changed: bool = False
    objects: dict[str, int] = field(default_factory=dict)
    dropped_class_boxes: dict[str, int] = field(default_factory=dict)
    degenerate_boxes: int = 0
    outside_boxes: int = 0
    clipped_boxes: int = 0
    tfrecord_skipped_boxes: int = 0
    stale_files_removed: int = 0
    unreadable_images: list[str] = field(default_factory=list)
    skipped_images: list[tuple[str, str]] = field(default_factory=list)
    images_without_annotations: list[str] = field(default_factory=list)
    annotations_without_images: list[str] = field(default_factory=list)
    unknown_image_ids: dict[str, dict[Any, int]] = field(default_factory=dict)
    frames_per_fold: dict[int, int] = field(default_factory=dict)
    tfrecord_files: list[Path] = field(default_factory=list)

    @property
    def images_dir(self) -> Path:
        return self.output_dir / IMAGES_DIR

    @property
    def labels_dir(self) -> Path:
        return self.output_dir / LABELS_DIR

    @property
    def tfrecords_dir(self) -> Path:
        return self.output_dir / TFRECORDS_DIR

    @property
    def spec_path(self) -> Path:
        return self.output_dir / SPEC_FILE

    @property
    def split_manifest_path(self) -> Path:
        """Which frame ids went to which fold (:func:`cvlab.formats.tfrecords.read_split`)."""
        from cvlab.formats.tfrecords import split_manifest_path

        return split_manifest_path(self.tfrecords_dir / TFRECORD_PREFIX)

    def to_pandas(self) -> pd.DataFrame:
        """One row per figure (``metric``, ``value``), e.g. ``objects/person``."""
        rows = [
            ("images", self.images),
            ("images_written", self.images_written),
            ("images_resumed", self.images_resumed),
            ("labels_updated", self.labels_updated),
            *((f"objects/{k}", v) for k, v in sorted(self.objects.items())),
            ("dropped_class_boxes", sum(self.dropped_class_boxes.values())),
            ("degenerate_boxes", self.degenerate_boxes),
            ("outside_boxes", self.outside_boxes),
            ("clipped_boxes", self.clipped_boxes),
            ("tfrecord_skipped_boxes", self.tfrecord_skipped_boxes),
            ("stale_files_removed", self.stale_files_removed),
            ("unreadable_images", len(self.unreadable_images)),
            ("skipped_images", len(self.skipped_images)),
            ("images_without_annotations", len(self.images_without_annotations)),
            ("annotations_without_images", len(self.annotations_without_images)),
            *((f"frames/fold_{k}", v) for k, v in sorted(self.frames_per_fold.items())),
        ]
        return pd.DataFrame(rows, columns=["metric", "value"]).set_index("metric")

    def summary(self) -> str:
        """A few human-readable lines."""
        objs = ", ".join(f"{k} {v}" for k, v in sorted(self.objects.items())) or "none"
        lines = [
            f"FLIR {self.layout} {'+'.join(self.splits)} from {self.source_dir} -> {self.output_dir}",
            f"images: {self.images} ({self.images_written} written, {self.images_resumed} reused; "
            f"{self.labels_updated} labels updated"
            f"{', annotations changed since the last run' if self.annotations_changed else ''})",
            f"objects: {objs}",
            f"boxes dropped: {sum(self.dropped_class_boxes.values())} other classes, "
            f"{self.degenerate_boxes} degenerate, {self.outside_boxes} outside; "
            f"{self.clipped_boxes} clipped",
            f"skipped images: {len(self.unreadable_images)} unreadable, "
            f"{len(self.skipped_images)} bad file names/duplicates",
            f"images without annotations: {len(self.images_without_annotations)}; "
            f"annotations without images: {len(self.annotations_without_images)}",
            *(f"  {line}" for line in describe_unknown_image_ids(self.unknown_image_ids)),
            f"TFRecords: {len(self.tfrecord_files)} files in {self.tfrecords_dir}, "
            f"frames per fold {self.frames_per_fold} (fold 0 = validation)",
        ]
        return "\n".join(lines)

    def to_json(self) -> str:
        """The report as JSON (paths as strings)."""
        return json.dumps(asdict(self), default=str, indent=2)


def _remove_stale(out: Path, keep: set[str]) -> int:
    """Delete images/labels of earlier runs that are not part of this one (TAO lists the folder)."""
    removed = 0
    for sub, suffix in ((IMAGES_DIR, ".jpg"), (LABELS_DIR, ".txt")):
        for path in (out / sub).glob(f"*{suffix}"):
            if path.stem not in keep:
                path.unlink()
                removed += 1
    return removed


def _annotation_hashes(dataset: FlirDataset) -> dict[str, str]:
    """``{annotation file, relative to the dataset root: SHA-256}`` of the loaded splits."""
    hashes = {}
    for path in dataset.annotation_files.values():
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        hashes[path.relative_to(dataset.root).as_posix()] = digest
    return hashes


def _check_classes(mapping: ClassMapping, dataset: FlirDataset) -> None:
    """Every class asked for is a category of the annotation files (aliases applied), else a
    :class:`FlirFormatError` naming the first file, the unknown names and the categories:
    a typo (``persn``) must not give a dataset without objects."""
    known = {
        canonical_class_name(name, mapping.aliases)
        for table in dataset.categories.values()
        for name in table.values()
    }
    unknown = [c for c in mapping.classes if c not in known]
    if unknown:
        files = sorted(str(f) for f in dataset.annotation_files.values())
        raise FlirFormatError(
            f"no categor{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(repr(c) for c in unknown)} in the annotations (they have: "
            f"{', '.join(sorted(known))})",
            path=files[0] if files else None,
            field="classes",
        )


def _no_usable_image(dataset: FlirDataset, unreadable: Sequence[str]) -> FlirFormatError:
    """The one-line error for a dataset that yields no image at all (file(s) named)."""
    files = ", ".join(str(p) for p in dataset.annotation_files.values())
    listed = sum(dataset.listed_images.values())
    if not listed:
        return FlirFormatError("lists no images, nothing to prepare", path=files, field="images")
    reasons = Counter(reason.split(" (")[0] for _, reason in dataset.skipped)
    if unreadable:
        reasons[f"unreadable, e.g. {unreadable[0]}"] = len(unreadable)
    why = ", ".join(f"{n} {reason}" for reason, n in reasons.items())
    return FlirFormatError(
        f"none of its {listed} images can be used ({why}), nothing to prepare",
        path=files,
        field="images",
    )


def _check_output_dir(source: Path, output: Path) -> None:
    if output == source or source.is_relative_to(output):
        raise ValueError(f"{output}: output directory must not contain the source {source}")


def prepare_flir_dataset(
    source_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    classes: Sequence[str] | str = ("person",),
    output_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    val_split: float = 10,
    num_shards: int = 10,
    seed: int = 42,
    workers: int = 2,
    keep_background: bool = False,
    image_type: ImageType = "8bit",
    splits: Sequence[str] | str | None = ("train",),
    progress: bool = True,
) -> PrepareReport:
    """Convert a FLIR v1/v2 download (or a synthetic one) into KITTI + images + TAO TFRecords.

    Args:
        source_dir: dataset root (layout auto-detected) or a single split folder.
        output_dir: where ``images/``, ``labels/``, ``tfrecords/`` and the spec are written.
        classes: KITTI classes kept (``"person,car"`` or a sequence; ``bike`` -> ``bicycle``).
        output_size: ``(width, height)`` of the written images.
        val_split: percent of frames in the validation fold (fold 0).
        num_shards: shards per fold.
        seed: shuffle seed of the partition (TAO uses 42).
        workers: threads decoding/resizing/encoding images (OpenCV releases the GIL).
        keep_background: write other classes as ``dontcare`` instead of dropping them.
        image_type: ``"8bit"`` (the JPEGs) or ``"16bit"`` (v1 TIFFs, percentile-normalised).
        splits: which splits to convert (``None``: all present).
        progress: show tqdm bars.

    Finished images (image and label newer than the source, same options as the last run) are
    reused, so an interrupted run resumes; labels always follow the current annotations (see the
    module docstring). Unreadable images are skipped and listed.

    Raises:
        FlirFormatError: (a :class:`cvlab.errors.CvlabError`) when no image at all can be used
            (the annotation files list none, or every one is skipped or unreadable); the message
            names the annotation file(s) and nothing is written.
    """
    source = Path(source_dir).resolve()
    out = Path(output_dir).resolve()
    _check_output_dir(source, out)
    mapping = (
        ClassMapping.parse(classes, keep_background)
        if isinstance(classes, str)
        else ClassMapping(tuple(classes), keep_background)
    )
    output_size = (int(output_size[0]), int(output_size[1]))
    if image_type not in ("8bit", "16bit"):
        raise ValueError(f"image_type must be '8bit' or '16bit', got {image_type!r}")
    dataset = load_flir(source, splits)
    if image_type == "16bit" and dataset.layout != "v1":
        raise ValueError(f"{source}: 16-bit TIFFs exist only in FLIR v1, this is {dataset.layout}")
    if not dataset.images:
        raise _no_usable_image(dataset, [])  # before anything is written
    _check_classes(mapping, dataset)
    options = _Options(list(mapping.classes), keep_background, list(output_size), image_type)
    marker = _Marker(out / OPTIONS_FILE, options, _annotation_hashes(dataset))

    report = PrepareReport(source, out, dataset.layout, sorted(dataset.categories))
    report.annotations_changed = marker.annotations_changed
    report.skipped_images = list(dataset.skipped)
    report.images_without_annotations = list(dataset.images_without_annotations)
    report.annotations_without_images = list(dataset.annotations_without_images)
    report.unknown_image_ids = {k: dict(v) for k, v in dataset.unknown_image_ids.items()}
    totals = BoxCounts()
    done: set[str] = set()

    def job(image: FlirImage) -> _ImageResult:
        return _convert_one(image, out, mapping, output_size, image_type, marker)

    bar = tqdm(total=len(dataset.images), desc="FLIR -> KITTI", unit="img", disable=not progress)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for result in pool.map(job, dataset.images):
            bar.update()
            if result.status == "unreadable":
                report.unreadable_images.append(f"{result.image.path}: {result.error}")
                continue
            totals.add(result.counts)
            done.add(result.image.id)
            report.images += 1
            report.images_written += result.status == "written"
            report.images_resumed += result.status in ("resumed", "relabelled")
            report.labels_updated += result.status == "relabelled"
    bar.close()
    if not report.images:  # every image unreadable: nothing was written
        raise _no_usable_image(dataset, report.unreadable_images)
    marker.write()  # also when every file was reused: the annotation hashes are new
    report.stale_files_removed = _remove_stale(out, done)
    report.objects = dict(totals.objects)
    report.dropped_class_boxes = dict(totals.dropped_class)
    report.degenerate_boxes, report.outside_boxes = totals.degenerate, totals.outside
    report.clipped_boxes = totals.clipped

    from cvlab.formats.tfrecords import write_tfrecords

    written = write_tfrecords(  # the new set replaces the old folder, once it is complete
        out,
        out / TFRECORDS_DIR / TFRECORD_PREFIX,
        image_dir_name=IMAGES_DIR,
        label_dir_name=LABELS_DIR,
        val_split=val_split,
        num_shards=num_shards,
        seed=seed,
        progress=progress,
    )
    report.tfrecord_files = written.files
    report.frames_per_fold = written.frames_per_fold
    report.tfrecord_skipped_boxes = len(written.skipped_boxes)
    write_dataset_convert_spec(
        build_dataset_convert_spec(out, val_split=val_split, num_shards=num_shards),
        out / SPEC_FILE,
    )
    return report
