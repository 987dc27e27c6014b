"""Synthetic FLIR-like thermal data with exact ground truth, in the real v1 and v2 layouts.

Frames are 8-bit grey thermal images: cool cluttered backgrounds (sky/road gradient, building
blocks with windows, lane marks, noise) with warm person-shaped figures (head, torso, arms, legs;
30-250 px tall, varied stride and arm swing, some cut off at the image edges), plus distractors
with their own categories: warm cars, dogs and street-light poles (the lamp is labelled as a
traffic light). Ground-truth boxes are the exact extent of each drawn object's visible pixels.
Everything is numpy/OpenCV drawing and deterministic by ``seed``.

``SyntheticThermalGenerator(style="rgb")`` draws the same kind of scenes in daylight colours
(sky, coloured buildings, trees, asphalt; people in coloured clothes with skin-tone heads, most
carrying a bag with a darker flap; coloured cars) and also labels ``face`` and ``bag``,
PeopleNet's classes. Its geometry suits a small model input: people are 0.4-0.95 of the frame
height (heads inside the frame), no two people, cars or dogs overlap much, and each person,
face and bag is labelled with the box of its pixels that stay visible (mostly hidden parts are
not labelled). :func:`write_synthetic_rgb_set` writes such frames with KITTI labels and TAO
TFRecords (the training set of the lab's offline RGB stand-in,
:func:`cvlab.lab.standin.ensure_rgb_standin`).

Layouts written by :func:`generate_synthetic_flir` (same as the real downloads):

* ``v1``: ``train|val|video/thermal_8_bit/FLIR_NNNNN.jpeg`` (grey), ``thermal_16_bit/*.tiff``
  (uint16, radiometric-like counts ``7000 + 8 * grey``), ``RGB/`` (empty) and
  ``thermal_annotations.json`` with the 80-entry category table (person 1, bicycle 2, car 3,
  dog 17, other vehicle 79, ...).
* ``v2``: ``images_thermal_train|images_thermal_val|video_thermal_test/data/video-*-frame-*.jpg``
  (3 equal channels), ``coco.json`` (person 1, bike 2, car 3, motor 4, ..., dog 17, ...,
  other vehicle 79) and a small ``index.json``.

Example:
    >>> gen = SyntheticThermalGenerator(seed=1)
    >>> frame = gen.render(0)
    >>> frame.image.shape, frame.image.dtype
    ((512, 640), dtype('uint8'))
    >>> all(0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 512 for x1, y1, x2, y2 in frame.boxes_xyxy)
    True
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from tqdm.auto import tqdm

from cvlab.detections import Detections
from cvlab.detectnet import PEOPLENET_CLASSES
from cvlab.fileio import atomic_write_image, atomic_write_text

# COCO's 80 names numbered 1..80 in order, as FLIR's files do (so dog is 17, not COCO's 18).
_COCO80 = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic_light",
    "fire_hydrant",
    "stop_sign",
    "parking_meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports_ball",
    "kite",
    "baseball_bat",
    "baseball_glove",
    "skateboard",
    "surfboard",
    "tennis_racket",
    "bottle",
    "wine_glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot_dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted_plant",
    "bed",
    "dining_table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell_phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy_bear",
    "hair_drier",
    "toothbrush",
]
_V1_NAMES = {i + 1: n.replace("_", " ") for i, n in enumerate(_COCO80)} | {79: "other vehicle"}
_V2_NAMES = _V1_NAMES | {
    2: "bike",
    4: "motor",
    10: "light",
    11: "hydrant",
    12: "sign",
    73: "stroller",
    77: "scooter",
    79: "other vehicle",
}
#: ``{layout: [{"id", "name", "supercategory"}]}`` as written to the annotation files.
CATEGORY_TABLES: dict[str, list[dict[str, object]]] = {
    layout: [{"id": i, "name": n, "supercategory": "unknown"} for i, n in sorted(names.items())]
    for layout, names in (("v1", _V1_NAMES), ("v2", _V2_NAMES))
}
#: generator object kind -> category name per layout.
KIND_NAMES = {
    "v1": {"person": "person", "car": "car", "dog": "dog", "light": "traffic light"},
    "v2": {"person": "person", "car": "car", "dog": "dog", "light": "light"},
}


@dataclass
class SyntheticObject:
    """One drawn object: ``kind`` in person/car/dog/light, ``bbox`` = exact ``(x, y, w, h)``."""

    kind: str
    bbox: tuple[int, int, int, int]

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        x, y, w, h = self.bbox
        return (x, y, x + w, y + h)


@dataclass
class SyntheticFrame:
    """A rendered frame: ``image`` (H, W) uint8 and its objects."""

    image: np.ndarray
    objects: list[SyntheticObject] = field(default_factory=list)

    @property
    def boxes_xyxy(self) -> list[tuple[int, int, int, int]]:
        return [o.xyxy for o in self.objects]

    def to_detections(self, classes: Sequence[str] = ("person",)) -> Detections:
        """Ground truth of the listed kinds as :class:`Detections` (confidence 1)."""
        keep = [o for o in self.objects if o.kind in classes]
        h, w = self.image.shape[:2]
        if not keep:
            return Detections.empty(tuple(classes), (w, h))
        return Detections(
            [o.xyxy for o in keep],
            np.ones(len(keep), np.float32),
            [list(classes).index(o.kind) for o in keep],
            tuple(classes),
            (w, h),
        )


#: Rendering styles: FLIR-like 8-bit thermal (grey) or daylight colour ("rgb").
Style = Literal["thermal", "rgb"]
#: Kinds an ``rgb`` frame labels, as PeopleNet's classes.

# Daylight palettes (RGB). Only the ``rgb`` style reads them, through its own colour generator.
_SKIN = ((255, 224, 196), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36),
         (92, 51, 23))  # fmt: skip
_HAIR = ((30, 25, 20), (90, 60, 30), (200, 170, 100), (150, 150, 150), (120, 40, 20))
_CLOTHES = ((200, 30, 40), (40, 70, 170), (25, 35, 70), (40, 120, 60), (230, 200, 40),
            (235, 235, 230), (35, 35, 38), (120, 120, 125), (240, 120, 30), (110, 50, 140),
            (230, 130, 170), (180, 160, 110), (60, 80, 120))  # fmt: skip
_BAGS = ((110, 70, 40), (30, 30, 30), (150, 30, 40), (200, 170, 120), (40, 60, 110))
_CARS = ((235, 235, 235), (180, 182, 188), (30, 30, 32), (180, 20, 25), (30, 60, 150),
         (100, 100, 105), (30, 80, 50), (230, 190, 30))  # fmt: skip
_BUILDINGS = ((150, 80, 60), (170, 170, 165), (200, 180, 140), (90, 120, 150), (215, 215, 210),
              (80, 80, 90), (180, 120, 90))  # fmt: skip
_DOGS = ((120, 80, 40), (30, 28, 25), (210, 170, 100), (240, 235, 225))

# Daylight (``rgb``) scene geometry: people are sized relative to the frame (so a small model
# input still sees faces and bags), spaced so that no two overlap much, and labelled with the
# box of what stays visible.
#: Up to this many people in an ``rgb`` frame.
RGB_MAX_PEOPLE = 4
#: Person height as a fraction of the frame height: (at the horizon, nearest).
RGB_PERSON_HEIGHT = (0.4, 0.95)
#: Free rows above the tallest head, as a fraction of the frame height (no cut-off faces).
RGB_HEAD_MARGIN = 0.03
#: Head radius as a fraction of the person's height (thermal people: 0.065).
RGB_HEAD_RATIO = 0.085
#: Bag (width, height) as a fraction of its carrier's height, before a random scale.
RGB_BAG_SIZE = (0.26, 0.2)
#: Largest overlap of two objects' footprints, as a fraction of the smaller one.
RGB_MAX_OVERLAP = 0.3
#: Footprint (half width, height) of a person, car and dog per unit of its drawn size.
RGB_FOOTPRINT = {"person": (0.25, 1.0), "car": (0.5, 0.55), "dog": (0.6, 1.0)}
#: Share of an object's drawn pixels that must stay visible for it to be labelled.
RGB_MIN_VISIBLE = {"person": 0.5, "face": 0.6, "bag": 0.5}


def _jitter(crng: np.random.Generator, colour: Sequence[float], amount: float = 18.0) -> tuple:
    """``colour`` with a small random shift per channel (kept above 8 so masks see it)."""
    shifted = np.asarray(colour, np.float64) + crng.uniform(-amount, amount, 3)
    return tuple(float(v) for v in np.clip(shifted, 8, 255))


def _pick(crng: np.random.Generator, palette: Sequence[Sequence[float]], amount: float = 18.0):
    return _jitter(crng, palette[int(crng.integers(len(palette)))], amount)


def _nonzero(layer: np.ndarray) -> np.ndarray:
    """Drawn pixels of a grey (H, W) or colour (H, W, 3) layer."""
    if layer.ndim == 2:
        return layer > 0
    return (layer[..., 0] + layer[..., 1] + layer[..., 2]) > 0  # non-negative: a fast max


class SyntheticThermalGenerator:
    """Renders FLIR-like frames with exact boxes; frame ``i`` depends only on seed and i.

    ``style="thermal"`` (default) draws 8-bit grey thermal frames (person, car, dog, light).
    ``style="rgb"`` draws the same kind of scene in daylight colours: blue sky, coloured
    buildings, trees, asphalt; people with clothing colours and skin-tone heads with hair,
    most carrying bags; cars in colours. Its frames also label ``face`` (the head) and ``bag``,
    PeopleNet's classes, and its people are sized relative to the frame and kept apart
    (``RGB_*`` constants), labelled by their visible pixels. Both styles share the drawing
    code; colours and the ``rgb``-only details (hair, bags, trees) come from a second random
    stream and the ``rgb``-only geometry branches off the thermal one, so the thermal frames
    stay byte-identical.

    Args:
        image_size: ``(width, height)``, FLIR's 640x512 by default.
        seed: base seed.
        max_people: up to this many people per frame (default 6, ``rgb`` :data:`RGB_MAX_PEOPLE`).
        empty_fraction: share of frames with no objects at all.
        style: ``"thermal"`` ((H, W) grey frames) or ``"rgb"`` ((H, W, 3) RGB frames).
        bag_probability: share of people carrying a bag (``rgb`` only).

    Example:
        >>> frame = SyntheticThermalGenerator((640, 384), seed=3, style="rgb").render(0)
        >>> frame.image.shape, sorted({o.kind for o in frame.objects} & {"person", "face"})
        ((384, 640, 3), ['face', 'person'])
    """

    def __init__(
        self,
        image_size: tuple[int, int] = (640, 512),
        seed: int = 0,
        max_people: int | None = None,
        empty_fraction: float = 0.05,
        style: Style = "thermal",
        bag_probability: float = 0.8,
    ) -> None:
        if style not in ("thermal", "rgb"):
            raise ValueError(f"style must be 'thermal' or 'rgb', got {style!r}")
        self.width, self.height = int(image_size[0]), int(image_size[1])
        self.seed = int(seed)
        self.max_people = max_people or (RGB_MAX_PEOPLE if style == "rgb" else 6)
        self.empty_fraction = empty_fraction
        self.style = style
        self.bag_probability = bag_probability

    @property
    def rgb(self) -> bool:
        return self.style == "rgb"

    def _layer(self) -> np.ndarray:
        shape = (self.height, self.width) + ((3,) if self.rgb else ())
        return np.zeros(shape, np.float32)

    # -- background ---------------------------------------------------------------------------
    def _background(
        self, rng: np.random.Generator, crng: np.random.Generator
    ) -> tuple[np.ndarray, int]:
        w, h = self.width, self.height
        horizon = int(h * rng.uniform(0.3, 0.55))
        sky_top, sky_bottom = rng.uniform(20, 50), rng.uniform(45, 80)
        road_top, road_bottom = rng.uniform(55, 90), rng.uniform(80, 125)
        if self.rgb:  # the same gradients in daylight colours
            sky = _jitter(crng, (70, 130, 205), 25), _jitter(crng, (175, 205, 235), 15)
            grey = float(crng.uniform(85, 135))
            road = _jitter(crng, (grey,) * 3, 6), _jitter(crng, (grey + 25,) * 3, 6)
            col = np.empty((h, 3), np.float32)
            col[:horizon] = np.linspace(sky[0], sky[1], horizon)
            col[horizon:] = np.linspace(road[0], road[1], h - horizon)
            img = np.repeat(col[:, None], w, axis=1)
        else:
            col = np.empty(h, np.float32)
            col[:horizon] = np.linspace(sky_top, sky_bottom, horizon)
            col[horizon:] = np.linspace(road_top, road_bottom, h - horizon)
            img = np.repeat(col[:, None], w, axis=1)
        x = 0
        while x < w:  # buildings along the horizon
            bw = int(rng.uniform(40, 160))
            if rng.random() < 0.75:
                top = int(rng.uniform(0.05, 0.9) * horizon)
                level = rng.uniform(50, 110)
                wall, glass = float(level), float(level + 18)
                if self.rgb:
                    wall = _pick(crng, _BUILDINGS)
                    glass = _pick(crng, ((60, 80, 110), (40, 50, 60), (230, 220, 160)))
                cv2.rectangle(img, (x, top), (x + bw, horizon), wall, -1)
                for wy in range(top + 8, horizon - 10, int(rng.uniform(14, 26))):
                    for wx in range(x + 6, x + bw - 10, int(rng.uniform(14, 24))):
                        if rng.random() < 0.6:
                            cv2.rectangle(img, (wx, wy), (wx + 6, wy + 8), glass, -1)
            x += bw + int(rng.uniform(0, 30))
        if self.rgb:
            self._vegetation(img, crng, horizon)
        for _ in range(int(rng.integers(1, 4))):  # lane marks / kerbs
            y = int(rng.uniform(horizon + 10, h))
            dy, level = int(rng.uniform(-40, 40)), float(rng.uniform(70, 140))
            mark = _pick(crng, ((235, 235, 230), (230, 190, 40)), 10) if self.rgb else level
            cv2.line(img, (0, y), (w, y + dy), mark, 2)
        img = cv2.GaussianBlur(img, (0, 0), 2.0)
        noise = rng.standard_normal((h, w), dtype=np.float32)
        img += 4.0 * noise if not self.rgb else 3.0 * noise[..., None]  # sensor noise
        return img, horizon

    def _vegetation(self, img: np.ndarray, crng: np.random.Generator, horizon: int) -> None:
        """Trees and bushes along the horizon (``rgb`` only; unlabelled clutter)."""
        for _ in range(int(crng.integers(0, 6))):
            cx, size = float(crng.uniform(0, self.width)), float(crng.uniform(12, 45))
            base = horizon + float(crng.uniform(-2, 8))
            green = _pick(crng, ((50, 110, 40), (70, 130, 50), (40, 90, 45), (90, 120, 40)))
            if crng.random() < 0.6:  # tree: trunk and crown
                trunk = max(2, int(size * 0.15))
                cv2.line(img, (int(cx), int(base)), (int(cx), int(base - 1.6 * size)),
                         _jitter(crng, (90, 60, 40)), trunk)  # fmt: skip
                cv2.ellipse(img, (int(cx), int(base - 2 * size)), (int(size), int(size * 1.1)),
                            0, 0, 360, green, -1, cv2.LINE_AA)  # fmt: skip
            else:  # bush
                cv2.ellipse(img, (int(cx), int(base)), (int(size * 1.3), int(size * 0.5)),
                            0, 180, 360, green, -1, cv2.LINE_AA)  # fmt: skip

    # -- objects ------------------------------------------------------------------------------
    def _person(
        self,
        layer: np.ndarray,
        rng: np.random.Generator,
        cx: float,
        foot: float,
        ht: float,
        crng: np.random.Generator,
    ) -> list[tuple[str, np.ndarray]]:
        """Draw a person; in ``rgb`` also return the drawn-pixel masks of its labelled parts:
        ``person`` (before its bag is drawn), ``face`` (the head) and ``bag``."""
        t = float(rng.uniform(175, 245))
        head_r = max(2, int((RGB_HEAD_RATIO if self.rgb else 0.065) * ht))
        neck = foot - ht + 2 * head_r
        hip = foot - 0.48 * ht
        tw = max(3, int(0.26 * ht * rng.uniform(0.8, 1.15)))
        head: Any = t + 8
        torso, legs, arms = t, t - 12, t - 6
        if self.rgb:
            head, torso, legs = _pick(crng, _SKIN, 8), _pick(crng, _CLOTHES), _pick(crng, _CLOTHES)
            arms = torso if crng.random() < 0.7 else head  # long or short sleeves
        head_centre = (int(cx), int(foot - ht + head_r))
        cv2.circle(layer, head_centre, head_r, head, -1, cv2.LINE_AA)
        cv2.ellipse(
            layer,
            (int(cx), int((neck + hip) / 2)),
            (tw // 2, max(2, int((hip - neck) / 2))),
            0,
            0,
            360,
            torso,
            -1,
            cv2.LINE_AA,
        )
        limb = max(2, int(0.08 * ht))
        stride = rng.uniform(-0.22, 0.22) * ht
        for sign in (-1, 1):  # legs
            cv2.line(
                layer,
                (int(cx + sign * tw * 0.2), int(hip)),
                (int(cx + sign * stride / 2), int(foot - limb / 2)),
                legs,
                limb,
                cv2.LINE_AA,
            )
        swing = rng.uniform(-0.18, 0.18) * ht
        shoulder = neck + 0.05 * ht
        hands = []
        for sign in (-1, 1):  # arms
            hand = (int(cx + sign * (tw * 0.55) - sign * swing / 2), int(hip + 0.02 * ht))
            hands.append(hand)
            cv2.line(
                layer,
                (int(cx + sign * tw * 0.45), int(shoulder)),
                hand,
                arms,
                max(2, limb - 1),
                cv2.LINE_AA,
            )
        if not self.rgb:
            return []
        hair = _pick(crng, _HAIR, 10)  # hair: the top of the head, inside the face box
        cv2.ellipse(layer, head_centre, (head_r, head_r), 0, 180, 360, hair, -1, cv2.LINE_AA)
        face_mask = np.zeros(layer.shape[:2], np.uint8)
        cv2.circle(face_mask, head_centre, head_r, 1, -1, cv2.LINE_AA)
        parts = [("person", _nonzero(layer)), ("face", face_mask > 0)]
        if crng.random() < self.bag_probability:
            bag_mask = np.zeros(layer.shape[:2], np.uint8)
            hx, hy = hands[int(crng.integers(2))]
            bw = RGB_BAG_SIZE[0] * ht * crng.uniform(0.8, 1.2)
            bh = RGB_BAG_SIZE[1] * ht * crng.uniform(0.85, 1.2)
            top = hy + 0.03 * ht
            colour = _pick(crng, _BAGS)
            for target, value in ((layer, colour), (bag_mask, 1)):
                cv2.line(target, (hx, hy), (int(hx - bw / 3), int(top)), value, max(1, limb // 3))
                cv2.line(target, (hx, hy), (int(hx + bw / 3), int(top)), value, max(1, limb // 3))
                cv2.rectangle(
                    target,
                    (int(hx - bw / 2), int(top)),
                    (int(hx + bw / 2), int(top + bh)),
                    value,
                    -1,
                )
            flap = tuple(0.6 * c for c in colour)  # a darker flap with a clasp: a bag, not a shirt
            x1, x2, flap_y = int(hx - bw / 2), int(hx + bw / 2), int(top + 0.35 * bh)
            cv2.rectangle(layer, (x1, int(top)), (x2, flap_y), flap, -1)
            cv2.circle(layer, (int(hx), flap_y), max(1, int(bw / 12)), (225, 205, 120), -1)
            parts.append(("bag", bag_mask > 0))
        return parts

    def _car(
        self,
        layer: np.ndarray,
        rng: np.random.Generator,
        cx: float,
        base: float,
        cw: float,
        crng: np.random.Generator,
    ) -> None:
        ch = cw * rng.uniform(0.4, 0.55)
        x1, y1 = int(cx - cw / 2), int(base - ch)
        level = float(rng.uniform(110, 170))
        body, cabin, lamp = level, level - 35, 230.0
        if self.rgb:
            body = _pick(crng, _CARS, 12)
            cabin, lamp = (
                _jitter(crng, (55, 70, 90), 10),
                _pick(crng, ((250, 240, 200), (220, 30, 30))),
            )
        cv2.rectangle(
            layer, (x1, int(base - ch * 0.6)), (int(x1 + cw), int(base - ch * 0.12)), body, -1
        )
        cv2.rectangle(
            layer,
            (int(x1 + cw * 0.18), y1),
            (int(x1 + cw * 0.82), int(base - ch * 0.6)),
            cabin,
            -1,
        )
        r = max(2, int(ch * 0.16))
        for wx in (x1 + cw * 0.2, x1 + cw * 0.8):  # warm tyres
            warmth = float(rng.uniform(190, 235))
            tyre = _jitter(crng, (28, 28, 30), 6) if self.rgb else warmth
            cv2.circle(layer, (int(wx), int(base - r)), r, tyre, -1, cv2.LINE_AA)
        cv2.rectangle(
            layer,
            (x1, int(base - ch * 0.45)),
            (int(x1 + cw * 0.12), int(base - ch * 0.2)),
            lamp,
            -1,
        )

    def _dog(
        self,
        layer: np.ndarray,
        rng: np.random.Generator,
        cx: float,
        foot: float,
        dh: float,
        crng: np.random.Generator,
    ) -> None:
        t = float(rng.uniform(170, 230))
        fur, face, legs = t, t + 5, t - 10
        if self.rgb:
            fur = _pick(crng, _DOGS)
            face = legs = fur
        bw, bh = dh * 0.9, dh * 0.35
        body_y = foot - dh * 0.6
        cv2.ellipse(
            layer,
            (int(cx), int(body_y)),
            (max(2, int(bw / 2)), max(1, int(bh / 2))),
            0,
            0,
            360,
            fur,
            -1,
        )
        d = 1 if rng.random() < 0.5 else -1
        cv2.circle(
            layer, (int(cx + d * bw / 2), int(foot - dh * 0.85)), max(2, int(dh * 0.17)), face, -1
        )
        for lx in (cx - bw * 0.35, cx + bw * 0.35):
            cv2.line(
                layer,
                (int(lx), int(body_y)),
                (int(lx), int(foot - 1)),
                legs,
                max(1, int(dh * 0.1)),
            )

    def _light(
        self,
        layer: np.ndarray,
        rng: np.random.Generator,
        cx: float,
        foot: float,
        ph: float,
        crng: np.random.Generator,
    ) -> tuple[int, int, int, int]:
        pole: Any = _jitter(crng, (105, 108, 112), 8) if self.rgb else 95.0
        cv2.line(
            layer, (int(cx), int(foot)), (int(cx), int(foot - ph)), pole, max(2, int(ph * 0.02))
        )
        lw, lh = max(4, int(ph * 0.06)), max(8, int(ph * 0.15))
        x1, y1 = int(cx - lw / 2), int(foot - ph - lh)
        lamp = np.zeros_like(layer)
        level = float(rng.uniform(150, 200))
        colour: Any = _jitter(crng, (240, 220, 150), 12) if self.rgb else level
        cv2.rectangle(lamp, (x1, y1), (x1 + lw, y1 + lh), colour, -1)
        np.maximum(layer, lamp, out=layer)
        return _mask_box(_nonzero(lamp)) or (0, 0, 0, 0)

    def render(self, index: int, stream: int = 0) -> SyntheticFrame:
        """Frame ``index`` (of an independent ``stream``, e.g. one per split)."""
        rng = np.random.default_rng((self.seed, int(stream), int(index)))
        crng = np.random.default_rng((self.seed, int(stream), int(index), 1))  # rgb colours
        img, horizon = self._background(rng, crng)
        w, h = self.width, self.height
        objects: list[SyntheticObject] = []
        # rgb: labelled parts with the mask of their pixels still visible; the footprints taken
        parts: list[tuple[str, np.ndarray, int, int]] = []
        taken: list[tuple[float, float, float, float]] = []
        if rng.random() >= self.empty_fraction:
            kinds = ["light"] * int(rng.integers(0, 3)) + ["car"] * int(rng.integers(0, 4))
            kinds += ["dog"] * int(rng.random() < 0.25)
            kinds += ["person"] * int(rng.integers(1, self.max_people + 1))
            depth = {k: i for i, k in enumerate(("light", "car", "dog", "person"))}
            placed = [(float(rng.uniform(horizon + 5, h * 1.02)), depth[k], k) for k in kinds]
            order = sorted(placed)  # far (small) first, near objects occlude them
            for number, (foot, _, kind) in enumerate(order):
                near = (foot - horizon) / max(1.0, h - horizon)
                edge = rng.random() < 0.12  # partly outside the frame
                cx = float(
                    rng.uniform(-0.05 * w, 1.05 * w) if edge else rng.uniform(0.03 * w, 0.97 * w)
                )
                layer = self._layer()
                box, drawn = None, []
                if kind == "person" and self.rgb:
                    size = h * float(np.clip(RGB_PERSON_HEIGHT[0] + near * rng.uniform(0.5, 0.7),
                                             *RGB_PERSON_HEIGHT))  # fmt: skip
                    size = min(size, foot - RGB_HEAD_MARGIN * h)  # the whole head in the frame
                elif kind == "person":
                    size = float(np.clip(30 + near * 230 * rng.uniform(0.7, 1.1), 30, 250))
                elif kind == "car":
                    size = float(np.clip(40 + near * 260, 40, 300))
                else:
                    size = float(np.clip(12 + near * 60, 12, 70))
                if self.rgb and kind != "light":  # no two objects overlap much
                    half_width, height = RGB_FOOTPRINT[kind]
                    footprint = (half_width * size, height * size)
                    spot = _free_spot(rng, cx, foot, footprint, taken, w, edge)
                    if spot is None:
                        continue
                    cx = spot
                    taken.append((cx - footprint[0], foot - footprint[1], cx + footprint[0], foot))
                if kind == "person":
                    drawn = self._person(layer, rng, cx, foot, size, crng)
                elif kind == "car":
                    self._car(layer, rng, cx, foot, size, crng)
                elif kind == "dog":
                    self._dog(layer, rng, cx, foot, size, crng)
                else:
                    box = self._light(
                        layer,
                        rng,
                        cx,
                        horizon + rng.uniform(0, 20),
                        horizon * rng.uniform(0.5, 0.9),
                        crng,
                    )
                mask = _nonzero(layer)
                full = _mask_box(mask) if box is None else box
                if full is None or full[2] < 3 or full[3] < 6 and kind != "car":
                    continue
                noise = 3.0 * rng.standard_normal(int(mask.sum()), dtype=np.float32)
                img[mask] = layer[mask] + (noise[:, None] if self.rgb else noise)
                for _, visible, _, _ in parts:  # it hides what it covers of earlier objects
                    visible &= ~mask
                if drawn:
                    parts += [(name, m, number, int(m.sum())) for name, m in drawn]
                else:
                    objects.append(SyntheticObject(kind, full))
        objects += _visible_objects(parts)
        img = cv2.GaussianBlur(img, (0, 0), 0.6)
        if self.rgb:  # daylight varies: overall brightness and contrast
            img = (img - 128.0) * crng.uniform(0.8, 1.15) + 128.0 * crng.uniform(0.8, 1.15)
        return SyntheticFrame(np.clip(img, 0, 255).astype(np.uint8), objects)


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Exact ``(x, y, w, h)`` of the non-zero pixels, or None when there are none."""
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    return (int(x), int(y), int(w), int(h)) if w and h else None


