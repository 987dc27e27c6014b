"""Class mapping from FLIR category names to the KITTI class names written for training.

The default keeps only ``person`` (as PeopleNet IR). Other classes are dropped, or, with
``keep_background=True``, written as ``dontcare``. TAO DetectNet_v2 trains only on the classes
named in the training spec's ``target_class_mapping``; objects of any other class in the
TFRecords (``dontcare`` included) are ignored by the data loader: they are neither targets nor
penalised as background, so keeping them is harmless and documents what was in the frame.

FLIR v2 renamed some COCO classes; :data:`CLASS_ALIASES` maps them back so one spelling works
for both releases: ``bike`` -> ``bicycle``, ``motor`` -> ``motorcycle``. Names with spaces or
dashes become KITTI-safe (``"other vehicle"`` -> ``other_vehicle``).

Example:
    >>> m = ClassMapping(("person", "bicycle"))
    >>> m.map("Person"), m.map("bike"), m.map("car")
    ('person', 'bicycle', None)
    >>> ClassMapping(("person",), keep_background=True).map("other vehicle")
    'dontcare'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cvlab.formats.kitti import kitti_class_name

DEFAULT_CLASSES: tuple[str, ...] = ("person",)
BACKGROUND_CLASS = "dontcare"

#: FLIR spelling (KITTI-safe) -> canonical KITTI class name.
CLASS_ALIASES: dict[str, str] = {
    "bike": "bicycle",
    "motor": "motorcycle",
    "motorbike": "motorcycle",
    "people": "person",
    "pedestrian": "person",
}


def canonical_class_name(name: str, aliases: Mapping[str, str] = CLASS_ALIASES) -> str:
    """KITTI-safe name with aliases applied: ``"Bike"`` -> ``"bicycle"``."""
    safe = kitti_class_name(name)
    return aliases.get(safe, safe)


@dataclass(frozen=True)
class ClassMapping:
    """Which FLIR categories become which KITTI classes.

    Attributes:
        classes: KITTI class names kept for training (aliases allowed, e.g. ``"bike"``).
        keep_background: write other classes as :data:`BACKGROUND_CLASS` instead of dropping them.
        aliases: FLIR spelling -> canonical name (defaults to :data:`CLASS_ALIASES`).
    """

    classes: tuple[str, ...] = DEFAULT_CLASSES
    keep_background: bool = False
    aliases: Mapping[str, str] = field(default_factory=lambda: dict(CLASS_ALIASES))

    def __post_init__(self) -> None:
        names = tuple(canonical_class_name(c, self.aliases) for c in self.classes)
        if not names or any(not n for n in names):
            raise ValueError(f"ClassMapping: empty class name in {self.classes!r}")
        object.__setattr__(self, "classes", tuple(dict.fromkeys(names)))

    def map(self, category_name: str) -> str | None:
        """KITTI class for a FLIR category name, or None when the object is dropped."""
        name = canonical_class_name(category_name, self.aliases)
        if name in self.classes:
            return name
        return BACKGROUND_CLASS if self.keep_background else None

    @classmethod
    def parse(cls, text: str | Iterable[str], keep_background: bool = False) -> ClassMapping:
        """From ``"person,car"`` or a sequence of names."""
        names = text.split(",") if isinstance(text, str) else list(text)
        return cls(tuple(n for n in (s.strip() for s in names) if n), keep_background)
