"""KITTI label files: 15-field training lines and 16-field inference lines, read and written.

A KITTI line is ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rot_y [score]``.
TAO DetectNet_v2 uses only the class and the 2D box (x1 y1 x2 y2, pixels); the 3D fields are zero.
Inference output (as written by the TAO Triton client) adds the confidence as a 16th field.

:func:`read_kitti_objects` is the one parser (every line as a :class:`KittiObject`);
:func:`read_kitti` turns a file into :class:`~cvlab.detections.Detections` and
:mod:`cvlab.formats.tfrecords` turns it into TAO examples. A bad line raises
:class:`KittiFormatError` with ``path``, ``line`` (1-based) and ``field``.

Example:
    >>> import tempfile, pathlib
    >>> from cvlab.detections import Detections
    >>> d = Detections([[1, 2, 30, 40]], [0.8], [0], ("person",), (64, 64))
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> write_kitti(p, d, with_confidence=True)
    >>> p.read_text().split()[:8]
    ['person', '0.00', '0', '0.00', '1.00', '2.00', '30.00', '40.00']
    >>> (obj,) = read_kitti_objects(p)
    >>> obj.class_name, obj.box, obj.score
    ('person', (1.0, 2.0, 30.0, 40.0), 0.8)
    >>> read_kitti(p, (64, 64)).xyxy.tolist()
    [[1.0, 2.0, 30.0, 40.0]]
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvlab.detections import Detections
from cvlab.errors import FormatError
from cvlab.fileio import atomic_write_text

TRAINING_FIELDS = 15
INFERENCE_FIELDS = 16
#: Names of the 16 fields of a line (``field`` of a :class:`KittiFormatError`).
FIELD_NAMES = (
    "type",
    "truncated",
    "occluded",
    "alpha",
    "x1",
    "y1",
    "x2",
    "y2",
    "height",
    "width",
    "length",
    "x",
    "y",
    "z",
    "rotation_y",
    "score",
)


class KittiFormatError(FormatError):
    """A KITTI label line that cannot be read; ``path``, ``line`` and ``field`` say where."""


@dataclass(frozen=True)
class KittiObject:
    """One KITTI line: the class (lower case), the 2D box in pixels and the other fields."""

    class_name: str
    box: tuple[float, float, float, float]
    truncation: float = 0.0
    occlusion: int = 0
    alpha: float = 0.0
    dimensions: tuple[float, float, float] = (0.0, 0.0, 0.0)  # height, width, length
    location: tuple[float, float, float] = (0.0, 0.0, 0.0)  # x, y, z
    rotation_y: float = 0.0
    score: float | None = None  # the 16th field of inference output


def kitti_class_name(name: str) -> str:
    """KITTI-safe class name: lower case, spaces and dashes become underscores.

    >>> kitti_class_name("Other Vehicle")
    'other_vehicle'
    """
    return "_".join(name.strip().lower().replace("-", " ").split())


def tao_keeps_box(box: Sequence[float]) -> bool:
    """TAO's KITTI converter keeps a box only when its integer corners satisfy ``x1 < x2`` and
    ``y1 < y2``.

    >>> tao_keeps_box((10.2, 20.0, 10.9, 40.0))
    False
    """
    x1, y1, x2, y2 = (int(v) for v in box)
    return x1 < x2 and y1 < y2


def format_kitti_line(
    class_name: str,
    box: Sequence[float],
    confidence: float | None = None,
    truncation: float = 0.0,
    occlusion: int = 0,
) -> str:
    """One KITTI line; 16 fields when ``confidence`` is given, else 15."""
    x1, y1, x2, y2 = (float(v) for v in box)
    fields = [
        kitti_class_name(class_name),
        f"{truncation:.2f}",
        str(int(occlusion)),
        "0.00",
        f"{x1:.2f}",
        f"{y1:.2f}",
        f"{x2:.2f}",
        f"{y2:.2f}",
    ] + ["0.00"] * 7
    if confidence is not None:
        fields.append(f"{float(confidence):.4f}")
    return " ".join(fields)


def write_kitti(path: str | os.PathLike, detections: Detections, with_confidence: bool) -> None:
    """Write one label file for one image (an empty file when there are no boxes)."""
    lines = [
        format_kitti_line(
            det.class_name,
            (det.x1, det.y1, det.x2, det.y2),
            det.confidence if with_confidence else None,
        )
        for det in detections
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def parse_kitti_line(
    text: str,
    *,
    path: str | os.PathLike | None = None,
    line: int | None = None,
    allow_score: bool = True,
) -> KittiObject | None:
    """One line as a :class:`KittiObject` (``None`` for a blank line).

    15 fields, or 16 with ``allow_score``; every field after the class must be a number and the
    box and score finite, else :class:`KittiFormatError` (``path`` and ``line`` go into it).
    """
    parts = text.split()
    if not parts:
        return None
    allowed = (TRAINING_FIELDS, INFERENCE_FIELDS) if allow_score else (TRAINING_FIELDS,)
    if len(parts) not in allowed:
        expected = " or ".join(str(n) for n in allowed)
        raise KittiFormatError(
            f"expected {expected} fields, got {len(parts)}", path=path, line=line
        )
    nums = []
    for name, value in zip(FIELD_NAMES[1:], parts[1:], strict=False):
        try:
            nums.append(float(value))
        except ValueError:
            raise KittiFormatError(
                f"non-numeric {name}: {value!r}", path=path, line=line, field=name
            ) from None
    score = nums[14] if len(nums) == 15 else None
    checked = zip(FIELD_NAMES[4:8] + FIELD_NAMES[15:], nums[3:7] + nums[14:], strict=False)
    for name, value in checked:
        if not math.isfinite(value):
            raise KittiFormatError(
                f"{name} is not finite: {value}", path=path, line=line, field=name
            )
    return KittiObject(
        class_name=parts[0].lower(),
        box=(nums[3], nums[4], nums[5], nums[6]),
        truncation=nums[0],
        occlusion=int(nums[1]),
        alpha=nums[2],
        dimensions=(nums[7], nums[8], nums[9]),
        location=(nums[10], nums[11], nums[12]),
        rotation_y=nums[13],
        score=score,
    )


def read_kitti_objects(path: str | os.PathLike, *, allow_score: bool = True) -> list[KittiObject]:
    """Every non-blank line of a label file, in order (16-field lines only with ``allow_score``)."""
    objects = []
    for lineno, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        obj = parse_kitti_line(raw, path=path, line=lineno, allow_score=allow_score)
        if obj is not None:
            objects.append(obj)
    return objects


def read_kitti(
    path: str | os.PathLike,
    image_size: tuple[int, int] = (0, 0),
    class_names: Sequence[str] | None = None,
) -> Detections:
    """Read a 15- or 16-field KITTI label file into Detections.

    Training lines (15 fields) get confidence 1.0. With ``class_names`` given, lines of other
    classes are skipped; otherwise the class table is the sorted set of names in the file.
    """
    path = Path(path)
    objects = read_kitti_objects(path)
    if class_names is None:
        class_names = sorted({o.class_name for o in objects})
    names = tuple(kitti_class_name(n) for n in class_names)
    objects = [o for o in objects if o.class_name in names]
    if not objects:
        return Detections.empty(names, image_size, str(path))
    return Detections(
        xyxy=np.array([o.box for o in objects], np.float32),
        confidence=np.array([1.0 if o.score is None else o.score for o in objects], np.float32),
        class_id=np.array([names.index(o.class_name) for o in objects]),
        class_names=names,
        image_size=image_size,
        image_path=str(path),
    )
