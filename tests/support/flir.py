"""Helpers for the FLIR tests: hand-made COCO files in the real v1/v2 layouts, shared datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from cvlab.datasets.synthetic import CATEGORY_TABLES, generate_synthetic_flir

V1_CATEGORIES = CATEGORY_TABLES["v1"]


def write_frame(path: Path, size: tuple[int, int] = (640, 512), value: int = 60) -> Path:
    """A small grey thermal-like JPEG (or PNG/TIFF by suffix) with a warm block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size[1], size[0]), value, np.uint8)
    img[size[1] // 4 : size[1] // 2, size[0] // 4 : size[0] // 3] = 220
    assert cv2.imwrite(str(path), img)
    return path


def write_v1_split(
    root: Path,
    images: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    categories: list[dict[str, Any]] | None = None,
    split: str = "train",
    make_files: bool = True,
) -> Path:
    """Write ``root/<split>/thermal_annotations.json`` and (optionally) the frames it names."""
    split_dir = root / split
    split_dir.mkdir(parents=True, exist_ok=True)
    if make_files:
        for im in images:
            target = (split_dir / im["file_name"]).resolve()
            if target.is_relative_to(root.resolve()) and not target.exists():
                write_frame(target, (im.get("width", 640), im.get("height", 512)))
    doc = {
        "images": images,
        "annotations": annotations,
        "categories": V1_CATEGORIES if categories is None else categories,
    }
    (split_dir / "thermal_annotations.json").write_text(json.dumps(doc))
    return root


def image(i: int, name: str | None = None, **extra: Any) -> dict[str, Any]:
    """A v1 image entry; ``name`` defaults to ``FLIR_<i+1>``."""
    return {
        "id": i,
        "width": 640,
        "height": 512,
        "file_name": f"thermal_8_bit/{name or f'FLIR_{i + 1:05d}'}.jpeg",
        **extra,
    }


def ann(i: int, image_id: int, category_id: int, bbox: list[float]) -> dict[str, Any]:
    return {"id": i, "image_id": image_id, "category_id": category_id, "bbox": bbox}


@pytest.fixture(scope="module")
def synthetic_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic_flir(
        tmp_path_factory.mktemp("v1") / "flir", "v1", num_images=12, seed=3
    )


@pytest.fixture(scope="module")
def synthetic_v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic_flir(
        tmp_path_factory.mktemp("v2") / "flir", "v2", num_images=12, seed=4
    )