def _free_spot(
    rng: np.random.Generator,
    cx: float,
    foot: float,
    footprint: tuple[float, float],
    taken: Sequence[tuple[float, float, float, float]],
    width: int,
    edge: bool,
    tries: int = 8,
) -> float | None:
    """A centre ``x`` for an ``rgb`` object of ``footprint`` (half width, height) standing at
    ``foot`` (``cx`` first, then fresh draws) whose box overlaps no ``taken`` box by more than
    :data:`RGB_MAX_OVERLAP` of the smaller one; None if there is none."""
    for attempt in range(tries):
        if attempt:
            lo, hi = (-0.05, 1.05) if edge else (0.03, 0.97)
            cx = float(rng.uniform(lo * width, hi * width))
        x1, y1, x2, y2 = cx - footprint[0], foot - footprint[1], cx + footprint[0], foot
        ok = True
        for px1, py1, px2, py2 in taken:
            inter = max(0.0, min(x2, px2) - max(x1, px1)) * max(0.0, min(y2, py2) - max(y1, py1))
            smaller = min((x2 - x1) * (y2 - y1), (px2 - px1) * (py2 - py1))
            if inter > RGB_MAX_OVERLAP * smaller:
                ok = False
                break
        if ok:
            return cx
    return None


def _visible_objects(parts: Sequence[tuple[str, np.ndarray, int, int]]) -> list[SyntheticObject]:
    """``rgb`` labels from ``(kind, visible mask, object number, pixels drawn)``: the exact box
    of each part's still-visible pixels; parts mostly hidden by nearer objects (under
    :data:`RGB_MIN_VISIBLE` of their pixels) or smaller than 6x6 (faces, bags) are not
    labelled."""
    objects = []
    for name, visible, _, total in parts:
        box = _mask_box(visible)
        if box is None or int(visible.sum()) < RGB_MIN_VISIBLE[name] * total:
            continue
        if name != "person" and (box[2] < 6 or box[3] < 6):
            continue
        objects.append(SyntheticObject(name, box))
    return objects


