"""Synthetic thermal data: determinism, exact boxes, real v1/v2 on-disk layouts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cvlab.datasets.synthetic import SyntheticThermalGenerator, generate_synthetic_flir
from cvlab.formats.flir_coco import load_flir


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


# --- styles: thermal (byte-identical to before the rgb style) and rgb (daylight, PeopleNet) ---
# sha256 of thermal frames rendered before the rgb style existed: the default must not change.
THERMAL_GOLDEN = {
    (7, 3, 0): "66790ab20e084baa0c1d565334046a92f3261b847b638cf016576a625046714d",
    (0, 0, 1): "246c5dbde90817cc737b1b58bbdc0c1184f379e6bc7b0fcc460ef265fa967b87",
}


def _sha(image: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(image.tobytes()).hexdigest()


@pytest.mark.parametrize("style", ["thermal", "rgb"])
def test_both_styles_are_deterministic_by_seed(style: str) -> None:
    make = lambda seed: SyntheticThermalGenerator((320, 256), seed, style=style)  # noqa: E731
    a, b, c = make(5).render(2, stream=1), make(5).render(2, stream=1), make(6).render(2, 1)
    assert _sha(a.image) == _sha(b.image) and a.objects == b.objects
    assert _sha(a.image) != _sha(c.image)
    assert a.image.ndim == (3 if style == "rgb" else 2)


def test_thermal_default_is_byte_identical_to_the_golden_frames() -> None:
    for (seed, index, stream), digest in THERMAL_GOLDEN.items():
        frame = SyntheticThermalGenerator(seed=seed).render(index, stream)
        assert _sha(frame.image) == digest, (seed, index, stream)
        assert {o.kind for o in frame.objects} <= {"person", "car", "dog", "light"}


def test_rgb_people_have_skin_faces_clothes_and_bags() -> None:
    gen = SyntheticThermalGenerator((640, 384), seed=3, style="rgb")
    faces = bags = people = 0
    for i in range(10):
        frame = gen.render(i)
        img = frame.image.astype(int)
        assert frame.image.shape == (384, 640, 3)
        assert np.abs(img[..., 0] - img[..., 2]).mean() > 10  # colour, not grey
        persons = [o.xyxy for o in frame.objects if o.kind == "person"]
        people += len(persons)
        for obj in frame.objects:
            x1, y1, x2, y2 = obj.xyxy
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 384
            if obj.kind == "face":
                faces += 1
                # the head sits at the top of its person's box
                assert any(
                    p[0] - 1 <= x1 and x2 <= p[2] + 1 and abs(y1 - p[1]) <= 1 for p in persons
                )
            if obj.kind == "bag":
                bags += 1
                assert min(x2 - x1, y2 - y1) >= 6
    assert people >= 20 and faces >= 0.7 * people and 0.5 * people <= bags <= people


@pytest.mark.parametrize("size", [(480, 288), (320, 192)])
def test_rgb_people_scale_with_the_frame_stay_apart_and_keep_their_heads(size) -> None:
    """Daylight scenes a small model input can learn: people a third of the frame high or more,
    never stacked on one another (no two person boxes overlap much), heads inside the frame."""
    from cvlab.train.evaluate import box_iou

    width, height = size
    gen = SyntheticThermalGenerator(size, seed=4, style="rgb")
    heights, worst_iou = [], 0.0
    for i in range(30):
        frame = gen.render(i)
        persons = np.array([o.xyxy for o in frame.objects if o.kind == "person"], float).reshape(
            -1, 4
        )
        heights += list((persons[:, 3] - persons[:, 1]) / height)
        for k in range(1, len(persons)):
            worst_iou = max(worst_iou, float(box_iou(persons[:k], persons[k]).max()))
        for obj in frame.objects:
            if obj.kind == "face":
                x1, y1, x2, y2 = obj.xyxy
                assert y1 >= 1 and y2 - y1 >= 0.04 * height, (i, obj)  # not a cut-off sliver
    assert len(heights) >= 40 and min(heights) >= 0.25 and np.median(heights) >= 0.5
    assert worst_iou < 0.3


def test_rgb_labels_are_the_visible_pixels_of_each_part() -> None:
    """A nearer object hides what it covers: the label shrinks to the visible pixels, and a
    part mostly hidden (or a face or bag under 6x6 pixels) is not labelled at all."""
    from cvlab.datasets.synthetic import _visible_objects

    def mask(x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
        m = np.zeros((100, 100), bool)
        m[y1:y2, x1:x2] = True
        return m

    person, face, bag, small = (
        mask(10, 10, 30, 90),
        mask(14, 10, 26, 22),
        mask(30, 50, 50, 70),
        mask(60, 60, 65, 65),
    )
    drawn = {"person": int(person.sum()), "face": int(face.sum()), "bag": int(bag.sum())}
    person[60:90, 10:30] = False  # a nearer car hides the legs (37.5 % of the person)
    face[10:22, 14:23] = False  # and three quarters of the face
    bag[50:70, 30:40] = False  # and half of the bag
    parts = [
        ("person", person, 0, drawn["person"]),
        ("face", face, 0, drawn["face"]),
        ("bag", bag, 0, drawn["bag"]),
        ("bag", small, 1, int(small.sum())),
    ]
    labels = {o.kind: o.xyxy for o in _visible_objects(parts)}
    assert labels == {"person": (10, 10, 30, 60), "bag": (40, 50, 50, 70)}


def test_rgb_face_box_is_skin_coloured_below_the_hair() -> None:
    gen = SyntheticThermalGenerator((640, 384), seed=8, style="rgb")
    checked = 0
    for i in range(6):
        frame = gen.render(i)
        for obj in frame.objects:
            x1, y1, x2, y2 = obj.xyxy
            if obj.kind == "face" and y2 - y1 >= 12:
                lower = frame.image[(y1 + y2) // 2 + 2 : y2 - 1, x1 + 2 : x2 - 2].reshape(-1, 3)
                r, g, b = np.median(lower, axis=0)
                checked += 1
                assert r >= b, (i, obj)  # skin tones: red >= blue
    assert checked >= 5


def test_write_synthetic_rgb_set_kitti_and_tfrecords(tmp_path: Path) -> None:
    from cvlab.datasets.synthetic import write_synthetic_rgb_set
    from cvlab.formats.kitti import read_kitti
    from cvlab.formats.tfrecords import read_tfrecords

    out = write_synthetic_rgb_set(tmp_path / "rgb", num_images=10, seed=2, num_shards=1)
    assert len(list(out.images_dir.glob("*.jpg"))) == 10
    gen = SyntheticThermalGenerator((640, 384), 2, style="rgb")
    frame = gen.render(4)
    gt = read_kitti(out.labels_dir / "rgb_00004.txt", (640, 384), ("person", "bag", "face"))
    expected = [o for o in frame.objects if o.kind in ("person", "bag", "face")]
    assert sorted(gt.names) == sorted(o.kind for o in expected)
    np.testing.assert_allclose(
        sorted(map(tuple, gt.xyxy)), sorted(o.xyxy for o in expected), atol=0.01
    )
    df = read_tfrecords(out.tfrecords_pattern)
    assert set(df.fold) == {0, 1} and df.frame_id.nunique() == 10
    classes = set(df.object_class.dropna())  # frames without objects: one NaN row
    assert classes <= {"person", "bag", "face"} and "face" in classes
    again = write_synthetic_rgb_set(tmp_path / "rgb", num_images=6, seed=2, num_shards=1)
    assert len(list(again.images_dir.glob("*.jpg"))) == 6  # no stale frames of the first run
    assert read_tfrecords(again.tfrecords_pattern).frame_id.nunique() == 6


def test_bad_style_name() -> None:
    with pytest.raises(ValueError, match="style"):
        SyntheticThermalGenerator(style="infrared")  # type: ignore[arg-type]
