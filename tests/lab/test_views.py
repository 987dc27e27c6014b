"""What the notebooks' figures and tables say: captions that say what is true, ground truth
white with a legend, plain-word summaries, text columns left-aligned, times per step."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest

from cvlab import lab
from cvlab.detections import Detections

matplotlib.use("Agg")


def _people(*boxes: list[int], score: float = 1.0) -> Detections:
    return Detections(
        np.array(boxes, float).reshape(-1, 4), [score] * len(boxes), [0] * len(boxes),
        ("person",), (200, 100),
    )  # fmt: skip


@pytest.fixture
def frame(tmp_path: Path) -> Path:
    from cvlab.fileio import atomic_write_image

    return atomic_write_image(tmp_path / "frame-001.png", np.full((100, 200, 3), 40, np.uint8))


def test_captions_say_what_is_true(frame: Path) -> None:
    from cvlab.lab.views import _count_text

    truth = _people([10, 10, 30, 90], [50, 10, 70, 90], [90, 10, 110, 90], [130, 10, 150, 90])
    found = _people([11, 10, 30, 90], [0, 0, 5, 5])
    assert _count_text(found, truth) == "found 2 boxes, 1 correct, of 4 people"
    assert _count_text(_people(), truth) == "found no boxes, 0 correct, of 4 people"
    assert _count_text(None, truth) == "4 people (ground truth)"
    fig = lab.show_overlays([frame], [found], None, truth=[truth])
    assert fig.axes[0].get_title() == "frame-001: found 2 boxes, 1 correct, of 4 people"


def test_ground_truth_alone_is_white_with_a_legend(frame: Path) -> None:
    """02's ground-truth figure: boxes in white (as everywhere), and a legend saying so."""
    truth = _people([10, 10, 30, 90])
    fig = lab.show_overlays([frame], [None], None, truth=[truth])
    drawn = fig.axes[0].images[0].get_array()
    assert drawn[10, 20].tolist() == [255, 255, 255]  # the box's top edge
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["ground truth"]


def test_prepare_summary_in_plain_words(tmp_path: Path) -> None:
    from cvlab.datasets.prepare import PrepareReport
    from cvlab.lab.data import PreparedDataset, prepare_summary

    report = PrepareReport(tmp_path, tmp_path, "v2", ["train"], images=120)
    report.objects = {"person": 420}
    report.dropped_class_boxes = {"car": 250, "bicycle": 54}
    report.frames_per_fold = {0: 24, 1: 96}
    report.images_without_annotations = ["a.jpg"]
    prepared = PreparedDataset(tmp_path, tmp_path, tmp_path, "", ("person",), (960, 544), report)
    rows = dict(prepare_summary(prepared).to_numpy().tolist())
    assert rows == {
        "frames": "120: 24 validation / 96 training",
        "boxes kept": "420 person",
        "boxes dropped": "304 of other classes (car 250, bicycle 54)",
        "frames without annotations": "1",
    }  # nothing that did not happen (no "clipped boxes 0")


def test_text_columns_left_aligned() -> None:
    import pandas as pd

    df = pd.DataFrame({"step": ["ONNX export"], "AP": [0.51234], "lr": ["1.0e-04"]})
    html = lab.table(df)._repr_html_()
    assert '<td style="text-align: left">ONNX export</td>' in html
    assert "<td>0.512</td>" in html and "<td>1.0e-04</td>" in html  # numbers stay right


def test_timings_table_has_every_step_and_the_total(tmp_path: Path) -> None:
    timings = tmp_path / "timings.json"
    timings.write_text('{"seconds": {"00_setup": 10.7, "03_retrain": 116.1}}')
    table = lab.timings_table(timings)
    assert table.to_numpy().tolist() == [
        ["00_setup", "11 s"], ["03_retrain", "116 s"], ["total", "2.1 min"],
    ]  # fmt: skip
