"""Detections and KITTI label files: round trips, 15/16 fields, errors, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cvlab.detections import Detections
from cvlab.errors import FormatError
from cvlab.fileio import atomic_write_text
from cvlab.formats.kitti import (
    KittiFormatError,
    KittiObject,
    kitti_class_name,
    read_kitti,
    read_kitti_objects,
    tao_keeps_box,
    write_kitti,
)


def _dets() -> Detections:
    return Detections(
        xyxy=[[1.5, 2.25, 30, 40], [10, 10, 20, 50]],
        confidence=[0.875, 0.5],
        class_id=[1, 0],
        class_names=("person", "face"),
        image_size=(64, 48),
    )


def test_detections_views() -> None:
    d = _dets()
    assert d.names == ["face", "person"] and len(d[np.array([True, False])]) == 1
    np.testing.assert_allclose(d.height, [37.75, 40])
    assert d.sorted().confidence.tolist() == [0.875, 0.5]
    assert len(d.of_class("person")) == 1 and len(d.filter(min_confidence=0.6)) == 1
    assert len(Detections.merge([d, Detections.empty(d.class_names, d.image_size)])) == 2
    with pytest.raises(ValueError, match="class_id out of range"):
        Detections([[0, 0, 1, 1]], [1.0], [2], ("a",), (2, 2))
    assert list(d.to_pandas().columns)[:3] == ["image", "class", "confidence"]


@pytest.mark.parametrize("with_confidence", [True, False])
def test_kitti_round_trip(tmp_path: Path, with_confidence: bool) -> None:
    path = tmp_path / "labels" / "img.txt"
    write_kitti(path, _dets(), with_confidence=with_confidence)
    lines = path.read_text().splitlines()
    assert [len(line.split()) for line in lines] == [16 if with_confidence else 15] * 2
    assert lines[0].split()[:8] == ["face", "0.00", "0", "0.00", "1.50", "2.25", "30.00", "40.00"]
    back = read_kitti(path, (64, 48), ["person", "face"])
    np.testing.assert_allclose(back.xyxy, _dets().xyxy)
    expected = [0.875, 0.5] if with_confidence else [1.0, 1.0]
    np.testing.assert_allclose(back.confidence, expected)
    assert back.names == ["face", "person"]


def test_kitti_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("person 0 0 0 1 2 3 4 0 0 0 0 0 0 0\ncar 0 0\n")
    with pytest.raises(KittiFormatError, match=r"bad.txt:2: expected 15 or 16 fields, got 3") as e:
        read_kitti(path)
    assert isinstance(e.value, FormatError) and (e.value.path, e.value.line) == (str(path), 2)
    path.write_text("person 0 0 0 1 x 3 4 0 0 0 0 0 0 0\n")
    with pytest.raises(KittiFormatError, match=r"bad.txt:1: non-numeric y1: 'x'") as e:
        read_kitti(path)
    assert e.value.field == "y1"
    path.write_text("person 0 0 0 1 2 3 4 0 0 0 0 0 0 0 nan\n")
    with pytest.raises(KittiFormatError, match=r"bad.txt:1: score is not finite"):
        read_kitti(path)
    assert kitti_class_name("Other Vehicle") == "other_vehicle"


def test_one_parser_for_training_and_inference_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text(
        "Person 0.25 1 0.50 10.0 20.0 30.5 40.0 1 2 3 4 5 6 0.7\n"
        "\n"
        "bag 0 0 0 1 2 3 4 0 0 0 0 0 0 0 0.5\n"
    )
    first, second = read_kitti_objects(path)
    assert first == KittiObject(
        "person", (10.0, 20.0, 30.5, 40.0), 0.25, 1, 0.5, (1.0, 2.0, 3.0), (4.0, 5.0, 6.0), 0.7
    )
    assert first.score is None and second.score == 0.5
    with pytest.raises(KittiFormatError, match=r"a.txt:3: expected 15 fields, got 16"):
        read_kitti_objects(path, allow_score=False)  # TAO's converter takes training lines only
    assert tao_keeps_box((10.0, 20.0, 30.5, 40.0)) and not tao_keeps_box((10.2, 20, 10.9, 40))


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")

    with pytest.raises(TypeError):
        atomic_write_text(target, 123)  # type: ignore[arg-type]
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
