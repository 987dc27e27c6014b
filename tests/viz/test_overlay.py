"""Overlay drawing: the box corners in plain int arithmetic are those of ``np.clip`` (issue 23)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cvlab.detections import Detections
from cvlab.viz.overlay import draw_detections


def _reference(rgb: np.ndarray, detections: Detections, color, linewidth: int) -> np.ndarray:
    """The boxes as drawn before issue 23: corners rounded, then ``np.clip`` to the frame."""
    out = rgb.copy()
    h, w = out.shape[:2]
    for det in detections:
        x1 = int(np.clip(round(det.x1), 0, w - 1))
        y1 = int(np.clip(round(det.y1), 0, h - 1))
        x2 = int(np.clip(round(det.x2), 0, w - 1))
        y2 = int(np.clip(round(det.y2), 0, h - 1))
        if x2 < x1 or y2 < y1:
            continue
        t = min(linewidth, x2 - x1 + 1, y2 - y1 + 1)
        out[y1 : y1 + t, x1 : x2 + 1] = color
        out[y2 - t + 1 : y2 + 1, x1 : x2 + 1] = color
        out[y1 : y2 + 1, x1 : x1 + t] = color
        out[y1 : y2 + 1, x2 - t + 1 : x2 + 1] = color
    return out


# corners off the frame, on it, and on .5 ties (rounded half to even either way)
coordinate = st.one_of(
    st.floats(-50, 150, allow_nan=False, width=32),
    st.integers(-20, 120).map(lambda v: v + 0.5),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(coordinate, coordinate, coordinate, coordinate), max_size=8),
       st.integers(1, 6), st.booleans())  # fmt: skip
def test_box_corners_are_those_of_np_clip(boxes, linewidth, copy) -> None:
    rgb = np.zeros((90, 110, 3), np.uint8)
    dets = Detections(
        np.array(boxes, np.float32).reshape(-1, 4), [0.5] * len(boxes), [0] * len(boxes),
        ("person",), (110, 90),
    )  # fmt: skip
    expected = _reference(rgb, dets, (0, 255, 0), linewidth)
    drawn = draw_detections(rgb, dets, {"person": (0, 255, 0)}, linewidth, False, copy=copy)
    np.testing.assert_array_equal(drawn, expected)