def _write_image(path: Path, image: np.ndarray, params: Sequence[int] = ()) -> None:
    atomic_write_image(path, image, bgr=True, params=params)  # grey or already BGR


def _split_counts(
    num_images: int, val_images: int | None, video_images: int | None
) -> dict[str, int]:
    return {
        "train": int(num_images),
        "val": max(1, num_images // 10) if val_images is None else int(val_images),
        "video": max(1, num_images // 20) if video_images is None else int(video_images),
    }


def generate_synthetic_flir(
    output_dir: str | os.PathLike,
    layout: Literal["v1", "v2"] = "v1",
    num_images: int = 20,
    seed: int = 0,
    image_size: tuple[int, int] = (640, 512),
    *,
    val_images: int | None = None,
    video_images: int | None = None,
    progress: bool = False,
) -> Path:
    """Write a synthetic FLIR dataset in the real ``v1`` or ``v2`` layout; return its root.

    ``num_images`` frames go to the train split; val and video get ``num_images // 10`` and
    ``num_images // 20`` (at least 1) unless given. Point :func:`cvlab.formats.flir_coco.load_flir` or
    :func:`cvlab.datasets.prepare.prepare_flir_dataset` at the returned root, exactly as at a real
    download.
    """
    if layout not in ("v1", "v2"):
        raise ValueError(f"layout must be 'v1' or 'v2', got {layout!r}")
    from cvlab.formats.flir_coco import ANNOTATION_FILES, SPLIT_DIRS

    root = Path(output_dir)
    gen = SyntheticThermalGenerator(image_size, seed)
    names = KIND_NAMES[layout]
    cat_ids = {n: c["id"] for c in CATEGORY_TABLES[layout] for n in [c["name"]]}
    counts = _split_counts(num_images, val_images, video_images)
    bar = tqdm(total=sum(counts.values()), desc=f"synthetic FLIR {layout}", disable=not progress)
    frame_number = 1
    for stream, (split, count) in enumerate(counts.items()):
        split_dir = root / SPLIT_DIRS[layout][split]
        images, annotations, index_frames = [], [], []
        video_id = f"{seed:03d}{stream}Synth{layout}"
        for i in range(count):
            frame = gen.render(i, stream)
            if layout == "v1":
                stem = f"FLIR_video_{i + 1:05d}" if split == "video" else f"FLIR_{frame_number:05d}"
                file_name = f"thermal_8_bit/{stem}.jpeg"
                _write_image(split_dir / file_name, frame.image, (cv2.IMWRITE_JPEG_QUALITY, 95))
                radiometric = (7000 + frame.image.astype(np.uint16) * 8).astype(np.uint16)
                _write_image(split_dir / "thermal_16_bit" / f"{stem}.tiff", radiometric)
                (split_dir / "RGB").mkdir(exist_ok=True)
            else:
                file_name = f"data/video-{video_id}-frame-{i:06d}-{seed:04x}{stream}{i:05x}.jpg"
                rgb = cv2.cvtColor(frame.image, cv2.COLOR_GRAY2BGR)
                _write_image(split_dir / file_name, rgb, (cv2.IMWRITE_JPEG_QUALITY, 95))
                index_frames.append(
                    {
                        "datasetFrameId": f"{video_id}-{i:06d}",
                        "videoMetadata": {"videoId": video_id},
                        "frameIndex": i,
                        "file_name": file_name,
                    }
                )
            frame_number += 1
            images.append(
                {
                    "id": i,
                    "width": gen.width,
                    "height": gen.height,
                    "file_name": file_name,
                    "date_captured": "2018-01-01T00:00:00",
                }
            )
            for obj in frame.objects:
                x, y, w, h = obj.bbox
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": i,
                        "category_id": cat_ids[names[obj.kind]],
                        "segmentation": [],
                        "area": w * h,
                        "bbox": [x, y, w, h],
                        "iscrowd": 0,
                    }
                )
            bar.update()
        doc = {
            "info": {"description": f"cvlab synthetic FLIR thermal ({layout}, seed {seed})"},
            "licenses": [],
            "categories": CATEGORY_TABLES[layout],
            "images": images,
            "annotations": annotations,
        }
        split_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(split_dir / ANNOTATION_FILES[layout], json.dumps(doc))
        if layout == "v2":
            atomic_write_text(split_dir / "index.json", json.dumps({"frames": index_frames}))
    bar.close()
    return root


