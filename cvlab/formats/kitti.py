"""KITTI label files: 15-field training lines and 16-field inference lines.

A KITTI line is ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rot_y [score]``.
TAO DetectNet_v2 uses only the class and the 2D box (x1 y1 x2 y2, pixels); the 3D fields are zero.
Inference output (as written by the TAO Triton client) adds the confidence as a 16th field.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from cvlab.detections import Detections
    >>> d = Detections([[1, 2, 30, 40]], [0.8], [0], ("person",), (64, 64))
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> write_kitti(p, d, with_confidence=True)
    >>> p.read_text().split()[:8]
    ['person', '0.00', '0', '0.00', '1.00', '2.00', '30.00', '40.00']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cvlab.detections import Detections
from cvlab.errors import FormatError
from cvlab.fileio import atomic_write_text

TRAINING_FIELDS = 15
INFERENCE_FIELDS = 16


class KittiFormatError(FormatError):
    """A KITTI label file that cannot be read; the message names the file and line."""


def kitti_class_name(name: str) -> str:
    """KITTI-safe class name: lower case, spaces and dashes become underscores.

    >>> kitti_class_name("Other Vehicle")
    'other_vehicle'
    """
    return "_".join(name.strip().lower().replace("-", " ").split())


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
    rows: list[tuple[str, list[float], float]] = []
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) not in (TRAINING_FIELDS, INFERENCE_FIELDS):
            raise KittiFormatError(
                f"{path}:{lineno}: expected {TRAINING_FIELDS} or {INFERENCE_FIELDS} fields, "
                f"got {len(parts)}"
            )
        try:
            box = [float(v) for v in parts[4:8]]
            conf = float(parts[15]) if len(parts) == INFERENCE_FIELDS else 1.0
        except ValueError as exc:
            raise KittiFormatError(f"{path}:{lineno}: non-numeric box or score: {exc}") from None
        if not np.all(np.isfinite(box + [conf])):
            raise KittiFormatError(f"{path}:{lineno}: box or score is not finite")
        rows.append((parts[0].lower(), box, conf))
    if class_names is None:
        class_names = sorted({r[0] for r in rows})
    names = tuple(kitti_class_name(n) for n in class_names)
    rows = [r for r in rows if r[0] in names]
    if not rows:
        return Detections.empty(names, image_size, str(path))
    return Detections(
        xyxy=np.array([r[1] for r in rows], np.float32),
        confidence=np.array([r[2] for r in rows], np.float32),
        class_id=np.array([names.index(r[0]) for r in rows]),
        class_names=names,
        image_size=image_size,
        image_path=str(path),
    )
