"""FLIR readers: layout detection, category tables by id, file_name paths, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.flir import ann, image, write_frame, write_v1_split

from cvlab.formats.flir_coco import (
    FlirFormatError,
    describe_unknown_image_ids,
    detect_layout,
    load_flir,
)


def test_detects_both_layouts(synthetic_v1: Path, synthetic_v2: Path, tmp_path: Path) -> None:
    assert detect_layout(synthetic_v1) == "v1"
    assert detect_layout(synthetic_v2) == "v2"
    assert detect_layout(synthetic_v2 / "images_thermal_val") == "v2"  # one split folder
    with pytest.raises(FlirFormatError, match="not a FLIR ADAS dataset"):
        detect_layout(tmp_path)


def test_v2_paths_come_from_file_name(synthetic_v2: Path) -> None:
    ds = load_flir(synthetic_v2, split="val")
    assert ds.layout == "v2" and ds.images
    for im in ds.images:
        assert im.file_name.startswith("data/video-") and "-frame-" in im.file_name
        assert im.path == (synthetic_v2 / "images_thermal_val" / im.file_name).resolve()
        assert im.path.is_file()
    all_splits = load_flir(synthetic_v2)
    assert sorted(all_splits.categories) == ["train", "val", "video"]
    assert all_splits.categories["train"][2] == "bike"


def test_categories_map_by_id_not_list_position(tmp_path: Path) -> None:
    # Listed in an order unrelated to the ids; dog is 17 as in FLIR v1 (its README says 18).
    cats = [
        {"id": 17, "name": "dog"},
        {"id": 79, "name": "other vehicle"},
        {"id": 3, "name": "car"},
        {"id": 1, "name": "person"},
    ]
    anns = [ann(1, 0, 1, [1, 2, 3, 4]), ann(2, 0, 17, [5, 6, 7, 8]), ann(3, 0, 79, [1, 1, 9, 9])]
    write_v1_split(tmp_path, [image(0)], anns, cats)
    ds = load_flir(tmp_path)
    assert [a.category for a in ds.images[0].annotations] == ["person", "dog", "other vehicle"]
    assert ds.images[0].annotations[1].bbox == (5.0, 6.0, 7.0, 8.0)


def test_image_path_is_not_rebuilt_from_id(tmp_path: Path) -> None:
    write_v1_split(tmp_path, [image(5, "FLIR_00042")], [ann(1, 5, 1, [0, 0, 10, 10])])
    im = load_flir(tmp_path).images[0]
    assert im.id == "FLIR_00042" and im.image_id == 5
    assert im.path.name == "FLIR_00042.jpeg" and im.path.is_file()


def test_reports_orphans_both_ways(tmp_path: Path) -> None:
    write_v1_split(
        tmp_path, [image(0), image(1)], [ann(1, 0, 1, [0, 0, 5, 5]), ann(2, 99, 1, [0, 0, 5, 5])]
    )
    ds = load_flir(tmp_path)
    assert ds.images_without_annotations == ["FLIR_00002"]
    assert len(ds.annotations_without_images) == 1
    assert (
        "annotations[1]" in ds.annotations_without_images[0]
        and "99" in ds.annotations_without_images[0]
    )


def test_unknown_image_ids_are_named_per_file(tmp_path: Path) -> None:
    """Issue 14.11: which file, which ids (file order), how many boxes each."""
    anns = [ann(1, 0, 1, [0, 0, 5, 5]), ann(2, 99, 1, [0, 0, 5, 5]), ann(3, "x7", 1, [1, 1, 5, 5])]
    write_v1_split(tmp_path, [image(0)], [*anns, ann(4, 99, 3, [2, 2, 5, 5])])
    write_v1_split(tmp_path, [image(0, "FLIR_09999")], [ann(1, 5, 1, [0, 0, 5, 5])], split="val")
    ds = load_flir(tmp_path, ["train", "val"])
    train, val = (str(ds.annotation_files[s]) for s in ("train", "val"))
    assert ds.unknown_image_ids == {train: {99: 2, "x7": 1}, val: {5: 1}}
    assert describe_unknown_image_ids(ds.unknown_image_ids, limit=1) == [
        f"{train}: 3 annotations point at 2 image ids not in its 'images': 99 (+1 more)",
        f"{val}: 1 annotation points at 1 image id not in its 'images': 5",
    ]
    assert ds.listed_images == {train: 1, val: 1}


def test_symlinked_image_folder_is_inside_the_root(tmp_path: Path) -> None:
    """Issue 14.12: names are checked lexically; a linked folder is followed, ``..`` is not."""
    root, disk = tmp_path / "flir", tmp_path / "disk2" / "frames"
    write_frame(disk / "FLIR_00001.jpeg")
    write_frame(disk / "FLIR_00002.jpeg")
    (root / "train").mkdir(parents=True)
    (root / "train" / "thermal_8_bit").symlink_to(disk, target_is_directory=True)
    images = [image(0), image(1, "../thermal_8_bit/FLIR_00002")]  # '..' inside the root: refused
    write_v1_split(root, images, [ann(1, 0, 1, [0, 0, 5, 5])], make_files=False)
    ds = load_flir(root)
    assert [im.id for im in ds.images] == ["FLIR_00001"]
    assert ds.images[0].path == root.resolve() / "train" / "thermal_8_bit" / "FLIR_00001.jpeg"
    assert ds.images[0].path.is_file() and ds.images[0].path.resolve().is_relative_to(disk)
    assert ds.skipped == [
        (
            f"{ds.annotation_files['train']}#images[1] thermal_8_bit/../thermal_8_bit/FLIR_00002.jpeg",
            "path outside the dataset root",
        )
    ]


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    bad = tmp_path / "train" / "thermal_annotations.json"
    bad.write_text('{"images": [\n  {"id": 1,,}\n]}')
    with pytest.raises(FlirFormatError, match=r"thermal_annotations\.json:2: malformed JSON") as e:
        load_flir(tmp_path)
    assert (e.value.path, e.value.line) == (str(bad), 2)


@pytest.mark.parametrize(
    ("images", "anns", "message"),
    [
        ([{"id": 0, "width": 640}], [], r"images\[0\] has no key 'file_name'"),
        (
            [image(0)],
            [{"id": 1, "image_id": 0, "category_id": 1}],
            r"annotations\[0\] has no key 'bbox'",
        ),
        ([image(0)], [ann(1, 0, 555, [0, 0, 1, 1])], r"annotations\[0\] 'category_id' 555"),
        ([image(0)], [ann(1, 0, 1, [0, 0, 1])], r"annotations\[0\] 'bbox' must be"),
        ([image(0), image(0)], [], r"images\[1\] repeats image id 0"),
        ([image(0, id=[0])], [], r"images\[0\] 'id' must be a number or a string"),
        (
            [image(0)],
            [{"id": 1, "image_id": {"a": 0}, "category_id": 1, "bbox": [0, 0, 1, 1]}],
            r"annotations\[0\] 'image_id' must be a number or a string",
        ),
    ],
)
def test_missing_or_bad_keys_name_file_key_and_index(
    tmp_path: Path, images: list, anns: list, message: str
) -> None:
    write_v1_split(tmp_path, images, anns, make_files=False)
    with pytest.raises(FlirFormatError, match=message) as info:
        load_flir(tmp_path)
    assert "thermal_annotations.json" in str(info.value)
    assert info.value.path.endswith("thermal_annotations.json")
    assert info.value.field and info.value.field.split()[0] in message.replace("\\", "")


def test_missing_top_level_key(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "thermal_annotations.json").write_text(json.dumps({"images": []}))
    with pytest.raises(FlirFormatError, match="key 'annotations'") as info:
        load_flir(tmp_path)
    assert info.value.field == "annotations"


def test_paths_escaping_root_and_duplicates_are_skipped(tmp_path: Path) -> None:
    root = tmp_path / "flir"
    images = [
        image(0),
        {"id": 1, "width": 640, "height": 512, "file_name": "../../outside.jpeg"},
        {"id": 2, "width": 640, "height": 512, "file_name": "/etc/hostname"},
        image(3, "FLIR_00001"),  # same file name as image 0
    ]
    anns = [ann(1, 0, 1, [0, 0, 5, 5]), ann(2, 1, 1, [0, 0, 5, 5]), ann(3, 3, 1, [0, 0, 5, 5])]
    write_v1_split(root, images, anns)
    ds = load_flir(root)
    assert [im.id for im in ds.images] == ["FLIR_00001"]
    reasons = [r for _, r in ds.skipped]
    assert reasons.count("path outside the dataset root") == 2
    assert any(r.startswith("duplicate file name") for r in reasons)
    assert not ds.annotations_without_images  # their boxes are not orphans, just skipped
    assert not (tmp_path / "outside.jpeg").exists()


def test_unknown_split_is_an_error(synthetic_v1: Path) -> None:
    with pytest.raises(ValueError, match="unknown FLIR split"):
        load_flir(synthetic_v1, split="holdout")
    assert {im.split for im in load_flir(synthetic_v1, split=["train", "test"]).images} == {
        "train",
        "video",
    }
