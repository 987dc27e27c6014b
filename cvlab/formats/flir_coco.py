"""Readers for the FLIR ADAS thermal releases (v1.3 and v2), auto-detected.

On-disk layouts (``root`` is what the user downloaded and unpacked):

* **v1** (FLIR ADAS 1.3): ``train/``, ``val/``, ``video/``; each holds
  ``thermal_8_bit/FLIR_NNNNN.jpeg``, ``thermal_16_bit/FLIR_NNNNN.tiff``, ``RGB/`` and
  ``thermal_annotations.json`` (COCO) whose ``file_name`` is ``"thermal_8_bit/FLIR_NNNNN.jpeg"``.
* **v2**: ``images_thermal_train/``, ``images_thermal_val/``, ``video_thermal_test/``; each holds
  ``data/*.jpg``, ``coco.json`` (``file_name`` like ``"data/video-...-frame-000123-....jpg"``) and
  ``index.json``.

Rules: category ids are mapped through the file's own ``{id: name}`` table (never by list
position: v1 lists dog as 17 while its README says 18); image paths come from ``file_name``
(never rebuilt from the image id) and must stay inside ``root``, checked on the name itself:
absolute names and names with a ``..`` part are skipped and listed, while symbolic links are
followed (an image folder linked to another disk is fine). Images without annotations and
annotations whose image id is not in the file's ``images`` are reported (file and ids, see
:func:`describe_unknown_image_ids`). Malformed JSON or missing keys raise :class:`FlirFormatError` (a
:class:`cvlab.errors.FormatError`) naming the file (``path``), the image/annotation index and key
(``field``) or the JSON line.

Example:
    >>> from cvlab.datasets.synthetic import generate_synthetic_flir
    >>> import tempfile
    >>> root = generate_synthetic_flir(tempfile.mkdtemp(), layout="v2", num_images=4)
    >>> ds = load_flir(root, split="train")
    >>> ds.layout, len(ds.images)
    ('v2', 4)
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cvlab.errors import FormatError
from cvlab.fileio import UnsafePathError, safe_path

Layout = Literal["v1", "v2"]

#: split name -> directory, per layout.
SPLIT_DIRS: dict[str, dict[str, str]] = {
    "v1": {"train": "train", "val": "val", "video": "video"},
    "v2": {
        "train": "images_thermal_train",
        "val": "images_thermal_val",
        "video": "video_thermal_test",
    },
}
ANNOTATION_FILES: dict[str, str] = {"v1": "thermal_annotations.json", "v2": "coco.json"}
#: v1 keeps radiometric 16-bit TIFFs next to the 8-bit JPEGs.
V1_8BIT_DIR, V1_16BIT_DIR = "thermal_8_bit", "thermal_16_bit"
SPLIT_ALIASES = {"test": "video", "validation": "val", "training": "train"}


class FlirFormatError(FormatError):
    """A FLIR annotation file that cannot be used: ``path`` is the file, ``field`` the entry
    (``images[3]``, ``annotations[7] 'bbox'``) or top-level key, ``line`` a JSON syntax error's.
    """


@dataclass(frozen=True)
class FlirAnnotation:
    """One COCO box: ``bbox`` is ``(x, y, w, h)`` in pixels of the source image."""

    index: int
    annotation_id: Any
    category_id: int
    category: str
    bbox: tuple[float, float, float, float]


@dataclass
class FlirImage:
    """One thermal frame.

    ``id`` is the output name (file name without extension); ``path`` is absolute and below
    the split folder by name (``..`` refused, symbolic links not resolved); ``width``/``height`` come from the JSON (None when absent there).
    """

    id: str
    image_id: Any
    split: str
    file_name: str
    path: Path
    width: int | None
    height: int | None
    annotations: list[FlirAnnotation] = field(default_factory=list)

    def path_16bit(self) -> Path:
        """The v1 radiometric TIFF for this frame (``thermal_16_bit/<stem>.tiff``)."""
        if self.path.parent.name != V1_8BIT_DIR:
            raise FileNotFoundError(f"{self.path}: 16-bit TIFFs exist only in the v1 layout")
        return self.path.parent.parent / V1_16BIT_DIR / f"{self.path.stem}.tiff"


@dataclass
class FlirDataset:
    """Images of the loaded split(s) plus what did not fit.

    Attributes:
        skipped: ``(file_name, reason)`` for images left out (path escaping the root, duplicates).
        images_without_annotations: ids of images that have no box at all.
        annotations_without_images: ``"<json file>#annotations[i] image_id=..."`` descriptions.
        unknown_image_ids: ``{json file: {image_id: boxes}}`` for those annotations, in file order.
        categories: ``{split: {category_id: name}}`` as read from each file.
        annotation_files: ``{split: json file}`` of the loaded splits.
        listed_images: ``{json file: entries in its "images"}``.
    """

    root: Path
    layout: Layout
    images: list[FlirImage] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    images_without_annotations: list[str] = field(default_factory=list)
    annotations_without_images: list[str] = field(default_factory=list)
    unknown_image_ids: dict[str, dict[Any, int]] = field(default_factory=dict)
    categories: dict[str, dict[int, str]] = field(default_factory=dict)
    annotation_files: dict[str, Path] = field(default_factory=dict)
    listed_images: dict[str, int] = field(default_factory=dict)

    def class_counts(self) -> Counter[str]:
        """Boxes per FLIR category name."""
        return Counter(a.category for im in self.images for a in im.annotations)


def _split_dirs(root: Path, layout: Layout) -> dict[str, Path]:
    return {
        split: root / d
        for split, d in SPLIT_DIRS[layout].items()
        if (root / d / ANNOTATION_FILES[layout]).is_file()
    }


def detect_layout(root: str | os.PathLike) -> Layout:
    """``"v1"`` or ``"v2"``, from the split folders (or a single split folder) under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: FLIR dataset directory not found")
    for layout in ("v2", "v1"):
        if _split_dirs(root, layout) or (root / ANNOTATION_FILES[layout]).is_file():
            return layout  # type: ignore[return-value]
    expected = ", ".join(
        f"{d}/{ANNOTATION_FILES[lay]}" for lay in ("v1", "v2") for d in SPLIT_DIRS[lay].values()
    )
    raise FlirFormatError(f"not a FLIR ADAS dataset (looked for {expected})", path=root)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise FlirFormatError(f"malformed JSON: {exc.msg}", path=path, line=exc.lineno) from None
    if not isinstance(data, dict):
        raise FlirFormatError("expected a JSON object at the top level", path=path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise FlirFormatError(f"missing or non-list key '{key}'", path=path, field=key)
    return data


def _get(entry: Any, key: str, path: Path, where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise FlirFormatError(f"{where} has no key '{key}'", path=path, field=where)
    return entry[key]


def read_categories(path: Path, data: dict[str, Any]) -> dict[int, str]:
    """The file's own ``{category_id: name}`` table (order in the list does not matter)."""
    table: dict[int, str] = {}
    for i, cat in enumerate(data["categories"]):
        cid = _get(cat, "id", path, f"categories[{i}]")
        name = _get(cat, "name", path, f"categories[{i}]")
        if not isinstance(cid, int) or not isinstance(name, str):
            raise FlirFormatError(
                f"categories[{i}] needs an integer 'id' and a string 'name'",
                path=path,
                field=f"categories[{i}]",
            )
        if cid in table and table[cid] != name:
            raise FlirFormatError(
                f"categories[{i}] repeats id {cid} ({table[cid]!r}, {name!r})",
                path=path,
                field=f"categories[{i}]",
            )
        table[cid] = name
    return table


def _check_id(value: Any, path: Path, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FlirFormatError(
            f"{where} must be a number or a string, got {value!r}", path=path, field=where
        )
    return value


def describe_unknown_image_ids(unknown: dict[str, dict[Any, int]], limit: int = 10) -> list[str]:
    """One line per annotation file naming the image ids its boxes point at but it never lists.

    >>> describe_unknown_image_ids({"train/coco.json": {77: 2, 78: 1, 79: 1}}, limit=2)
    ["train/coco.json: 4 annotations point at 3 image ids not in its 'images': 77, 78 (+1 more)"]
    """
    lines = []
    for file, ids in unknown.items():
        shown = ", ".join(repr(i) if isinstance(i, str) else str(i) for i in list(ids)[:limit])
        more = f" (+{len(ids) - limit} more)" if len(ids) > limit else ""
        boxes = sum(ids.values())
        lines.append(
            f"{file}: {boxes} annotation{'s' * (boxes != 1)} point{'s' * (boxes == 1)} at "
            f"{len(ids)} image id{'s' * (len(ids) != 1)} not in its 'images': {shown}{more}"
        )
    return lines


def _optional_int(value: Any, path: Path, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or value <= 0:
        raise FlirFormatError(
            f"{where} must be a positive number, got {value!r}", path=path, field=where
        )
    return int(value)


def load_split(split_dir: Path, split: str, dataset: FlirDataset, seen: dict[str, str]) -> None:
    """Add the images of one split (one annotation file) to ``dataset``."""
    path = split_dir / ANNOTATION_FILES[dataset.layout]
    data = _load_json(path)
    categories = read_categories(path, data)
    dataset.categories[split] = categories
    dataset.annotation_files[split] = path
    dataset.listed_images[str(path)] = len(data["images"])
    by_image_id: dict[Any, FlirImage] = {}
    json_ids: set[Any] = set()
    for i, entry in enumerate(data["images"]):
        where = f"images[{i}]"
        image_id = _check_id(_get(entry, "id", path, where), path, f"{where} 'id'")
        file_name = _get(entry, "file_name", path, where)
        if not isinstance(file_name, str):
            raise FlirFormatError(
                f"{where} 'file_name' must be a string", path=path, field=f"{where} 'file_name'"
            )
        if image_id in json_ids:
            raise FlirFormatError(
                f"{where} repeats image id {image_id!r}", path=path, field=f"{where} 'id'"
            )
        json_ids.add(image_id)
        width = _optional_int(entry.get("width"), path, f"{where} 'width'")
        height = _optional_int(entry.get("height"), path, f"{where} 'height'")
        try:  # the folders may be links to elsewhere: the name is checked on its face
            resolved = safe_path(split_dir, file_name, links=False)
        except UnsafePathError:
            dataset.skipped.append((f"{path}#{where} {file_name}", "path outside the dataset root"))
            continue
        stem = resolved.stem
        if stem in seen:
            dataset.skipped.append(
                (f"{path}#{where} {file_name}", f"duplicate file name (first: {seen[stem]})")
            )
            continue
        seen[stem] = f"{split}/{file_name}"
        image = FlirImage(stem, image_id, split, file_name, resolved, width, height)
        by_image_id[image_id] = image
        dataset.images.append(image)
    for i, entry in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        image_id = _check_id(_get(entry, "image_id", path, where), path, f"{where} 'image_id'")
        category_id = _get(entry, "category_id", path, where)
        bbox = _get(entry, "bbox", path, where)
        if category_id not in categories:
            raise FlirFormatError(
                f"{where} 'category_id' {category_id!r} is not in the categories table",
                path=path,
                field=f"{where} 'category_id'",
            )
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) for v in bbox)
        ):
            raise FlirFormatError(
                f"{where} 'bbox' must be [x, y, w, h], got {bbox!r}",
                path=path,
                field=f"{where} 'bbox'",
            )
        if image_id not in json_ids:
            dataset.annotations_without_images.append(f"{path}#{where} image_id={image_id!r}")
            unknown = dataset.unknown_image_ids.setdefault(str(path), {})
            unknown[image_id] = unknown.get(image_id, 0) + 1
            continue
        image = by_image_id.get(image_id)
        if image is None:  # its image was skipped
            continue
        image.annotations.append(
            FlirAnnotation(
                i,
                entry.get("id"),
                category_id,
                categories[category_id],
                tuple(float(v) for v in bbox),  # type: ignore[arg-type]
            )
        )
    dataset.images_without_annotations.extend(
        im.id for im in by_image_id.values() if not im.annotations
    )


def _normalise_splits(split: str | Sequence[str] | None) -> list[str] | None:
    if split is None:
        return None
    names = [split] if isinstance(split, str) else list(split)
    out = [SPLIT_ALIASES.get(s, s) for s in names]
    for s in out:
        if s not in SPLIT_DIRS["v1"]:
            raise ValueError(f"unknown FLIR split {s!r}; use train, val or video")
    return out


def load_flir(root: str | os.PathLike, split: str | Iterable[str] | None = None) -> FlirDataset:
    """Read one or more splits (``None``: all present) of a FLIR v1 or v2 dataset.

    ``root`` may also be a single split folder (holding the annotation file itself).
    """
    root = Path(root).resolve()
    layout = detect_layout(root)
    dataset = FlirDataset(root=root, layout=layout)
    splits = _normalise_splits(split)  # type: ignore[arg-type]
    available = _split_dirs(root, layout)
    if not available:  # a single split folder
        available = {root.name: root}
        splits = None
    wanted = list(available) if splits is None else splits
    missing = [s for s in wanted if s not in available]
    if missing:
        raise FileNotFoundError(
            f"{root}: split(s) {missing} not found (have {sorted(available)}; layout {layout})"
        )
    seen: dict[str, str] = {}
    for s in wanted:
        load_split(available[s], s, dataset, seen)
    return dataset
