"""DetectNetPostprocessor end to end, the clustering docs' numbers, overlays and the bench."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from cvlab.bench.core import synthetic_peoplenet_outputs
from cvlab.detections import Detections
from cvlab.errors import ConfigError
from cvlab.inference.cluster import cluster_boxes, iou_matrix
from cvlab.inference.clustering_config import (
    PEOPLENET_RGB_CONFIG,
    ClassClusteringConfig,
    MissingClassError,
    default_config,
    load_clustering_config,
)
from cvlab.inference.postprocess import DetectNetPostprocessor, legacy_cell_order
from cvlab.viz.overlay import colors_from_config, draw_detections, save_overlay, show_detections

REPO = Path(__file__).resolve().parents[2]


def _peoplenet(algorithm: str = "dbscan"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_clustering_config(PEOPLENET_RGB_CONFIG, algorithm=algorithm)


@pytest.mark.parametrize("algorithm", ["dbscan", "dbscan_legacy", "hybrid"])
def test_synthetic_peoplenet_people_are_found(algorithm: str) -> None:
    cov, bbox, truth = synthetic_peoplenet_outputs(np.random.default_rng(3), n_people=4)
    post = DetectNetPostprocessor(_peoplenet(algorithm))
    dets = post({"output_cov/Sigmoid:0": cov, "output_bbox/BiasAdd:0": bbox}, (1920, 1088), "x.jpg")
    assert dets.class_names == ("person", "bag", "face") and dets.image_path == "x.jpg"
    people = dets.of_class("person")
    expected = truth["person"] * 2  # model 960x544 -> image 1920x1088
    best = iou_matrix(np.concatenate([expected, people.xyxy]))[: len(expected), len(expected) :]
    assert np.all(best.max(axis=1) > 0.7), best.max(axis=1)
    if algorithm != "dbscan_legacy":
        assert len(people) == len(expected)
    if algorithm == "hybrid":  # TAO's hybrid: each box is a cell, with its own coverage
        assert np.all((dets.confidence > 0) & (dets.confidence <= 1))
    else:  # summed coverage of clusters above the config's thresholds (0.7 and 0.9)
        assert np.all(dets.confidence >= 0.7)


def test_names_batch_dims_and_batch() -> None:
    rng = np.random.default_rng(1)
    frames = [synthetic_peoplenet_outputs(rng, n_people=2) for _ in range(2)]
    post = DetectNetPostprocessor(_peoplenet(), ["person", "bag", "face"])
    one = post(
        {"output_cov/Sigmoid": frames[0][0][None], "output_bbox/BiasAdd": frames[0][1][None]},
        (960, 544),
    )
    stacked = {
        "output_cov/Sigmoid": np.stack([f[0] for f in frames]),
        "output_bbox/BiasAdd": np.stack([f[1] for f in frames]),
    }
    many = post.batch(stacked, [(960, 544), (480, 272)], ["a.jpg", "b.jpg"])
    assert [d.image_path for d in many] == ["a.jpg", "b.jpg"]
    np.testing.assert_allclose(many[0].xyxy, one.xyxy)
    with pytest.raises(ValueError, match="one image expected"):
        post(stacked, (960, 544))
    with pytest.raises(ValueError, match="2 images in the outputs but 1 image sizes"):
        post.batch(stacked, [(960, 544)])


def test_output_errors() -> None:
    post = DetectNetPostprocessor(_peoplenet(), ["person", "bag", "face"])
    cov = np.zeros((1, 34, 60), np.float32)
    with pytest.raises(KeyError, match="lack 'output_bbox/BiasAdd'"):
        post({"output_cov/Sigmoid": cov}, (960, 544))
    with pytest.raises(ValueError, match="1 class channels but the postprocessor has 3"):
        post({"output_cov/Sigmoid": cov, "output_bbox/BiasAdd": np.zeros((4, 34, 60))}, (960, 544))
    with pytest.raises(ValueError, match="empty"):
        post(
            {
                "output_cov/Sigmoid": np.zeros((3, 0, 60)),
                "output_bbox/BiasAdd": np.zeros((12, 0, 60)),
            },
            (960, 544),
        )
    nan = np.zeros((3, 34, 60), np.float32)
    nan[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        post({"output_cov/Sigmoid": nan, "output_bbox/BiasAdd": np.zeros((12, 34, 60))}, (960, 544))
    with pytest.raises(MissingClassError, match="'car'"):
        DetectNetPostprocessor(_peoplenet(), ["person", "car"])
    zero = post(
        {
            "output_cov/Sigmoid": np.zeros((3, 34, 60)),
            "output_bbox/BiasAdd": np.zeros((12, 34, 60)),
        },
        (960, 544),
    )
    assert len(zero) == 0 and zero.image_size == (960, 544)


def test_legacy_cell_order_is_column_major() -> None:
    assert legacy_cell_order((2, 3)).tolist() == [0, 3, 1, 4, 2, 5]


def test_clustering_doc_numbers() -> None:
    doc = (REPO / "docs/clustering.md").read_text()
    boxes = np.array([[0, 0, 10, 20], [1, 0, 11, 20], [2, 0, 12, 20], [3, 0, 13, 20]], np.float32)
    cov = np.full(4, 0.6, np.float32)
    lone_box, lone_cov = np.array([[50, 50, 60, 80]], np.float32), np.array([0.7], np.float32)
    results = {}
    for algorithm in ("dbscan", "dbscan_legacy"):
        with pytest.warns(UserWarning, match="legacy float"):
            cfg = ClassClusteringConfig(
                algorithm=algorithm,
                coverage_threshold=0.005,
                minimum_bounding_box_height=4,
                dbscan_eps=0.3,
                dbscan_min_samples=0.05,
                dbscan_confidence_threshold=0.5,
            )
        results[algorithm] = (
            cluster_boxes(boxes, cov, cfg),
            cluster_boxes(lone_box, lone_cov, cfg),
        )
    (chain, lone) = results["dbscan"]
    np.testing.assert_allclose(chain[0], [[1.5, 0.0, 11.5, 20.0]])
    np.testing.assert_allclose(chain[1], [2.4], rtol=1e-6)
    assert len(lone[0]) == 0
    assert "**(1.5, 0.0, 11.5, 20.0)**" in doc and "confidence **2.4**" in doc
    (chain, lone) = results["dbscan_legacy"]
    np.testing.assert_allclose(chain[0], boxes)
    np.testing.assert_allclose(chain[1], [0.6] * 4, rtol=1e-6)
    np.testing.assert_allclose(lone[1], [0.7], rtol=1e-6)
    assert "**four boxes**" in doc and "confidence **0.6**" in doc
    assert "**one box, confidence 0.7**" in doc
    rows = 1.0 - iou_matrix(boxes, 0.01).astype(np.float64)
    gap = np.linalg.norm(rows[0] - rows[1])
    assert f"**{gap:.3f}**" in doc
    assert (
        re.search(r"0\.182 \(IoU 180/220\)", doc)
        and abs(1 - iou_matrix(boxes)[0, 1] - 0.182) < 5e-4
    )


def _one_box(x1=10, y1=20, x2=60, y2=80, name="person") -> Detections:
    return Detections([[x1, y1, x2, y2]], [0.9], [0], (name,), (100, 100))


@pytest.mark.parametrize("linewidth", [1, 4])
def test_overlay_honours_linewidth_and_colour(linewidth: int) -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    out = draw_detections(
        img, _one_box(), {"person": (10, 200, 30)}, linewidth=linewidth, show_labels=False
    )
    assert img.max() == 0  # input untouched
    colour = [10, 200, 30]
    for k in range(linewidth):  # every edge is exactly `linewidth` pixels thick, inside the box
        assert out[50, 10 + k].tolist() == colour and out[50, 60 - k].tolist() == colour
        assert out[20 + k, 35].tolist() == colour and out[80 - k, 35].tolist() == colour
    assert out[50, 10 + linewidth].tolist() == [0, 0, 0] and out[50, 9].tolist() == [0, 0, 0]
    assert out[20 + linewidth, 35].tolist() == [0, 0, 0] and out[81, 35].tolist() == [0, 0, 0]
    drawn = (out.sum(axis=2) > 0).sum()
    outer, inner = 51 * 61, (51 - 2 * linewidth) * (61 - 2 * linewidth)
    assert drawn == outer - inner


def test_overlay_colours_from_config_labels_and_save(tmp_path: Path) -> None:
    cfg = _peoplenet()
    colours = colors_from_config(cfg)
    assert colours == {"person": (0, 255, 0), "bag": (0, 255, 255), "face": (255, 0, 0)}
    dets = Detections(
        [[5, 40, 30, 90], [50, 40, 90, 90]], [0.9, 0.8], [0, 2], cfg.class_names, (100, 100)
    )
    out = draw_detections(np.zeros((100, 100, 3), np.uint8), dets, colours, linewidth=2)
    assert out[60, 5].tolist() == [0, 255, 0] and out[60, 50].tolist() == [255, 0, 0]
    assert (out[25:40, 5:30].sum(axis=2) > 0).any()  # a label above the first box
    path = save_overlay(tmp_path / "o" / "x.jpg", out, dets, colours)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert back.shape == (100, 100, 3) and back[60, 50, 0] > 200
    assert [p.name for p in path.parent.iterdir()] == ["x.jpg"]  # no temporary left
    import matplotlib

    matplotlib.use("Agg")
    ax = show_detections(out, dets, colours)
    assert ax.images and ax.get_title().startswith("Detections(2 boxes")


def test_default_config_postprocessor_and_nms_mode() -> None:
    cov, bbox, truth = synthetic_peoplenet_outputs(np.random.default_rng(5), n_people=3)
    cfg = default_config(
        ["person", "bag", "face"], algorithm="nms", coverage_threshold=0.3, nms_iou_threshold=0.3
    )
    dets = DetectNetPostprocessor(cfg)(
        {"output_cov/Sigmoid": cov, "output_bbox/BiasAdd": bbox}, (960, 544)
    )
    people = dets.of_class("person")
    iou = iou_matrix(people.xyxy)
    np.fill_diagonal(iou, 0)
    assert len(people) >= len(truth["person"]) and iou.max() <= 0.3


def test_bench_core_runs_and_reports_all_stages(capsys) -> None:
    from cvlab.cli import main

    main(
        ["bench", "core", "--repeat", "4", "--images", "2"]
    )  # figures only; speed is not asserted in tests
    out = capsys.readouterr().out
    for stage in (
        "decode",
        "decode+cluster",
        "preprocess 1920x1080 jpg",
        "images_per_s",
        "median_ms",
    ):
        assert stage in out


def test_postprocessor_accepts_a_config_path_and_training_alias(tmp_path: Path) -> None:
    from cvlab.inference.clustering_config import from_training_spec_postprocessing

    with warnings.catch_warnings():  # the shipped config's legacy 0.05 is not news (issue 14)
        warnings.simplefilter("error")
        post = DetectNetPostprocessor(PEOPLENET_RGB_CONFIG, ["face"])
    assert (
        post.class_names == ("face",)
        and post.config.classes["face"].dbscan_confidence_threshold == 0.7
    )
    spec = tmp_path / "pp.txt"
    spec.write_text(
        'target_class_config { key: "car" value { clustering_config { dbscan_eps: 0.2 '
        "dbscan_min_samples: 1 coverage_threshold: 0.01 } } }\n"
    )
    cfg = from_training_spec_postprocessing(spec, ["car"])
    assert cfg.classes["car"].dbscan_min_samples == 1 and cfg.classes["car"].dbscan_eps == 0.2
    # TAO's spec validator limits dbscan_min_samples to [0, 1] in a training spec
    spec.write_text(spec.read_text().replace("dbscan_min_samples: 1", "dbscan_min_samples: 2"))
    with pytest.raises(ConfigError, match="field 'dbscan_min_samples' must be <= 1"):
        from_training_spec_postprocessing(spec, ["car"])
