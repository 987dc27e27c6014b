"""cvlab.train.config: the trainer's settings and how a TAO training spec maps onto them."""

from __future__ import annotations

import numpy as np
import pytest

from cvlab.formats.tao_spec import build_lab_spec, write_training_spec
from cvlab.train.config import (
    EVALUATION_MIN_SIZE,
    TrainConfig,
    TrainingParams,
    evaluation_kwargs_from_spec,
    training_config_from_spec,
)


def _two_class_spec():
    """The lab spec turned into a TAO KITTI sample-like one: car + pedestrian, 1248x384."""
    exp = build_lab_spec(
        "/data/tfrecords/kitti_trainval/*",
        "/data",
        class_names=("car", "pedestrian"),
        num_layers=18,
        input_size=(1248, 384),
        num_epochs=120,
    )
    exp.evaluation_config.minimum_detection_ground_truth_overlap["car"] = 0.7
    pedestrian = exp.cost_function_config.target_classes[1]
    pedestrian.class_weight = 4.0
    pedestrian.objectives[1].weight_target = 1.0
    return exp


def test_spec_becomes_plain_numbers():
    p = training_config_from_spec(_two_class_spec())
    assert isinstance(p, TrainingParams)
    assert p.class_names == ("car", "pedestrian")
    assert p.input_size == (1248, 384)
    assert (p.num_epochs, p.batch_size, p.num_layers, p.arch) == (120, 4, 18, "resnet")
    assert (p.min_learning_rate, p.max_learning_rate) == (pytest.approx(5e-6), pytest.approx(5e-4))
    assert (p.soft_start, p.annealing) == (pytest.approx(0.1), pytest.approx(0.7))
    assert p.classes["pedestrian"].class_weight == 4.0
    assert p.classes["pedestrian"].objective_targets == {"cov": 1.0, "bbox": 1.0}
    assert p.classes["car"].cov_radius == (pytest.approx(0.4), pytest.approx(0.4))
    assert p.iou_thresholds["car"] == pytest.approx(0.7)
    assert p.ap_mode == "INTEGRATE" and p.regularizer == "L1"
    assert p.tfrecords == ["/data/tfrecords/kitti_trainval/*"] and p.image_dirs == ["/data"]
    assert p.to_dict()["classes"]["car"]["bbox_min_radius"] == 1.0


def test_config_from_tao_training_spec(tmp_path):
    """The spec written by cvlab.formats.tao_spec (real protobuf) maps onto TrainConfig."""
    path = write_training_spec(
        build_lab_spec("/data/tfrecords/*", "/data/images", num_epochs=7, batch_size=3),
        tmp_path / "spec.txt",
    )
    cfg = TrainConfig.from_spec(path, width_multiplier=0.5)
    assert cfg.class_names == ("person",)
    assert cfg.model.input_size == (960, 544) and cfg.model.num_layers == 34
    assert (cfg.epochs, cfg.batch_size) == (7, 3)
    assert cfg.max_learning_rate == pytest.approx(5e-4) and cfg.min_learning_rate == pytest.approx(
        5e-6
    )
    assert cfg.pretrained_weights is None  # .tlt is not loadable here
    (person,) = cfg.cost.target_classes
    assert person.coverage_foreground_weight == pytest.approx(0.05)
    assert {o.name for o in person.objectives} == {"cov", "bbox"}
    assert cfg.rasterizer.per_class[0].cov_radius_x == pytest.approx(0.4)
    assert cfg.rasterizer.bbox_norm == pytest.approx(35.0)
    two = TrainConfig.from_spec(training_config_from_spec(_two_class_spec()))
    assert two.class_names == ("car", "pedestrian") and two.model.input_size == (1248, 384)


def test_config_checks_the_cost_classes():
    cfg = TrainConfig.tiny(class_names=("Person",))
    assert cfg.class_names == ("person",) and cfg.cost.target_classes[0].name == "person"
    with pytest.raises(ValueError, match="differ from class_names"):
        TrainConfig(class_names=("person", "car"), cost=cfg.cost)


def test_evaluation_kwargs_feed_the_evaluator():
    from cvlab.detections import Detections
    from cvlab.train.evaluate import evaluate_detections

    kwargs = evaluation_kwargs_from_spec(build_lab_spec("/tf/*", "/img"))
    assert kwargs["mode"] == "INTEGRATE"
    limits = kwargs["box_limits"]["person"]
    assert (limits.min_height, limits.min_width) == EVALUATION_MIN_SIZE
    gt = [Detections([[0, 0, 10, 30], [0, 0, 2, 2]], [1, 1], [0, 0], ("person",), (64, 64))]
    pred = [Detections([[0, 0, 10, 30]], [0.8], [0], ("person",), (64, 64))]
    res = evaluate_detections(pred, gt, ["person"], **kwargs)
    assert res.mean_ap == pytest.approx(1.0)  # the 2x2 box is below the 4x4 minimum
    assert np.isclose(res.iou_threshold, 0.5)
