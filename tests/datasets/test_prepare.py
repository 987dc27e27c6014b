"""FLIR -> KITTI labels + resized images: box rules, classes, 16-bit input, resume, bad input."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.flir import ann, image, write_frame, write_v1_split

from cvlab.datasets.classes import ClassMapping
from cvlab.datasets.prepare import kitti_lines, prepare_flir_dataset
from cvlab.formats.flir_coco import FlirAnnotation, load_flir
from cvlab.formats.kitti import read_kitti
from cvlab.formats.tfrecords import read_split
from cvlab.images import UnreadableImageError, image_size, load_thermal, normalize_16bit


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
    assert image_size(truncated) == (53, 37)
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
    # The dataset_convert spec to redo the TFRecords with TAO, byte for byte as always written.
    root = str(out.resolve())
    assert r.spec_path.read_text() == (
        f'kitti_config {{\n  root_directory_path: "{root}"\n  image_dir_name: "images"\n'
        '  label_dir_name: "labels"\n  image_extension: ".jpg"\n  num_partitions: 2\n'
        f'  num_shards: 2\n  partition_mode: "random"\n  val_split: 10.0\n}}\n'
        f'image_directory_path: "{root}"\n'
    )
    # 2 frames, 10 % validation: no validation frame, so the training frames are fold 0 (TAO).
    split = read_split(r.tfrecords_dir)
    assert split.manifests == [r.split_manifest_path] and r.frames_per_fold == {0: 2}
    assert sorted(split.frame_ids(0)) == ["FLIR_00001", "FLIR_00002"]


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


def _state(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``directory`` with its bytes and mtime (folders as empty entries)."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        if p.is_file()
        else (b"", 0)
        for p in sorted(directory.rglob("*"))
    }


def _boxes_in_tfrecords(out: Path, frame: str) -> list[list[float]]:
    from cvlab.formats.tfrecords import read_tfrecords

    df = read_tfrecords(out / "tfrecords")
    rows = df[df.frame_id == f"images/{frame}"].dropna(subset=["object_class"])
    return rows[["x1", "y1", "x2", "y2"]].to_numpy().tolist()


def test_edited_annotations_update_labels_and_tfrecords(tmp_path: Path) -> None:
    """Issue 14.9: a moved box reaches the label and the TFRecords; the images are reused."""
    src, out = tmp_path / "src", tmp_path / "out"
    images = [image(0), image(1), image(2)]
    anns = [ann(1, 0, 1, [100, 50, 20, 80]), ann(2, 1, 1, [10, 10, 40, 40])]
    write_v1_split(src, images, anns)
    first = prepare_flir_dataset(src, out, num_shards=1, progress=False)
    assert (first.images_written, first.labels_updated, first.annotations_changed) == (3, 0, False)
    np.testing.assert_allclose(
        _boxes_in_tfrecords(out, "FLIR_00001"), [[150, 53.12, 180, 138.12]], atol=0.01
    )
    stamp = (out / "images" / "FLIR_00001.jpg").stat().st_mtime_ns

    anns[0]["bbox"] = [200, 100, 20, 80]  # move the box
    anns.append(ann(3, 2, 3, [0, 0, 64, 64]))  # a car: not a kept class, label stays empty
    write_v1_split(src, images, anns, make_files=False)
    again = prepare_flir_dataset(src, out, num_shards=1, progress=False)
    assert (again.images_written, again.images_resumed, again.labels_updated) == (0, 3, 1)
    assert again.annotations_changed and "1 labels updated" in again.summary()
    assert (out / "images" / "FLIR_00001.jpg").stat().st_mtime_ns == stamp  # image reused
    moved = read_kitti(out / "labels" / "FLIR_00001.txt", (960, 544), ("person",))
    np.testing.assert_allclose(moved.xyxy, [[300, 106.25, 330, 191.25]], atol=0.01)
    np.testing.assert_allclose(
        _boxes_in_tfrecords(out, "FLIR_00001"), [[300, 106.25, 330, 191.25]], atol=0.01
    )
    assert (out / "labels" / "FLIR_00003.txt").read_text() == ""

    # With --classes person,car the options differ: everything is redone, the car appears.
    cars = prepare_flir_dataset(src, out, classes="person,car", num_shards=1, progress=False)
    assert cars.images_written == 3 and _boxes_in_tfrecords(out, "FLIR_00003") == [
        [0.0, 0.0, 96.0, 68.0]
    ]
    same = prepare_flir_dataset(src, out, classes="person,car", num_shards=1, progress=False)
    assert (same.images_resumed, same.labels_updated, same.annotations_changed) == (3, 0, False)


def test_hand_edited_label_is_restored(tmp_path: Path) -> None:
    """Labels always follow the annotations, whatever happened to the label file."""
    src, out = tmp_path / "src", tmp_path / "out"
    write_v1_split(src, [image(0)], [ann(1, 0, 1, [100, 50, 20, 80])])
    prepare_flir_dataset(src, out, num_shards=1, progress=False)
    label = out / "labels" / "FLIR_00001.txt"
    good = label.read_text()
    label.write_text("")
    r = prepare_flir_dataset(src, out, num_shards=1, progress=False)
    assert r.labels_updated == 1 and not r.annotations_changed and label.read_text() == good


def _no_images(src: Path) -> None:
    write_v1_split(src, [], [ann(1, 0, 1, [0, 0, 5, 5])])


def _all_skipped(src: Path) -> None:
    names = ["../outside.jpeg", "/etc/hostname", "thermal_8_bit/../../x.jpeg"]
    images = [{"id": i, "width": 640, "height": 512, "file_name": n} for i, n in enumerate(names)]
    write_v1_split(src, images, [ann(1, 0, 1, [0, 0, 5, 5])])


def _all_unreadable(src: Path) -> None:
    write_v1_split(src, [image(0), image(1)], [ann(1, 0, 1, [0, 0, 5, 5])])
    for frame in (src / "train" / "thermal_8_bit").iterdir():
        frame.write_bytes(b"not a jpeg")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_no_images, "lists no images"),
        (_all_skipped, r"none of its 3 images can be used \(3 path outside the dataset root\)"),
        (
            _all_unreadable,
            r"none of its 2 images can be used \(2 unreadable, e\.g\. \S+/FLIR_0000\d\.jpeg: cannot decode image \(truncated, corrupt or not an image\)\), nothing",
        ),
    ],
)
def test_dataset_without_usable_images_fails_and_writes_nothing(
    tmp_path: Path, make, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14.10: one line naming the annotation file, exit 2, no output folder at all."""
    from cvlab.cli import main
    from cvlab.errors import CvlabError
    from cvlab.formats.flir_coco import FlirFormatError

    src = tmp_path / "src"
    make(src)
    ann_file = str(src.resolve() / "train" / "thermal_annotations.json")
    out = tmp_path / "new" / "out"
    with pytest.raises(FlirFormatError, match=message) as info:
        prepare_flir_dataset(src, out, progress=False)
    assert isinstance(info.value, CvlabError) and info.value.path == ann_file
    assert info.value.field == "images" and "\n" not in str(info.value)
    assert not (tmp_path / "new").exists()
    assert main(["flir", "prepare", str(src), str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err  # the progress bar, then the error
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"cvlab flir prepare: error: {ann_file}: ")
    assert "Traceback" not in err and not (tmp_path / "new").exists()


def test_unusable_rerun_leaves_an_earlier_output_untouched(tmp_path: Path) -> None:
    """Issue 14.10: the earlier marker, images, labels, TFRecords and spec stay as they were."""
    src, out = tmp_path / "src", tmp_path / "out"
    write_v1_split(src, [image(0), image(1)], [ann(1, 0, 1, [100, 50, 20, 80])])
    prepare_flir_dataset(src, out, num_shards=1, progress=False)
    before = _state(out)
    future = time.time() + 5
    for frame in (src / "train" / "thermal_8_bit").iterdir():
        frame.write_bytes(b"broken")  # newer than the outputs: not reusable, and unreadable
        os.utime(frame, (future, future))
    from cvlab.formats.flir_coco import FlirFormatError

    with pytest.raises(FlirFormatError, match="2 unreadable"):
        prepare_flir_dataset(src, out, classes="person,car", num_shards=1, progress=False)
    assert _state(out) == before


def test_cli_names_file_and_unknown_image_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14.11: the summary names the annotation file and the ids, first 10 and a count."""
    from cvlab.cli import main

    src = tmp_path / "src"
    orphans = [ann(10 + k, 100 + k, 1, [1, 1, 9, 9]) for k in range(12)]
    write_v1_split(
        src, [image(0)], [ann(1, 0, 1, [1, 1, 9, 9]), ann(2, 100, 1, [2, 2, 9, 9]), *orphans]
    )
    assert main(["flir", "prepare", str(src), str(tmp_path / "out"), "--num-shards", "1"]) == 0
    out = capsys.readouterr().out
    ann_file = src.resolve() / "train" / "thermal_annotations.json"
    ids = ", ".join(str(100 + k) for k in range(10))
    line = (
        f"  {ann_file}: 13 annotations point at 12 image ids not in its 'images': {ids} (+2 more)"
    )
    assert line in out.splitlines()


def test_symlinked_image_folder(tmp_path: Path) -> None:
    """Issue 14.12: images kept on another disk, linked into the dataset, are converted."""
    src, elsewhere = tmp_path / "src", tmp_path / "other_disk" / "thermal"
    for i in range(3):
        write_frame(elsewhere / f"FLIR_{i + 1:05d}.jpeg")
    (src / "train").mkdir(parents=True)
    (src / "train" / "thermal_8_bit").symlink_to(elsewhere, target_is_directory=True)
    sneaky = image(2, "../../../other_disk/thermal/FLIR_00003")  # '..' is refused, link or not
    write_v1_split(
        src, [image(0), image(1), sneaky], [ann(1, 0, 1, [100, 50, 20, 80])], make_files=False
    )
    r = prepare_flir_dataset(src, tmp_path / "out", num_shards=1, progress=False)
    assert (r.images, r.images_written, r.unreadable_images) == (2, 2, [])
    assert [reason for _, reason in r.skipped_images] == ["path outside the dataset root"]
    dets = read_kitti(r.labels_dir / "FLIR_00001.txt", (960, 544), ("person",))
    np.testing.assert_allclose(dets.xyxy, [[150, 53.12, 180, 138.12]], atol=0.01)
    again = prepare_flir_dataset(src, tmp_path / "out", num_shards=1, progress=False)
    assert (again.images_resumed, again.labels_updated) == (2, 0)


def test_a_failed_tfrecord_write_leaves_no_tfrecords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected fault: the writer's second ``shard_file_name`` call raises a disk error (after
    the first shard). No TFRecords folder, no spec and nothing temporary is left; the images and
    labels done are kept for the rerun, which then writes the whole set."""
    from cvlab.formats import tfrecords as tfr

    src, out = tmp_path / "src", tmp_path / "out"
    write_v1_split(src, [image(i) for i in range(4)], [ann(1, 0, 1, [100, 50, 20, 80])])
    real, calls = tfr.shard_file_name, []

    def disk_full_on_second_shard(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OSError(28, "No space left on device (injected)")
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(tfr, "shard_file_name", disk_full_on_second_shard)
        with pytest.raises(OSError, match="injected"):
            prepare_flir_dataset(src, out, num_shards=2, progress=False)
    assert len(calls) == 2
    assert sorted(p.name for p in out.iterdir()) == ["images", "labels", "prepare_options.json"]
    assert not list(out.rglob(".*"))
    again = prepare_flir_dataset(src, out, num_shards=2, progress=False)
    assert again.images_resumed == 4 and len(again.tfrecord_files) == 2
    assert sorted(read_split(again.tfrecords_dir).frame_ids(0)) == [
        f"FLIR_{i:05d}" for i in (1, 2, 3, 4)
    ]
