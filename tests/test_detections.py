"""The Detections type: construction, validation, selection and conversion."""

import numpy as np
import pytest

from cvlab.detections import Detections

NAMES = ("person", "bag", "face")


def make() -> Detections:
    return Detections(
        xyxy=[[0, 0, 10, 20], [5, 5, 15, 10], [1, 2, 3, 4]],
        confidence=[0.9, 0.2, 0.5],
        class_id=[0, 1, 0],
        class_names=NAMES,
        image_size=(640, 480),
        image_path="a.jpg",
    )


def test_fields_are_normalised():
    d = make()
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (3, 4)
    assert d.class_id.dtype == np.int64
    assert d.names == ["person", "bag", "person"]
    np.testing.assert_allclose(d.height, [20, 5, 2])
    np.testing.assert_allclose(d.area, [200, 50, 4])


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="confidence has 1"):
        Detections([[0, 0, 1, 1], [0, 0, 2, 2]], [0.5], [0, 0], NAMES, (10, 10))


def test_class_id_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="out of range"):
        Detections([[0, 0, 1, 1]], [0.5], [3], NAMES, (10, 10))


def test_selection_filter_and_sort():
    d = make()
    assert len(d[d.confidence > 0.4]) == 2
    assert d[1].names == ["bag"]
    assert d.of_class("person").confidence.tolist() == pytest.approx([0.9, 0.5])
    assert d.filter(min_confidence=0.3, min_height=3).confidence.tolist() == pytest.approx([0.9])
    assert d.sorted().confidence.tolist() == pytest.approx([0.9, 0.5, 0.2])
    with pytest.raises(KeyError, match="unknown class 'dog'"):
        d.of_class("dog")


def test_iteration_merge_scale_and_pandas():
    d = make()
    first = next(iter(d))
    assert (first.class_name, first.width, first.height) == ("person", 10, 20)
    merged = Detections.merge([d, d[0]])
    assert len(merged) == 4
    scaled = d.scaled(2.0, 0.5, (1280, 240))
    np.testing.assert_allclose(scaled.xyxy[0], [0, 0, 20, 10])
    assert scaled.image_size == (1280, 240)
    df = d.to_pandas()
    assert list(df["class"]) == ["person", "bag", "person"]
    assert "person=2" in repr(d)


def test_empty():
    d = Detections.empty(NAMES, (10, 10))
    assert len(d) == 0 and d.to_pandas().empty
