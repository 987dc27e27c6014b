"""``cvlab bench standin``: the shipped RGB stand-in scored on the held-out frames of the real
video through ONNX against the eye-checked truth, its teacher scored on the same frames, the
frame rate through a real local Triton, and the duplicate-box count on real Detections."""

from __future__ import annotations

import re

import numpy as np
from support.train import limit_tf_threads

from cvlab.bench import standin as bench
from cvlab.cli import main
from cvlab.detections import Detections

limit_tf_threads()

CLASSES = ("person", "bag", "face")


def _dets(boxes, classes, confidence=None) -> Detections:
    conf = confidence if confidence is not None else [1.0] * len(boxes)
    ids = [CLASSES.index(c) for c in classes]
    return Detections(boxes, conf, ids, CLASSES, (200, 100))


def test_duplicates_are_pairs_of_person_boxes_matched_to_one_person() -> None:
    truth = [_dets([[0, 0, 40, 80], [100, 0, 140, 80]], ["person", "person"])]
    # three boxes on the first person (3 pairs), one on the second, one 'bag' on the first
    three = _dets(
        [[0, 0, 40, 80], [2, 2, 42, 82], [0, 4, 38, 80], [100, 0, 140, 80], [0, 0, 40, 80]],
        ["person", "person", "person", "person", "bag"],
    )
    assert bench.duplicate_pairs([three], truth) == 3
    # a box with IoU <= 0.5 with every person is a false positive, not a duplicate
    stray = _dets([[0, 0, 40, 80], [20, 0, 60, 80]], ["person", "person"])
    assert bench.duplicate_pairs([stray], truth) == 0
    assert bench.duplicate_pairs([truth[0]], truth) == 0
    assert bench.duplicate_pairs([_dets(np.zeros((0, 4)), [])], truth) == 0


def test_bench_prints_heldout_ap_teacher_ap_duplicates_and_photos(capsys) -> None:
    code = main(["bench", "standin", "--no-triton"])
    out = capsys.readouterr().out
    found = re.search(
        r"person AP@0\.5 ([0-9.]+) on 39 held-out frames \(600-790, every 5th; (\d+) people "
        r"checked by eye\); teacher \(SSDLite, one 300x300 pass\) ([0-9.]+|not measured)",
        out,
    )
    assert found, out
    ap, people = float(found.group(1)), int(found.group(2))
    teacher = None if found.group(3) == "not measured" else float(found.group(3))
    duplicates = re.search(r"(\d+) duplicate person pairs for (\d+) people \(([0-9.]+) per 30", out)
    assert duplicates and int(duplicates.group(2)) == people
    per_30 = float(duplicates.group(3))
    meets = ap >= bench.AP_TARGET and (teacher is None or ap > teacher)
    assert code == (0 if meets and per_30 <= bench.MAX_DUPLICATES_PER_30 else 1)
    for photo in ("messi5.jpg", "basketball1.png", "basketball2.png", "grace_hopper.jpg"):
        assert re.search(rf"^  {re.escape(photo)}: ", out, re.M), out
    assert "frames/s through Triton" not in out  # --no-triton


def test_frame_rate_through_a_real_triton(tmp_path) -> None:
    from cvlab.detectnet import PEOPLENET_CLASSES
    from cvlab.export.rgb_standin import STANDIN_CLUSTERING_CONFIG
    from cvlab.lab.inference import clustering_config

    paths, truth = bench.write_heldout_frames(tmp_path, [700, 701, 702])
    assert [p.name for p in paths] == ["vtest_000700.jpg", "vtest_000701.jpg", "vtest_000702.jpg"]
    assert len(truth[0]) > 0 and len(truth[1]) == 0  # 701 is not an eye-checked frame
    config = clustering_config(STANDIN_CLUSTERING_CONFIG, PEOPLENET_CLASSES)
    fps, answered = bench.triton_frame_rate(paths, config)
    assert answered == 3 and fps > 0
