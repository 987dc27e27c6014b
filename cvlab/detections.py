"""The one detection type used everywhere in cvlab.

A :class:`Detections` holds the boxes found in one image: corner boxes in pixels of the
original image, a confidence and a class per box, the class-name table and the image size.
Decoding, clustering, the Triton client, KITTI files, evaluation and the overlay all speak it.

Example:
    >>> import numpy as np
    >>> d = Detections(
    ...     xyxy=np.array([[10, 20, 50, 120]], dtype=np.float32),
    ...     confidence=np.array([0.9], dtype=np.float32),
    ...     class_id=np.array([0]),
    ...     class_names=("person",),
    ...     image_size=(640, 512),
    ... )
    >>> len(d), d.names
    (1, ['person'])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One box, as yielded when iterating a :class:`Detections`."""

    x1: float
    y1: float
    x2: float
    y2: float
    confidence: float
    class_id: int
    class_name: str

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1


@dataclass
class Detections:
    """Boxes of one image.

    Attributes:
        xyxy: ``(N, 4)`` float32 corner boxes ``x1, y1, x2, y2`` in pixels of the original image.
        confidence: ``(N,)`` float32 scores (summed or mean coverage after clustering, or 1.0
            for ground truth).
        class_id: ``(N,)`` int64 index into ``class_names``.
        class_names: class-name table, index -> name (lower case, e.g. ``("person", "bag", "face")``).
        image_size: ``(width, height)`` of the original image, in pixels.
        image_path: where the image came from, if known.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    image_path: str | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        self.class_names = tuple(self.class_names)
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        if len(self.confidence) != n or len(self.class_id) != n:
            raise ValueError(
                f"Detections: xyxy has {n} boxes but confidence has {len(self.confidence)} "
                f"and class_id has {len(self.class_id)}"
            )
        if n and (self.class_id.min() < 0 or self.class_id.max() >= len(self.class_names)):
            raise ValueError(
                f"Detections: class_id out of range 0..{len(self.class_names) - 1}: "
                f"{sorted(set(self.class_id.tolist()))}"
            )
        for key, value in self.extra.items():
            if len(value) != n:
                raise ValueError(f"Detections: extra[{key!r}] has {len(value)} rows, expected {n}")

    # --- construction -------------------------------------------------------------------
    @classmethod
    def empty(
        cls,
        class_names: Sequence[str],
        image_size: tuple[int, int],
        image_path: str | None = None,
    ) -> Detections:
        """No boxes."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            class_id=np.zeros((0,), np.int64),
            class_names=tuple(class_names),
            image_size=image_size,
            image_path=image_path,
        )

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        """Concatenate detections of the same image (same class table and size)."""
        if not parts:
            raise ValueError("Detections.merge needs at least one part")
        first = parts[0]
        for p in parts[1:]:
            if p.class_names != first.class_names or p.image_size != first.image_size:
                raise ValueError("Detections.merge: parts differ in class_names or image_size")
        keys = set(first.extra)
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            class_names=first.class_names,
            image_size=first.image_size,
            image_path=first.image_path,
            extra={k: np.concatenate([p.extra[k] for p in parts]) for k in keys},
        )

    # --- views ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> Detections:
        """Select boxes by boolean mask, index array or slice; always returns Detections."""
        if isinstance(index, int | np.integer):
            index = [int(index)]
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            class_names=self.class_names,
            image_size=self.image_size,
            image_path=self.image_path,
            extra={k: v[index] for k, v in self.extra.items()},
        )

    def __iter__(self) -> Iterator[Detection]:
        for (x1, y1, x2, y2), conf, cid in zip(
            self.xyxy.tolist(), self.confidence.tolist(), self.class_id.tolist(), strict=True
        ):
            yield Detection(x1, y1, x2, y2, conf, cid, self.class_names[cid])

    @property
    def names(self) -> list[str]:
        """Class name of each box."""
        return [self.class_names[i] for i in self.class_id.tolist()]

    @property
    def width(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def height(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def area(self) -> np.ndarray:
        return np.clip(self.width, 0, None) * np.clip(self.height, 0, None)

    def of_class(self, name: str) -> Detections:
        """Only the boxes of class ``name``."""
        if name not in self.class_names:
            raise KeyError(f"unknown class {name!r}; known: {', '.join(self.class_names)}")
        return self[self.class_id == self.class_names.index(name)]

    def filter(self, min_confidence: float = 0.0, min_height: float = 0.0) -> Detections:
        """Keep boxes with confidence >= min_confidence and height >= min_height."""
        return self[(self.confidence >= min_confidence) & (self.height >= min_height)]

    def sorted(self) -> Detections:
        """Boxes by descending confidence (stable)."""
        return self[np.argsort(-self.confidence, kind="stable")]

    def scaled(self, sx: float, sy: float, image_size: tuple[int, int]) -> Detections:
        """Boxes scaled by (sx, sy) into an image of ``image_size``."""
        scale = np.array([sx, sy, sx, sy], dtype=np.float32)
        return Detections(
            self.xyxy * scale,
            self.confidence,
            self.class_id,
            self.class_names,
            image_size,
            self.image_path,
            dict(self.extra),
        )

    def to_pandas(self):  # -> pandas.DataFrame (import kept lazy)
        """One row per box: class, confidence, x1, y1, x2, y2, width, height."""
        import pandas as pd

        return pd.DataFrame(
            {
                "image": [self.image_path] * len(self),
                "class": self.names,
                "confidence": self.confidence,
                "x1": self.xyxy[:, 0],
                "y1": self.xyxy[:, 1],
                "x2": self.xyxy[:, 2],
                "y2": self.xyxy[:, 3],
                "width": self.width,
                "height": self.height,
            }
        )

    def __repr__(self) -> str:
        counts = {n: int((self.class_id == i).sum()) for i, n in enumerate(self.class_names)}
        shown = ", ".join(f"{k}={v}" for k, v in counts.items() if v)
        return f"Detections({len(self)} boxes{': ' + shown if shown else ''}, image_size={self.image_size})"
