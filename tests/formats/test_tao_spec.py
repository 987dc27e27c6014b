"""TAO DetectNet_v2 specs (training, dataset_convert): real protobuf parse/write, the lab's
shipped specs against the builders, clear errors. How a spec maps onto the trainer:
tests/train/test_config.py."""

from __future__ import annotations

import pytest

from cvlab.errors import ConfigError
from cvlab.formats.tao_spec import (
    LAB_CONVERT_SPEC,
    LAB_KITTI_ROOT,
    LAB_TRAINING_SPEC,
    SpecError,
    build_dataset_convert_spec,
    build_lab_convert_spec,
    build_lab_spec,
    load_dataset_convert_spec,
    load_training_spec,
    spec_to_text,
    write_dataset_convert_spec,
    write_training_spec,
)
from cvlab.inference.clustering_config import load_training_postprocessing
from cvlab.protos.detectnet_v2 import experiment_pb2

# A spec in the layout of TAO's sample detectnet_v2_train_resnet18_kitti.txt (abridged).
TAO_STYLE_SPEC = """
random_seed: 42
dataset_config {
  data_sources { tfrecords_path: "/data/tfrecords/kitti_trainval/*" image_directory_path: "/data" }
  image_extension: "png"
  target_class_mapping { key: "car" value: "car" }
  target_class_mapping { key: "van" value: "car" }
  target_class_mapping { key: "pedestrian" value: "pedestrian" }
  validation_fold: 0
}
augmentation_config {
  preprocessing { output_image_width: 1248 output_image_height: 384 min_bbox_width: 1.0
                  min_bbox_height: 1.0 output_image_channel: 3 }
  spatial_augmentation { hflip_probability: 0.5 zoom_min: 1.0 zoom_max: 1.0
                         translate_max_x: 8.0 translate_max_y: 8.0 }
  color_augmentation { hue_rotation_max: 25.0 saturation_shift_max: 0.2
                       contrast_scale_max: 0.1 contrast_center: 0.5 }
}
postprocessing_config {
  target_class_config { key: "car" value { clustering_config {
    clustering_algorithm: DBSCAN coverage_threshold: 0.005 dbscan_eps: 0.15
    dbscan_min_samples: 1 minimum_bounding_box_height: 20 } } }
  target_class_config { key: "pedestrian" value { clustering_config {
    clustering_algorithm: DBSCAN coverage_threshold: 0.005 dbscan_eps: 0.15
    dbscan_min_samples: 1 minimum_bounding_box_height: 20 } } }
}
model_config {
  pretrained_model_file: "/models/resnet18.hdf5"
  num_layers: 18
  use_batch_norm: true
  objective_set { bbox { scale: 35.0 offset: 0.5 } cov { } }
  arch: "resnet"
}
evaluation_config {
  validation_period_during_training: 10
  first_validation_epoch: 30
  minimum_detection_ground_truth_overlap { key: "car" value: 0.7 }
  minimum_detection_ground_truth_overlap { key: "pedestrian" value: 0.5 }
  evaluation_box_config { key: "car" value { minimum_height: 20 maximum_height: 9999
                                             minimum_width: 10 maximum_width: 9999 } }
  evaluation_box_config { key: "pedestrian" value { minimum_height: 20 maximum_height: 9999
                                                    minimum_width: 10 maximum_width: 9999 } }
  average_precision_mode: INTEGRATE
}
cost_function_config {
  target_classes { name: "car" class_weight: 1.0 coverage_foreground_weight: 0.05
    objectives { name: "cov" initial_weight: 1.0 weight_target: 1.0 }
    objectives { name: "bbox" initial_weight: 10.0 weight_target: 10.0 } }
  target_classes { name: "pedestrian" class_weight: 4.0 coverage_foreground_weight: 0.05
    objectives { name: "cov" initial_weight: 1.0 weight_target: 1.0 }
    objectives { name: "bbox" initial_weight: 10.0 weight_target: 1.0 } }
  enable_autoweighting: true
  max_objective_weight: 0.9999
  min_objective_weight: 0.0001
}
training_config {
  batch_size_per_gpu: 4
  num_epochs: 120
  learning_rate { soft_start_annealing_schedule { min_learning_rate: 5e-06
    max_learning_rate: 5e-04 soft_start: 0.1 annealing: 0.7 } }
  regularizer { type: L1 weight: 3e-09 }
  optimizer { adam { epsilon: 9.9e-09 beta1: 0.9 beta2: 0.999 } }
  cost_scaling { initial_exponent: 20.0 increment: 0.005 decrement: 1.0 }
  checkpoint_interval: 10
}
bbox_rasterizer_config {
  target_class_config { key: "car" value { cov_center_x: 0.5 cov_center_y: 0.5
    cov_radius_x: 0.4 cov_radius_y: 0.4 bbox_min_radius: 1.0 } }
  target_class_config { key: "pedestrian" value { cov_center_x: 0.5 cov_center_y: 0.5
    cov_radius_x: 0.4 cov_radius_y: 0.4 bbox_min_radius: 1.0 } }
  deadzone_radius: 0.67
}
"""


def test_tao_style_spec_parses_into_every_section(tmp_path):
    path = tmp_path / "spec.txt"
    path.write_text(TAO_STYLE_SPEC)
    exp = load_training_spec(path)
    assert isinstance(exp, experiment_pb2.Experiment)
    assert exp.dataset_config.target_class_mapping["van"] == "car"
    assert exp.augmentation_config.preprocessing.output_image_width == 1248
    assert exp.model_config.objective_set.bbox.scale == 35.0
    assert exp.evaluation_config.average_precision_mode == exp.evaluation_config.INTEGRATE
    assert exp.training_config.regularizer.type == exp.training_config.regularizer.L1
    assert exp.bbox_rasterizer_config.deadzone_radius == pytest.approx(0.67)