@dataclass
class SyntheticRgbSet:
    """What :func:`write_synthetic_rgb_set` wrote: ``root/images/*.jpg``, ``root/labels/*.txt``
    (KITTI) and ``root/tfrecords/rgb-fold-*`` (TAO ``dataset_convert`` schema; fold 0 =
    validation)."""

    root: Path
    class_names: tuple[str, ...]
    tfrecords: Any  # cvlab.formats.tfrecords.TFRecordResult

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def labels_dir(self) -> Path:
        return self.root / "labels"

    @property
    def tfrecords_pattern(self) -> str:
        """Glob of the TFRecord shards, as :func:`cvlab.train.trainer.train` takes it."""
        return str(self.root / "tfrecords" / "rgb-fold-*")


def write_synthetic_rgb_frames(
    root: str | os.PathLike,
    num_images: int,
    seed: int = 0,
    image_size: tuple[int, int] = (640, 384),
    *,
    classes: Sequence[str] = PEOPLENET_CLASSES,
    stream: int = 0,
    progress: bool = False,
    prefix: str = "rgb",
) -> Counter:
    """Daylight frames ``root/images/<prefix>_NNNNN.jpg`` and their KITTI labels
    ``root/labels/<prefix>_NNNNN.txt`` (other ``<prefix>_*`` frames there are removed); returns
    the objects written per class. Other files in those folders are left alone."""
    from cvlab.formats.kitti import write_kitti

    root = Path(root)
    gen = SyntheticThermalGenerator(image_size, seed, style="rgb")
    keep, objects = set(), Counter()
    for i in tqdm(range(int(num_images)), desc="synthetic RGB", disable=not progress):
        frame = gen.render(i, stream)
        stem = f"{prefix}_{i:05d}"
        keep.add(stem)
        bgr = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
        _write_image(root / "images" / f"{stem}.jpg", bgr, (cv2.IMWRITE_JPEG_QUALITY, 95))
        truth = frame.to_detections(classes)
        write_kitti(root / "labels" / f"{stem}.txt", truth, False)
        objects.update(truth.names)
    for folder in ("images", "labels"):
        for path in (root / folder).glob(f"{prefix}_*"):
            if path.stem not in keep:
                path.unlink()
    return objects


