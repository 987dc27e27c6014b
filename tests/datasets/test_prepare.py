"""FLIR -> KITTI labels + resized images: box rules, classes, 16-bit input, resume, bad input."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.flir import ann, image, write_v1_split

from cvlab.datasets.classes import ClassMapping
from cvlab.datasets.prepare import kitti_lines, prepare_flir_dataset
from cvlab.formats.flir_coco import FlirAnnotation, load_flir
from cvlab.formats.kitti import read_kitti
from cvlab.images import UnreadableImageError, load_thermal, normalize_16bit, read_image_size


def _a(category: str, bbox: tuple[float, float, float, float]) -> FlirAnnotation:
    return FlirAnnotation(0, 1, 1, category, bbox)


def test_boxes_scale_to_the_written_image() -> None:
    lines, counts = kitti_lines(
        [_a("person", (100, 50, 20, 80))], ClassMapping(), (640, 512), (960, 544)
    )
    fields = lines[0].split()
    assert len(fields) == 15 and fields[0] == "person"
    assert [float(v) for v in fields[4:8]] == pytest.approx([150, 53.125, 180, 138.125], abs=0.01)
    assert set(fields[1:4] + fields[8:]) <= {"0", "0.00"}
    assert counts.objects == {"person": 1}


def test_clip_drop_and_count() -> None:
    anns = [
        _a("person", (-10, 500, 30, 40)),  # partly outside: clipped to x 0..20, y 500..512
        _a("person", (700, 10, 20, 20)),  # fully outside
        _a("person", (10, 10, 0, 20)),  # zero width
        _a("person", (10, 10, 20, -5)),  # negative height
        _a("car", (10, 10, 20, 20)),  # other class
    ]
    lines, c = kitti_lines(anns, ClassMapping(), (640, 512), (640, 512))
    assert len(lines) == 1
    assert [float(v) for v in lines[0].split()[4:8]] == [0, 500, 20, 512]
    assert (c.clipped, c.outside, c.degenerate, dict(c.dropped_class)) == (1, 1, 2, {"car": 1})


def test_class_mapping_aliases_spaces_and_background() -> None:
    m = ClassMapping.parse("person, car ,bike")
    assert m.classes == ("person", "car", "bicycle")
    assert m.map("bike") == m.map("Bicycle") == "bicycle"
    assert m.map("other vehicle") is None
    assert ClassMapping(("other vehicle",)).map("Other Vehicle") == "other_vehicle"
    lines, c = kitti_lines(
        [_a("dog", (1, 1, 30, 30))], ClassMapping(keep_background=True), (640, 512), (640, 512)
    )
    assert lines[0].startswith("dontcare ") and c.objects == {"dontcare": 1}


def test_normalize_16bit_uses_percentiles() -> None:
    raw = np.full((100, 100), 8000, np.uint16)
    raw[:50] = 7000
    raw[0, 0] = 65535  # one hot pixel does not set the scale
    g = normalize_16bit(raw)
    assert g[60, 60] == 255 and g[10, 10] == 0
    assert not normalize_16bit(np.full((4, 4), 7, np.uint16)).any()


def test_size_is_read_from_the_header_without_decoding(tmp_path: Path) -> None:
    ok, buf = cv2.imencode(".png", np.zeros((37, 53), np.uint8))
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(buf.tobytes()[:60])  # header only, pixels missing
    assert read_image_size(truncated) == (53, 37)
    with pytest.raises(UnreadableImageError, match="cut.png"):
        load_thermal(truncated)


def _snapshot(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


def test_prepare_end_to_end_with_bad_input(tmp_path: Path) -> None:
    src = tmp_path / "src"
    images = [
        image(0),
        image(1),  # no annotations -> empty label file
        image(2),  # unreadable -> skipped and listed
        {"id": 3, "width": 640, "height": 512, "file_name": "../../evil.jpeg"},
    ]
    anns = [
        ann(1, 0, 1, [100, 50, 20, 80]),
        ann(2, 0, 3, [0, 0, 50, 50]),
        ann(3, 0, 1, [630, 500, 20, 20]),
        ann(4, 2, 1, [1, 1, 9, 9]),
        ann(5, 3, 1, [1, 1, 9, 9]),
        ann(6, 77, 1, [1, 1, 9, 9]),
    ]
    write_v1_split(src, images, anns)
    (src / "train/thermal_8_bit/FLIR_00003.jpeg").write_bytes(b"not a jpeg")
    before = _snapshot(tmp_path)
    out = tmp_path / "out"
    r = prepare_flir_dataset(
        src, out, classes=("person", "car"), num_shards=2, workers=2, progress=False
    )
    assert r.images == 2 and r.objects == {"person": 2, "car": 1}
    assert r.clipped_boxes == 1
    assert len(r.unreadable_images) == 1 and "FLIR_00003.jpeg" in r.unreadable_images[0]
    assert [reason for _, reason in r.skipped_images] == ["path outside the dataset root"]
    assert r.images_without_annotations == ["FLIR_00002"]
    assert len(r.annotations_without_images) == 1
    assert sorted(p.name for p in r.images_dir.iterdir()) == ["FLIR_00001.jpg", "FLIR_00002.jpg"]
    assert (r.labels_dir / "FLIR_00002.txt").read_text() == ""
    assert not (r.labels_dir / "FLIR_00003.txt").exists()
    rgb = cv2.imread(str(r.images_dir / "FLIR_00001.jpg"), cv2.IMREAD_UNCHANGED)
    assert rgb.shape == (544, 960, 3)
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
    dets = read_kitti(r.labels_dir / "FLIR_00001.txt", (960, 544), ("person", "car"))
    assert dets.xyxy[0].tolist() == pytest.approx([150, 53.12, 180, 138.12], abs=0.01)
    assert dets.xyxy[2].tolist() == pytest.approx([945, 531.25, 960, 544], abs=0.01)  # clipped
    new = _snapshot(tmp_path) - before
    assert all(p.startswith("out") for p in new), new  # nothing written outside the output
    assert not list(out.rglob("*.tmp"))
    assert "2 written" in r.summary() and r.to_pandas().loc["clipped_boxes", "value"] == 1


def test_prepare_resumes_and_redoes_stale_files(synthetic_v1: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = prepare_flir_dataset(synthetic_v1, out, num_shards=1, progress=False)
    assert first.images_written == 12
    img = out / "images" / "FLIR_00001.jpg"
    stamp = img.stat().st_mtime_ns
    again = prepare_flir_dataset(synthetic_v1, out, num_shards=1, progress=False)
    assert (again.images_resumed, again.images_written) == (12, 0)
    assert again.objects == first.objects and img.stat().st_mtime_ns == stamp
    src = synthetic_v1 / "train" / "thermal_8_bit" / "FLIR_00001.jpeg"
    future = time.time() + 5
    os.utime(src, (future, future))  # source newer than its output -> redone
    third = prepare_flir_dataset(synthetic_v1, out, num_shards=1, progress=False)
    assert (third.images_resumed, third.images_written) == (11, 1)
    (out / "images" / "STALE.jpg").write_bytes(b"x")
    (out / "labels" / "STALE.txt").write_text("")
    other = prepare_flir_dataset(
        synthetic_v1, out, classes=("person", "car"), num_shards=1, progress=False
    )
    assert other.images_written == 12  # different options: nothing reused
    assert other.objects["car"] > 0
    assert other.stale_files_removed == 2 and not (out / "images" / "STALE.jpg").exists()


def test_prepare_16bit_v1_and_refuses_v2(
    synthetic_v1: Path, synthetic_v2: Path, tmp_path: Path
) -> None:
    r = prepare_flir_dataset(
        synthetic_v1,
        tmp_path / "o16",
        image_type="16bit",
        splits="val",
        num_shards=1,
        progress=False,
    )
    assert r.images == 1
    out = cv2.imread(str(next(r.images_dir.iterdir())), cv2.IMREAD_GRAYSCALE)
    assert out.shape == (544, 960) and out.max() > 200 and out.min() < 40  # stretched
    with pytest.raises(ValueError, match="only in FLIR v1"):
        prepare_flir_dataset(synthetic_v2, tmp_path / "o2", image_type="16bit", progress=False)


def test_output_must_not_contain_source(synthetic_v2: Path) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        prepare_flir_dataset(synthetic_v2, synthetic_v2.parent, progress=False)


def test_v2_boxes_match_the_json(synthetic_v2: Path, tmp_path: Path) -> None:
    r = prepare_flir_dataset(
        synthetic_v2, tmp_path / "o", classes="person,car", num_shards=1, progress=False
    )
    ds = load_flir(synthetic_v2, "train")
    im = next(i for i in ds.images if len(i.annotations) >= 2)
    keep = [a for a in im.annotations if a.category in ("person", "car")]
    dets = read_kitti(r.labels_dir / f"{im.id}.txt", (960, 544), ("person", "car"))
    want = [
        [
            a.bbox[0] * 1.5,
            a.bbox[1] * 1.0625,
            (a.bbox[0] + a.bbox[2]) * 1.5,
            (a.bbox[1] + a.bbox[3]) * 1.0625,
        ]
        for a in keep
    ]
    np.testing.assert_allclose(dets.xyxy, want, atol=0.01)
    with pytest.raises(UnreadableImageError):
        load_thermal(tmp_path / "missing.jpg")