def test_the_postprocessing_block_is_the_core_message(tmp_path):
    """The experiment's postprocessing_config is the core engineer's message type, so the core
    loader reads it straight from the parsed spec."""
    path = tmp_path / "spec.txt"
    path.write_text(TAO_STYLE_SPEC)
    exp = load_training_spec(path)
    cfg = load_training_postprocessing(exp.postprocessing_config)
    assert set(cfg.classes) == {"car", "pedestrian"}
    assert cfg.classes["car"].dbscan_eps == pytest.approx(0.15)


def test_lab_spec_file_matches_the_builder_and_round_trips(tmp_path):
    shipped = load_training_spec(LAB_TRAINING_SPEC)
    built = build_lab_spec(
        "/workspace/tao-experiments/data/tfrecords/flir/*",
        "/workspace/tao-experiments/data/flir/kitti",
    )
    assert shipped == built
    out = write_training_spec(shipped, tmp_path / "sub" / "spec.txt")
    assert load_training_spec(out) == shipped
    assert not list((tmp_path / "sub").glob(".*tmp"))


def _without_comments(text: str) -> str:
    return "".join(line for line in text.splitlines(True) if not line.startswith("#"))


def test_dataset_convert_spec_ships_and_matches_the_builder(tmp_path):
    spec = load_dataset_convert_spec(LAB_CONVERT_SPEC)
    assert spec.kitti_config.partition_mode == "random"
    assert spec.kitti_config.num_partitions == 2
    built = build_lab_convert_spec()
    assert spec == built == build_lab_convert_spec(LAB_KITTI_ROOT)
    # The shipped file is the builder's text (with the lab's values) plus a comment header.
    assert _without_comments(LAB_CONVERT_SPEC.read_text()) == spec_to_text(built)
    out = write_dataset_convert_spec(built, tmp_path / "sub" / "convert.txt")
    assert load_dataset_convert_spec(out) == built
    empty = tmp_path / "c.txt"
    empty.write_text('image_directory_path: "/x"\n')
    with pytest.raises(SpecError, match="kitti_config or coco_config"):
        load_dataset_convert_spec(empty)


def test_dataset_convert_spec_text_is_what_prepare_writes():
    """prepare_flir_dataset writes this exact text (no class mapping, ".jpg", 2 folds)."""
    spec = build_dataset_convert_spec("/data/out", val_split=25, num_shards=2)
    assert spec_to_text(spec) == (
        "kitti_config {\n"
        '  root_directory_path: "/data/out"\n'
        '  image_dir_name: "images"\n'
        '  label_dir_name: "labels"\n'
        '  image_extension: ".jpg"\n'
        "  num_partitions: 2\n"
        "  num_shards: 2\n"
        '  partition_mode: "random"\n'
        "  val_split: 25.0\n"
        "}\n"
        'image_directory_path: "/data/out"\n'
    )


def test_syntax_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("random_seed: 1\ntraining_config {\n  num_epoch: 3\n}\n")
    with pytest.raises(SpecError, match=r"bad\.txt:3:\d+: .*num_epoch") as info:
        load_training_spec(bad)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
    assert (info.value.path, info.value.line, info.value.column) == (str(bad), 3, 3)
    with pytest.raises(SpecError, match="cannot read"):
        load_training_spec(tmp_path / "missing.txt")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: setattr(e.augmentation_config.preprocessing, "output_image_width", 950),
         "output_image_width = 950"),
        (lambda e: e.bbox_rasterizer_config.target_class_config.pop("person"),
         "bbox_rasterizer_config.target_class_config has no entry"),
        (lambda e: setattr(e.training_config.learning_rate.soft_start_annealing_schedule,
                           "soft_start", 0.9), "soft_start"),
        (lambda e: e.cost_function_config.target_classes[0].objectives.pop(),
         "must include 'cov' and 'bbox'"),
        (lambda e: e.training_config.ClearField("learning_rate"), "learning_rate is not set"),
        # TAO applies target_class_mapping twice and matches lower-cased record classes.
        (lambda e: e.dataset_config.target_class_mapping.__setitem__("person", "pedestrian"),
         "must map to themselves"),
        (lambda e: e.dataset_config.target_class_mapping.__setitem__("Van", "person"),
         "not lower case"),
        # TAO's build_optimizer / build_regularizer checks (its test values).
        (lambda e: setattr(e.training_config.optimizer.adam, "epsilon", 0.0), "epsilon must be > 0"),
        (lambda e: setattr(e.training_config.optimizer.adam, "beta1", 1.1), "beta1 must be in"),
        (lambda e: setattr(e.training_config.optimizer.adam, "beta2", -1.0), "beta2 must be in"),
        (lambda e: setattr(e.training_config.regularizer, "weight", -1.0), "weight must be >= 0"),
    ],
)  # fmt: skip
def test_inconsistent_values_name_the_field(tmp_path, mutate, message):
    exp = build_lab_spec("/tf/*", "/img")
    mutate(exp)
    with pytest.raises(SpecError, match=message) as info:
        write_training_spec(exp, tmp_path / "spec.txt")
    assert info.value.path == str(tmp_path / "spec.txt") and info.value.field in str(info.value)
    assert not (tmp_path / "spec.txt").exists()  # nothing half-written
    (tmp_path / "spec2.txt").write_text(spec_to_text(exp))
    with pytest.raises(SpecError, match="spec2.txt"):
        load_training_spec(tmp_path / "spec2.txt")