def write_synthetic_rgb_set(
    output_dir: str | os.PathLike,
    num_images: int = 200,
    seed: int = 0,
    image_size: tuple[int, int] = (640, 384),
    *,
    classes: Sequence[str] = PEOPLENET_CLASSES,
    val_split: float = 20,
    num_shards: int = 2,
    stream: int = 0,
    progress: bool = False,
) -> SyntheticRgbSet:
    """A small daylight RGB training set with PeopleNet's classes: JPEG frames, KITTI labels
    and TAO TFRecords (:func:`cvlab.formats.tfrecords.write_tfrecords`, ``val_split`` percent in
    fold 0). Frames of earlier runs that this run does not write are removed.

    Example:
        >>> s = write_synthetic_rgb_set(tempfile.mkdtemp(), 10)  # doctest: +SKIP
        >>> s.tfrecords.frames_per_fold  # doctest: +SKIP
        {0: 2, 1: 8}
    """
    from cvlab.formats.tfrecords import write_tfrecords

    root = Path(output_dir)
    write_synthetic_rgb_frames(
        root, num_images, seed, image_size, classes=classes, stream=stream, progress=progress
    )
    result = write_tfrecords(
        root,
        root / "tfrecords" / "rgb",
        val_split=val_split,
        num_shards=num_shards,
        progress=progress,
    )
    return SyntheticRgbSet(root, tuple(classes), result)
