"""Synthetic thermal data: determinism, exact boxes, real v1/v2 on-disk layouts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import flir_fixtures
import numpy as np
import pytest

from cvlab.flir.coco import load_flir
from cvlab.flir.synthetic import SyntheticThermalGenerator, generate_synthetic_flir

# shared module-scoped fixtures (tests/flir_fixtures.py)
synthetic_v1 = flir_fixtures.synthetic_v1
synthetic_v2 = flir_fixtures.synthetic_v2


def test_frames_are_deterministic_by_seed() -> None:
    a, b = SyntheticThermalGenerator(seed=7).render(3), SyntheticThermalGenerator(seed=7).render(3)
    assert np.array_equal(a.image, b.image) and a.boxes_xyxy == b.boxes_xyxy
    c = SyntheticThermalGenerator(seed=8).render(3)
    assert not np.array_equal(a.image, c.image)


def test_people_are_warm_varied_and_tightly_boxed() -> None:
    gen = SyntheticThermalGenerator(seed=11)
    heights, warm_edges = [], 0
    n_people = 0
    for i in range(12):
        frame = gen.render(i)
        img = frame.image.astype(np.float32)
        background = np.median(img)
        for obj in frame.objects:
            x1, y1, x2, y2 = obj.xyxy
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 512
            if obj.kind != "person":
                continue
            n_people += 1
            heights.append(y2 - y1)
            crop = img[y1:y2, x1:x2]
            assert crop.max() > background + 60  # warm figure on a cool background
            # tight box: the top row and the side columns touch warm pixels
            warm_edges += (crop[0].max() > background + 40) and (crop[:, 0].max() > background + 40)
    assert n_people >= 20
    assert min(heights) <= 60 and max(heights) >= 150  # far and near people
    assert warm_edges >= 0.8 * n_people


def test_generator_gt_as_detections() -> None:
    frame = SyntheticThermalGenerator(seed=2).render(1)
    dets = frame.to_detections(("person", "car"))
    assert dets.image_size == (640, 512)
    assert len(dets) == sum(o.kind in ("person", "car") for o in frame.objects)


def test_v1_layout_like_the_real_download(synthetic_v1: Path) -> None:
    for split in ("train", "val", "video"):
        assert (synthetic_v1 / split / "thermal_annotations.json").is_file()
        assert (synthetic_v1 / split / "RGB").is_dir()
    doc = json.loads((synthetic_v1 / "train" / "thermal_annotations.json").read_text())
    cats = {c["id"]: c["name"] for c in doc["categories"]}
    assert len(cats) == 80
    assert (cats[1], cats[2], cats[3], cats[17], cats[79]) == (
        "person",
        "bicycle",
        "car",
        "dog",
        "other vehicle",
    )
    first = doc["images"][0]
    assert first["file_name"] == "thermal_8_bit/FLIR_00001.jpeg" and first["width"] == 640
    jpeg = cv2.imread(str(synthetic_v1 / "train" / first["file_name"]), cv2.IMREAD_UNCHANGED)
    assert jpeg.shape == (512, 640) and jpeg.dtype == np.uint8
    tiff = cv2.imread(
        str(synthetic_v1 / "train/thermal_16_bit/FLIR_00001.tiff"), cv2.IMREAD_UNCHANGED
    )
    assert tiff.dtype == np.uint16 and tiff.shape == (512, 640) and tiff.min() >= 7000
    video = json.loads((synthetic_v1 / "video" / "thermal_annotations.json").read_text())
    assert video["images"][0]["file_name"].startswith("thermal_8_bit/FLIR_video_")


def test_v2_layout_like_the_real_download(synthetic_v2: Path) -> None:
    split = synthetic_v2 / "images_thermal_train"
    doc = json.loads((split / "coco.json").read_text())
    cats = {c["id"]: c["name"] for c in doc["categories"]}
    expected = {1: "person", 2: "bike", 3: "car", 4: "motor", 6: "bus", 7: "train", 8: "truck",
                10: "light", 11: "hydrant", 12: "sign", 17: "dog", 37: "skateboard",
                73: "stroller", 77: "scooter", 79: "other vehicle"}  # fmt: skip
    assert expected.items() <= cats.items()
    assert (split / "index.json").is_file()
    assert all(im["file_name"].startswith("data/video-") for im in doc["images"])
    frame = cv2.imread(str(split / doc["images"][0]["file_name"]), cv2.IMREAD_UNCHANGED)
    assert frame.shape == (512, 640, 3)
    assert {p.name for p in synthetic_v2.iterdir()} == {
        "images_thermal_train", "images_thermal_val", "video_thermal_test"
    }  # fmt: skip


def test_boxes_on_disk_equal_the_rendered_ones(synthetic_v2: Path) -> None:
    gen = SyntheticThermalGenerator(seed=4)
    ds = load_flir(synthetic_v2, "train")
    for index in (0, 5):
        frame = gen.render(index, stream=0)
        im = next(i for i in ds.images if i.image_id == index)
        on_disk = sorted(tuple(int(v) for v in a.bbox) for a in im.annotations)
        assert on_disk == sorted(o.bbox for o in frame.objects)
        written = cv2.imread(str(im.path), cv2.IMREAD_GRAYSCALE).astype(int)
        assert np.abs(written - frame.image).mean() < 3  # JPEG of the same frame


def test_bad_layout_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layout"):
        generate_synthetic_flir(tmp_path, layout="v3")  # type: ignore[arg-type]
