"""KITTI label files: 15-field training lines, 16-field inference lines, round trips, errors."""

import numpy as np
import pytest

from cvlab.detections import Detections
from cvlab.fileio import atomic_write_text
from cvlab.formats.kitti import (
    KittiFormatError,
    format_kitti_line,
    kitti_class_name,
    read_kitti,
    write_kitti,
)


def test_line_layouts():
    train = format_kitti_line("Other Vehicle", (1, 2, 3.5, 4))
    fields = train.split()
    assert len(fields) == 15
    assert fields[0] == "other_vehicle"
    assert fields[4:8] == ["1.00", "2.00", "3.50", "4.00"]
    assert set(fields[8:]) == {"0.00"}
    infer = format_kitti_line("person", (1, 2, 3, 4), confidence=0.25)
    assert len(infer.split()) == 16 and infer.split()[-1] == "0.2500"


def test_class_names_are_kitti_safe():
    assert kitti_class_name(" Other  vehicle ") == "other_vehicle"
    assert kitti_class_name("Traffic-Light") == "traffic_light"


def test_round_trip_with_confidence(tmp_path):
    d = Detections([[1, 2, 30, 40], [5, 6, 7, 8]], [0.8, 0.3], [1, 0], ("bag", "person"), (64, 48))
    path = tmp_path / "labels" / "img.txt"
    write_kitti(path, d, with_confidence=True)
    back = read_kitti(path, image_size=(64, 48), class_names=("bag", "person"))
    np.testing.assert_allclose(back.xyxy, d.xyxy)
    np.testing.assert_allclose(back.confidence, d.confidence, atol=1e-4)
    assert back.names == ["person", "bag"]


def test_training_lines_read_with_confidence_one_and_class_filter(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(
        format_kitti_line("person", (0, 0, 5, 5))
        + "\n"
        + format_kitti_line("car", (1, 1, 2, 2))
        + "\n"
    )
    back = read_kitti(path, class_names=["person"])
    assert len(back) == 1 and back.confidence.tolist() == [1.0]
    assert read_kitti(path).class_names == ("car", "person")


def test_empty_detections_write_an_empty_file(tmp_path):
    path = tmp_path / "e.txt"
    write_kitti(path, Detections.empty(("person",), (10, 10)), with_confidence=False)
    assert path.read_text() == ""
    assert len(read_kitti(path, class_names=["person"])) == 0


@pytest.mark.parametrize(
    "line, message",
    [("person 0 0 0 1 2 3", "expected 15 or 16 fields"), ("person " + "x " * 14, "non-numeric")],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.txt"
    path.write_text("\n" + line + "\n")
    with pytest.raises(KittiFormatError, match=rf"bad.txt:2: {message}"):
        read_kitti(path)


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
