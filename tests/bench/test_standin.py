"""``cvlab bench standin``: the RGB stand-in trained for real (tiny settings), scored on held-out
frames through ONNX, and the duplicate-box count on real Detections."""

from __future__ import annotations

import json
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


def test_bench_trains_the_standin_and_prints_per_class_ap(tmp_path, capsys) -> None:
    """One epoch on 12 frames at 128x64: real frames, TFRecords, training, ONNX, clustering with
    the PeopleNet RGB config; the printed figures and the exit code agree."""
    args = ["bench", "standin", "--output", str(tmp_path), "--epochs", "1", "--images", "12"]
    code = main([*args, "--frames", "3", "--input-size", "128x64"])
    out = capsys.readouterr().out
    found = re.search(
        r"person AP ([0-9.]+), bag AP ([0-9.]+), face AP ([0-9.]+) on 3 held-out frames; "
        r"duplicate person pairs (\d+)",
        out,
    )
    assert found, out
    ap = dict(zip(CLASSES, (float(found.group(i)) for i in (1, 2, 3)), strict=True))
    duplicates = int(found.group(4))
    wall = float(re.search(r"in ([0-9.]+) s wall", out).group(1))
    meets = duplicates == 0 and all(ap[c] >= t for c, t in bench.AP_TARGETS.items())
    assert code == (0 if meets and wall <= bench.TIME_BUDGET_S else 1)
    assert re.search(r"training loop [0-9.]+ s, frames \+ training \+ export [0-9.]+ s wall", out)
    for name in CLASSES:  # the per-class table
        assert re.search(rf"^\s*{name}\s+[0-9.]+\s+{bench.AP_TARGETS[name]}", out, re.M), out
    state = json.loads((tmp_path / "lab_state.json").read_text())["rgb_standin"]
    assert state["epochs"] == 1 and state["input_size"] == [128, 64]
    assert state["train_seconds"] > 0 and state["build_seconds"] >= state["train_seconds"]

    # Scoring an already trained workspace: no training, the same numbers.
    rescored = main(["bench", "standin", "--workspace", str(tmp_path), "--frames", "3"])
    assert rescored == (0 if meets else 1)
    again = capsys.readouterr().out
    assert found.group(0) in again and "as recorded when" in again
