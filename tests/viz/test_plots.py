"""The lab's plots say what a reader needs: a model that found nobody still shows, the domain
gap in one chart, the raw coverage beside the boxes, the training curve's one AP and its
weighted total, the pipeline."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from cvlab.detections import Detections
from cvlab.train.evaluate import evaluate_detections
from cvlab.viz import plots

matplotlib.use("Agg")


@pytest.fixture
def evaluations() -> dict:
    """Two people; the "RGB model" finds one false box, the "IR model" one of the two."""
    truth = [
        Detections(
            np.array([[10, 10, 40, 90], [60, 10, 90, 90]]), [1, 1], [0, 0], ("person",), (100, 100)
        )
    ]
    rgb = [Detections(np.array([[0, 0, 5, 5]]), [2.0], [0], ("person",), (100, 100))]
    ir = [Detections(np.array([[10, 10, 40, 90]]), [3.0], [0], ("person",), (100, 100))]
    return {
        "RGB model": evaluate_detections(rgb, truth, ("person",)),
        "IR model": evaluate_detections(ir, truth, ("person",)),
    }


def test_a_model_with_ap_zero_still_shows(evaluations: dict) -> None:
    fig = plots.plot_pr_comparison(evaluations)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [
        "RGB model: AP 0.00, found 0 of 2, 1 false box",
        "IR model: AP 0.50, found 1 of 2, 0 false boxes",
    ]
    points = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(points) == 2 and points[0].get_xydata().tolist() == [[0.0, 0.0]]
    assert [t.get_text() for t in ax.texts] == ["RGB model: found 0 of 2, 1 false box"]


def test_domain_gap_is_three_bars_with_what_each_found(evaluations: dict) -> None:
    rgb, ir = evaluations["RGB model"], evaluations["IR model"]
    fig = plots.plot_domain_gap(
        [
            ("RGB model\non RGB frames", 0.9, ""),
            ("RGB model\non thermal frames", rgb.ap["person"], plots.found_text(rgb)),
            ("IR model\non thermal frames", ir.ap["person"], plots.found_text(ir)),
        ]
    )
    ax = fig.axes[0]
    assert len(ax.patches) == 3 and ax.patches[1].get_height() > 0  # AP 0 still drawn
    assert [t.get_text() for t in ax.texts] == ["AP 0.90", "AP 0.00", "AP 0.50"]
    assert "(found 0 of 2, 1 false box)" in ax.get_xticklabels()[1].get_text()


def test_coverage_beside_the_boxes() -> None:
    frame = np.zeros((64, 96, 3), np.uint8)
    coverage = np.zeros((4, 6))
    coverage[1, 2] = 0.7
    fig = plots.plot_coverage(frame, frame, coverage, label="IR model")
    assert "highest cell 0.70" in fig.axes[1].get_title()
    assert fig.axes[1].images[1].get_extent() == [0, 96, 64, 0]  # the grid over the frame


def test_training_plot_one_ap_and_the_weighted_total() -> None:
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4],
            "loss": [2e-2, 4e-3, 3e-3, 2e-3],
            "person_cov_loss": [0.5, 0.1, 0.06, 0.05],
            "person_bbox_loss": [1e-2, 4e-3, 2e-3, 1e-3],
            "lr": [5e-4, 5e-3, 1e-3, 1e-4],
            "mAP": [np.nan, 0.3, 0.7, 0.8],
            "mAP_tao": [np.nan, 0.31, 0.69, 0.79],
            "ap_person": [np.nan, 0.3, 0.7, 0.8],
            "ap_tao_person": [np.nan, 0.31, 0.69, 0.79],
        }
    )
    fig = plots.plot_training(history)
    ax_loss, ax_ap = fig.axes
    losses = [t.get_text() for t in ax_loss.get_legend().get_texts()]
    assert losses[0] == "total: weighted sum of the terms"
    assert [t.get_text() for t in ax_ap.get_legend().get_texts()] == ["validation AP"]
    footnote = ax_ap.get_xlabel().split("\n")[-1]
    assert footnote.startswith("* the same AP in TAO's convention") and "0.79" in footnote


def test_pipeline_figure_names_both_chains() -> None:
    texts = [t.get_text() for t in plots.pipeline_figure().axes[0].texts]
    for step in ("camera frame", "boxes", "FLIR thermal\nframes", "KITTI labels", "TFRecords",
                 "ONNX /\nTensorRT", "GCS bucket"):  # fmt: skip
        assert step in texts
