"""cvlab.train.config: the trainer's settings and how a TAO training spec maps onto them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cvlab.formats.tao_spec import (
    SpecError,
    build_lab_spec,
    load_training_spec,
    write_training_spec,
)
from cvlab.train.config import (
    EVALUATION_MIN_SIZE,
    TrainConfig,
    TrainingParams,
    evaluation_kwargs_from_spec,
    source_class_ids,
    training_config_from_spec,
)
from cvlab.train.model import ModelConfig, WeightsError


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
    # The lab spec names PeopleNet's encrypted .tlt: refused, with the way to plain weights.
    with pytest.raises(WeightsError, match=r"resnet34_peoplenet.tlt is an encrypted TAO archive"):
        TrainConfig.from_spec(path)
    cfg = TrainConfig.from_spec(path, width_multiplier=0.5, pretrained_weights=None)
    assert cfg.class_names == ("person",)
    assert cfg.model.input_size == (960, 544) and cfg.model.num_layers == 34
    assert (cfg.epochs, cfg.batch_size) == (7, 3)
    assert cfg.max_learning_rate == pytest.approx(5e-4) and cfg.min_learning_rate == pytest.approx(
        5e-6
    )
    assert cfg.pretrained_weights is None
    (person,) = cfg.cost.target_classes
    assert person.coverage_foreground_weight == pytest.approx(0.05)
    assert {(o.name, o.initial_weight, o.weight_target) for o in person.objectives} == {
        ("cov", 1.0, 1.0),
        ("bbox", 10.0, 10.0),
    }
    assert cfg.rasterizer.per_class[0].cov_radius_x == pytest.approx(0.4)
    assert cfg.rasterizer.bbox_norm == pytest.approx(35.0)
    # model_config flags, regularizer, optimizer, checkpoints and validation as in the spec
    assert (cfg.model.use_batch_norm, cfg.model.all_projections, cfg.model.freeze_bn) == (
        True,
        False,  # the lab spec leaves all_projections unset: false, as TAO reads it
        False,
    )
    assert cfg.model.regularizer == "L1" and cfg.model.regularizer_weight == pytest.approx(3e-9)
    assert cfg.adam_epsilon == pytest.approx(9.9e-9)
    assert (cfg.adam_beta1, cfg.adam_beta2) == (pytest.approx(0.9), pytest.approx(0.999))
    assert (cfg.checkpoint_interval, cfg.validate_every, cfg.first_validation_epoch) == (10, 10, 10)
    assert cfg.target_class_mapping == {"person": "person"} and cfg.seed == 42
    weights = TrainConfig.from_spec(path, pretrained_weights=tmp_path / "peoplenet.hdf5")
    assert weights.pretrained_weights == str(tmp_path / "peoplenet.hdf5")
    two = TrainConfig.from_spec(
        training_config_from_spec(_two_class_spec()), pretrained_weights=None
    )
    assert two.class_names == ("car", "pedestrian") and two.model.input_size == (1248, 384)


DEFAULT_SPEC = Path(__file__).parent / "data" / "tao_specs" / "default_spec.txt"


def test_tao_default_spec_takes_effect_field_by_field():
    """TAO's own default_spec.txt: every training field lands in TrainConfig; the fields that
    change nothing (TAO's visualizer images, the default loader's min_bbox_*) are reported."""
    with pytest.warns(UserWarning) as record:
        cfg = TrainConfig.from_spec(DEFAULT_SPEC, width_multiplier=0.25)
    warned = " ".join(str(w.message) for w in record)
    for where in ("training_config.visualizer", "preprocessing.min_bbox_width"):
        assert where in warned
    assert cfg.class_names == ("car", "pedestrian") and cfg.seed == 42
    assert cfg.model == ModelConfig(
        input_size=(1248, 384),
        num_layers=18,
        width_multiplier=0.25,
        all_projections=True,
        use_batch_norm=True,
        regularizer="L1",
        regularizer_weight=pytest.approx(3e-9),
    )
    assert cfg.pretrained_weights is None  # no pretrained_model_file in that spec
    assert (cfg.epochs, cfg.batch_size, cfg.checkpoint_interval) == (120, 8, 10)
    assert (cfg.validate_every, cfg.first_validation_epoch) == (10, 110)
    assert cfg.adam_epsilon == pytest.approx(1e-8)
    # van -> car boxes train the car class (TAO's mapping, applied twice).
    assert cfg.class_ids() == {"car": 0, "van": 0, "pedestrian": 1}
    assert cfg.augment.hue_rotation_max == 25.0 and cfg.augment.color_shift_stddev == 0.0
    assert cfg.augment.saturation_shift_max == pytest.approx(0.2)
    for c in cfg.cost.target_classes:
        assert [(o.name, o.weight_target) for o in c.objectives] == [("cov", 1.0), ("bbox", 10.0)]


def _default_exp():
    return load_training_spec(DEFAULT_SPEC)


@pytest.mark.parametrize(
    ("field_path", "mutate"),
    [
        ("model_config.use_pooling", lambda e: setattr(e.model_config, "use_pooling", True)),
        ("model_config.arch", lambda e: setattr(e.model_config, "arch", "vgg")),
        ("model_config.num_layers", lambda e: setattr(e.model_config, "num_layers", 50)),
        ("model_config.objective_set",
         lambda e: setattr(e.model_config.objective_set.bbox, "input", "block_3b_relu")),
        ("model_config.training_precision.backend_floatx",
         lambda e: setattr(e.model_config.training_precision, "backend_floatx", 1)),
        ("model_config.freeze_blocks", lambda e: e.model_config.freeze_blocks.append(7)),
        ("training_config.enable_qat", lambda e: setattr(e.training_config, "enable_qat", True)),
        ("early_stopping_annealing_schedule",
         lambda e: e.training_config.learning_rate.early_stopping_annealing_schedule.SetInParent()),
        ("dataset_config.data_sources[0].source_weight",
         lambda e: setattr(e.dataset_config.data_sources[0], "source_weight", 2.0)),
        ("dataset_config.validation_data_source",
         lambda e: e.dataset_config.validation_data_source.SetInParent()),
        ("dataset_config.dataloader_mode", lambda e: setattr(e.dataset_config, "dataloader_mode", 1)),
        ("augmentation_config.preprocessing.crop_right",
         lambda e: setattr(e.augmentation_config.preprocessing, "crop_right", 600)),
        ("augmentation_config.preprocessing.output_image_channel",
         lambda e: setattr(e.augmentation_config.preprocessing, "output_image_channel", 1)),
        ("loss_mask_label_filter",
         lambda e: e.loss_mask_label_filter.objective_label_filter_configs.add()),
        ("objectives", lambda e: e.cost_function_config.target_classes[0].objectives.add(name="depth")),
    ],
)  # fmt: skip
def test_spec_fields_cvlab_cannot_honour_are_refused_by_name(field_path, mutate):
    exp = _default_exp()
    mutate(exp)
    with pytest.raises(SpecError, match="not supported by cvlab") as info:
        TrainConfig.from_spec(exp)
    assert field_path in str(info.value) and field_path in info.value.field


def test_trainconfig_checks_optimizer_checkpoints_and_pretrained():
    assert TrainConfig.tiny(checkpoint_interval=0).checkpoint_interval == 10  # TAO: 0 -> 10
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        TrainConfig.tiny(adam_epsilon=0.0)
    with pytest.raises(ValueError, match="beta1 must be in"):
        TrainConfig.tiny(adam_beta1=1.1)
    with pytest.raises(ValueError, match="freeze_blocks needs pretrained"):
        TrainConfig.tiny(model=ModelConfig(freeze_blocks=(0,)))
    with pytest.raises(WeightsError, match="encrypted TAO archive"):
        TrainConfig.tiny(pretrained_weights="peoplenet.etlt")
    exp = _default_exp()
    exp.model_config.freeze_blocks.extend([0, 1])
    with (
        pytest.raises(ValueError, match="freeze_blocks needs pretrained"),
        pytest.warns(UserWarning),
    ):
        TrainConfig.from_spec(exp)


def test_target_class_mapping_as_tao_applies_it():
    assert source_class_ids(("person",)) == {"person": 0}
    mapping = {"pedestrian": "person", "person": "person", "automobile": "car", "car": "car"}
    assert source_class_ids(("car", "person"), mapping) == {
        "pedestrian": 1,
        "person": 1,
        "automobile": 0,
        "car": 0,
    }
    # applied twice: a chain reaches the target, a target that is not a key loses its boxes
    assert source_class_ids(("car",), {"van": "truck", "truck": "car", "car": "car"}) == {
        "van": 0,
        "truck": 0,
        "car": 0,
    }
    assert source_class_ids(("car",), {"van": "car"}) == {}


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


def test_augmentation_fields_pass_through_by_name():
    exp = _default_exp()
    col = exp.augmentation_config.color_augmentation
    col.color_shift_stddev = 0.1
    exp.augmentation_config.spatial_augmentation.rotate_rad_max = 5.0
    with pytest.warns(UserWarning):
        aug = TrainConfig.from_spec(exp).augment
    assert aug.color_shift_stddev == pytest.approx(0.1) and aug.rotate_rad_max == 5.0
    assert aug.rotate_probability == 1.0  # unset in the spec: 1.0, as TAO reads it
    assert (aug.translate_max_x, aug.contrast_center) == (8.0, 0.5)  # set in the spec


def test_unset_contrast_center_is_zero_as_tao():
    """TAO's ColorAugmentation keeps the spec's contrast_center (augmentation_config.py:152):
    unset means 0, not 0.5."""
    exp = _default_exp()
    exp.augmentation_config.color_augmentation.ClearField("contrast_center")
    with pytest.warns(UserWarning):
        assert TrainConfig.from_spec(exp).augment.contrast_center == 0.0


@pytest.mark.parametrize(
    ("field_path", "mutate", "tao_says"),
    [
        ("spatial_augmentation.zoom_min",
         lambda e: e.augmentation_config.spatial_augmentation.ClearField("zoom_min"),
         "zoom_min must be > 0.0"),
        ("spatial_augmentation.zoom_min",
         lambda e: (e.augmentation_config.spatial_augmentation.ClearField("zoom_min"),
                    e.augmentation_config.spatial_augmentation.ClearField("zoom_max")),
         "zoom_min must be > 0.0"),
        ("spatial_augmentation.zoom_max",
         lambda e: e.augmentation_config.spatial_augmentation.ClearField("zoom_max"),
         "zoom_min must be <= zoom_max"),
        ("cost_function_config.max_objective_weight",
         lambda e: e.cost_function_config.ClearField("max_objective_weight"),
         "clamps every objective weight to 0"),
    ],
)  # fmt: skip
def test_unset_fields_tao_fails_on_are_refused_by_name(field_path, mutate, tao_says):
    """TAO raises on zoom_min 0 / above zoom_max (augmentation_config.py:113-116) and, with
    autoweighting, clamps every objective weight to max_objective_weight = 0 after the first
    epoch (cost_auto_weight_hook.py:172-173): cvlab refuses them with the field named."""
    exp = _default_exp()
    mutate(exp)
    with pytest.raises(SpecError, match=tao_says) as info:
        TrainConfig.from_spec(exp)
    assert info.value.field.endswith(field_path)


def test_max_objective_weight_without_autoweighting_is_not_used():
    exp = _default_exp()
    exp.cost_function_config.ClearField("max_objective_weight")
    exp.cost_function_config.ClearField("min_objective_weight")
    exp.cost_function_config.enable_autoweighting = False
    with pytest.warns(UserWarning):
        cost = TrainConfig.from_spec(exp).cost
    assert (cost.max_objective_weight, cost.min_objective_weight) == (0.0, 0.0)  # as the spec
