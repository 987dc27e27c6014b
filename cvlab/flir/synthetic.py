"""Synthetic FLIR-like thermal data with exact ground truth, in the real v1 and v2 layouts.

Frames are 8-bit grey thermal images: cool cluttered backgrounds (sky/road gradient, building
blocks with windows, lane marks, noise) with warm person-shaped figures (head, torso, arms, legs;
30-250 px tall, varied stride and arm swing, some cut off at the image edges), plus distractors
with their own categories: warm cars, dogs and street-light poles (the lamp is labelled as a
traffic light). Ground-truth boxes are the exact extent of each drawn object's visible pixels.
Everything is numpy/OpenCV drawing and deterministic by ``seed``.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from tqdm.auto import tqdm

from cvlab.detections import Detections
from cvlab.kitti import atomic_write_text

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


class SyntheticThermalGenerator:
    """Renders FLIR-like thermal frames with exact boxes; frame ``i`` depends only on seed and i.

    Args:
        image_size: ``(width, height)``, FLIR's 640x512 by default.
        seed: base seed.
        max_people: up to this many people per frame.
        empty_fraction: share of frames with no objects at all.
    """

    def __init__(
        self,
        image_size: tuple[int, int] = (640, 512),
        seed: int = 0,
        max_people: int = 6,
        empty_fraction: float = 0.05,
    ) -> None:
        self.width, self.height = int(image_size[0]), int(image_size[1])
        self.seed = int(seed)
        self.max_people = max_people
        self.empty_fraction = empty_fraction

    # -- background ---------------------------------------------------------------------------
    def _background(self, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        w, h = self.width, self.height
        horizon = int(h * rng.uniform(0.3, 0.55))
        sky_top, sky_bottom = rng.uniform(20, 50), rng.uniform(45, 80)
        road_top, road_bottom = rng.uniform(55, 90), rng.uniform(80, 125)
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
                cv2.rectangle(img, (x, top), (x + bw, horizon), float(level), -1)
                for wy in range(top + 8, horizon - 10, int(rng.uniform(14, 26))):
                    for wx in range(x + 6, x + bw - 10, int(rng.uniform(14, 24))):
                        if rng.random() < 0.6:
                            cv2.rectangle(img, (wx, wy), (wx + 6, wy + 8), float(level + 18), -1)
            x += bw + int(rng.uniform(0, 30))
        for _ in range(int(rng.integers(1, 4))):  # lane marks / kerbs
            y = int(rng.uniform(horizon + 10, h))
            cv2.line(
                img, (0, y), (w, y + int(rng.uniform(-40, 40))), float(rng.uniform(70, 140)), 2
            )
        img = cv2.GaussianBlur(img, (0, 0), 2.0)
        img += 4.0 * rng.standard_normal(img.shape, dtype=np.float32)
        return img, horizon

    # -- objects ------------------------------------------------------------------------------
    def _person(
        self, layer: np.ndarray, rng: np.random.Generator, cx: float, foot: float, ht: float
    ) -> None:
        t = float(rng.uniform(175, 245))
        head_r = max(2, int(0.065 * ht))
        neck = foot - ht + 2 * head_r
        hip = foot - 0.48 * ht
        tw = max(3, int(0.26 * ht * rng.uniform(0.8, 1.15)))
        cv2.circle(layer, (int(cx), int(foot - ht + head_r)), head_r, t + 8, -1, cv2.LINE_AA)
        cv2.ellipse(
            layer,
            (int(cx), int((neck + hip) / 2)),
            (tw // 2, max(2, int((hip - neck) / 2))),
            0,
            0,
            360,
            t,
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
                t - 12,
                limb,
                cv2.LINE_AA,
            )
        swing = rng.uniform(-0.18, 0.18) * ht
        shoulder = neck + 0.05 * ht
        for sign in (-1, 1):  # arms
            cv2.line(
                layer,
                (int(cx + sign * tw * 0.45), int(shoulder)),
                (int(cx + sign * (tw * 0.55) - sign * swing / 2), int(hip + 0.02 * ht)),
                t - 6,
                max(2, limb - 1),
                cv2.LINE_AA,
            )

    def _car(
        self, layer: np.ndarray, rng: np.random.Generator, cx: float, base: float, cw: float
    ) -> None:
        ch = cw * rng.uniform(0.4, 0.55)
        x1, y1 = int(cx - cw / 2), int(base - ch)
        body = float(rng.uniform(110, 170))
        cv2.rectangle(
            layer, (x1, int(base - ch * 0.6)), (int(x1 + cw), int(base - ch * 0.12)), body, -1
        )
        cv2.rectangle(
            layer,
            (int(x1 + cw * 0.18), y1),
            (int(x1 + cw * 0.82), int(base - ch * 0.6)),
            body - 35,
            -1,
        )
        r = max(2, int(ch * 0.16))
        for wx in (x1 + cw * 0.2, x1 + cw * 0.8):  # warm tyres
            cv2.circle(
                layer, (int(wx), int(base - r)), r, float(rng.uniform(190, 235)), -1, cv2.LINE_AA
            )
        cv2.rectangle(
            layer,
            (x1, int(base - ch * 0.45)),
            (int(x1 + cw * 0.12), int(base - ch * 0.2)),
            230.0,
            -1,
        )

    def _dog(
        self, layer: np.ndarray, rng: np.random.Generator, cx: float, foot: float, dh: float
    ) -> None:
        t = float(rng.uniform(170, 230))
        bw, bh = dh * 0.9, dh * 0.35
        body_y = foot - dh * 0.6
        cv2.ellipse(
            layer,
            (int(cx), int(body_y)),
            (max(2, int(bw / 2)), max(1, int(bh / 2))),
            0,
            0,
            360,
            t,
            -1,
        )
        d = 1 if rng.random() < 0.5 else -1
        cv2.circle(
            layer, (int(cx + d * bw / 2), int(foot - dh * 0.85)), max(2, int(dh * 0.17)), t + 5, -1
        )
        for lx in (cx - bw * 0.35, cx + bw * 0.35):
            cv2.line(
                layer,
                (int(lx), int(body_y)),
                (int(lx), int(foot - 1)),
                t - 10,
                max(1, int(dh * 0.1)),
            )

    def _light(
        self, layer: np.ndarray, rng: np.random.Generator, cx: float, foot: float, ph: float
    ) -> tuple[int, int, int, int]:
        cv2.line(
            layer, (int(cx), int(foot)), (int(cx), int(foot - ph)), 95.0, max(2, int(ph * 0.02))
        )
        lw, lh = max(4, int(ph * 0.06)), max(8, int(ph * 0.15))
        x1, y1 = int(cx - lw / 2), int(foot - ph - lh)
        lamp = np.zeros_like(layer)
        cv2.rectangle(lamp, (x1, y1), (x1 + lw, y1 + lh), float(rng.uniform(150, 200)), -1)
        np.maximum(layer, lamp, out=layer)
        return _mask_box(lamp > 0) or (0, 0, 0, 0)

    def render(self, index: int, stream: int = 0) -> SyntheticFrame:
        """Frame ``index`` (of an independent ``stream``, e.g. one per split)."""
        rng = np.random.default_rng((self.seed, int(stream), int(index)))
        img, horizon = self._background(rng)
        w, h = self.width, self.height
        objects: list[SyntheticObject] = []
        if rng.random() >= self.empty_fraction:
            kinds = ["light"] * int(rng.integers(0, 3)) + ["car"] * int(rng.integers(0, 4))
            kinds += ["dog"] * int(rng.random() < 0.25)
            kinds += ["person"] * int(rng.integers(1, self.max_people + 1))
            depth = {k: i for i, k in enumerate(("light", "car", "dog", "person"))}
            placed = [(float(rng.uniform(horizon + 5, h * 1.02)), depth[k], k) for k in kinds]
            for foot, _, kind in sorted(placed):  # far (small) first, near objects occlude them
                near = (foot - horizon) / max(1.0, h - horizon)
                edge = rng.random() < 0.12  # partly outside the frame
                cx = float(
                    rng.uniform(-0.05 * w, 1.05 * w) if edge else rng.uniform(0.03 * w, 0.97 * w)
                )
                layer = np.zeros((h, w), np.float32)
                box = None
                if kind == "person":
                    ht = float(np.clip(30 + near * 230 * rng.uniform(0.7, 1.1), 30, 250))
                    self._person(layer, rng, cx, foot, ht)
                elif kind == "car":
                    self._car(layer, rng, cx, foot, float(np.clip(40 + near * 260, 40, 300)))
                elif kind == "dog":
                    self._dog(layer, rng, cx, foot, float(np.clip(12 + near * 60, 12, 70)))
                else:
                    box = self._light(
                        layer,
                        rng,
                        cx,
                        horizon + rng.uniform(0, 20),
                        horizon * rng.uniform(0.5, 0.9),
                    )
                mask = layer > 0
                full = _mask_box(mask) if box is None else box
                if full is None or full[2] < 3 or full[3] < 6 and kind != "car":
                    continue
                img[mask] = layer[mask] + 3.0 * rng.standard_normal(
                    int(mask.sum()), dtype=np.float32
                )
                objects.append(SyntheticObject(kind, full))
        img = cv2.GaussianBlur(img, (0, 0), 0.6)
        return SyntheticFrame(np.clip(img, 0, 255).astype(np.uint8), objects)


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Exact ``(x, y, w, h)`` of the non-zero pixels, or None when there are none."""
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    return (int(x), int(y), int(w), int(h)) if w and h else None


def _write_image(path: Path, image: np.ndarray, params: Sequence[int] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if not cv2.imwrite(str(tmp), image, list(params)):
        raise OSError(f"{path}: OpenCV could not write the image")
    os.replace(tmp, path)


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
    ``num_images // 20`` (at least 1) unless given. Point :func:`cvlab.flir.coco.load_flir` or
    :func:`cvlab.flir.convert.prepare_flir_dataset` at the returned root, exactly as at a real
    download.
    """
    if layout not in ("v1", "v2"):
        raise ValueError(f"layout must be 'v1' or 'v2', got {layout!r}")
    from cvlab.flir.coco import ANNOTATION_FILES, SPLIT_DIRS

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
