"""The TAO DetectNet_v2 training spec (``detectnet_v2 train -e SPEC``) as real protobuf.

The schema lives in ``cvlab/protos/detectnet_v2/*.proto`` (TAO's message, field names and
numbers). Specs are protobuf text format; parse errors name the file, line and column, and
:func:`validate_training_spec` names the field that is inconsistent.

Example:
    >>> exp = build_lab_spec("/workspace/tfrecords/*", "/workspace/flir/images")
    >>> exp.model_config.num_layers, exp.training_config.num_epochs
    (34, 60)
    >>> params = training_config_from_spec(exp)
    >>> params.input_size, params.class_names
    ((960, 544), ('person',))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from google.protobuf import text_format

from cvlab.detectnet import PEOPLENET_INPUT_SIZE, STRIDE
from cvlab.errors import ConfigError
from cvlab.formats.kitti import atomic_write_text
from cvlab.protos.detectnet_v2 import dataset_export_config_pb2, experiment_pb2
from cvlab.resources import LAB_CONVERT_SPEC_NAME, LAB_TRAINING_SPEC_NAME, resource_path

Experiment = experiment_pb2.Experiment
DatasetExportConfig = dataset_export_config_pb2.DatasetExportConfig

#: The lab's specs, shipped in :mod:`cvlab.resources`.
LAB_TRAINING_SPEC = resource_path(LAB_TRAINING_SPEC_NAME)
LAB_CONVERT_SPEC = resource_path(LAB_CONVERT_SPEC_NAME)
SPECS_DIR = LAB_TRAINING_SPEC.parent


class SpecError(ConfigError):
    """A spec that cannot be parsed or is inconsistent; the message names file and field."""


# --- reading and writing --------------------------------------------------------------------
def _parse(path: str | os.PathLike, message):
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec: {exc.strerror or exc}") from None
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        where = f"{path}:{exc.GetLine()}:{exc.GetColumn()}" if exc.GetLine() else str(path)
        detail = str(exc).split(" : ", 1)[-1]
        raise SpecError(f"{where}: {detail}") from None
    return message


def load_training_spec(path: str | os.PathLike, validate: bool = True) -> Experiment:
    """Parse a DetectNet_v2 training spec (text format) into an ``Experiment`` message.

    Raises :class:`SpecError` with ``file:line:column`` for syntax errors and unknown fields,
    and with the field path for inconsistent values (when ``validate``).
    """
    exp = _parse(path, Experiment())
    if validate:
        validate_training_spec(exp, source=str(path))
    return exp


def load_dataset_convert_spec(path: str | os.PathLike) -> DatasetExportConfig:
    """Parse a ``detectnet_v2 dataset_convert -d SPEC`` file."""
    spec = _parse(path, DatasetExportConfig())
    if spec.WhichOneof("convert_config_type") is None:
        raise SpecError(f"{path}: needs kitti_config or coco_config")
    return spec


def spec_to_text(message) -> str:
    """Protobuf text format, as TAO's own spec files are written."""
    return text_format.MessageToString(message)


def write_training_spec(experiment: Experiment, path: str | os.PathLike) -> Path:
    """Write ``experiment`` as a text-format spec, atomically; returns the path."""
    validate_training_spec(experiment, source=str(path))
    atomic_write_text(path, spec_to_text(experiment))
    return Path(path)


def write_dataset_convert_spec(spec: DatasetExportConfig, path: str | os.PathLike) -> Path:
    """Write a dataset_convert spec atomically; returns the path."""
    atomic_write_text(path, spec_to_text(spec))
    return Path(path)


# --- validation -----------------------------------------------------------------------------
def validate_training_spec(exp: Experiment, source: str = "<spec>") -> None:
    """Check what TAO would reject or silently mis-train on; raises :class:`SpecError`."""
    pre = exp.augmentation_config.preprocessing
    for name in ("output_image_width", "output_image_height"):
        value = getattr(pre, name)
        if value <= 0 or value % STRIDE:
            raise SpecError(
                f"{source}: augmentation_config.preprocessing.{name} = {value}: "
                f"must be a positive multiple of {STRIDE}"
            )
    classes = [t.name for t in exp.cost_function_config.target_classes]
    if not classes:
        raise SpecError(f"{source}: cost_function_config.target_classes is empty")
    for t in exp.cost_function_config.target_classes:
        names = {o.name for o in t.objectives}
        if not {"cov", "bbox"} <= names:
            raise SpecError(
                f"{source}: cost_function_config.target_classes[{t.name!r}].objectives must "
                f"include 'cov' and 'bbox', got {sorted(names)}"
            )
    per_class_maps = {
        "bbox_rasterizer_config.target_class_config": exp.bbox_rasterizer_config.target_class_config,
        "postprocessing_config.target_class_config": exp.postprocessing_config.target_class_config,
        "evaluation_config.minimum_detection_ground_truth_overlap": (
            exp.evaluation_config.minimum_detection_ground_truth_overlap
        ),
        "evaluation_config.evaluation_box_config": exp.evaluation_config.evaluation_box_config,
    }
    for field_path, mapping in per_class_maps.items():
        missing = [c for c in classes if c not in mapping]
        if missing:
            raise SpecError(f"{source}: {field_path} has no entry for class(es) {missing}")
    mapped = set(exp.dataset_config.target_class_mapping.values())
    if mapped and not set(classes) <= mapped:
        raise SpecError(
            f"{source}: dataset_config.target_class_mapping maps to {sorted(mapped)} but "
            f"cost_function_config trains {classes}"
        )
    tc = exp.training_config
    if tc.num_epochs <= 0 or tc.batch_size_per_gpu <= 0:
        raise SpecError(
            f"{source}: training_config.num_epochs and batch_size_per_gpu must be > 0 "
            f"(got {tc.num_epochs}, {tc.batch_size_per_gpu})"
        )
    if tc.learning_rate.WhichOneof("learning_rate") == "soft_start_annealing_schedule":
        lr = tc.learning_rate.soft_start_annealing_schedule
        if not 0 <= lr.soft_start <= lr.annealing <= 1:
            raise SpecError(
                f"{source}: training_config.learning_rate.soft_start_annealing_schedule: need "
                f"0 <= soft_start ({lr.soft_start:g}) <= annealing ({lr.annealing:g}) <= 1"
            )
        if not 0 < lr.min_learning_rate <= lr.max_learning_rate:
            raise SpecError(
                f"{source}: training_config.learning_rate.soft_start_annealing_schedule: need "
                f"0 < min_learning_rate <= max_learning_rate"
            )
    elif tc.learning_rate.WhichOneof("learning_rate") is None:
        raise SpecError(f"{source}: training_config.learning_rate is not set")


# --- the lab's spec -------------------------------------------------------------------------
def build_lab_spec(
    tfrecords_pattern: str,
    image_dir: str,
    *,
    class_names: Sequence[str] = ("person",),
    pretrained_model_file: str = "/workspace/tao-experiments/pretrained/resnet34_peoplenet.tlt",
    num_layers: int = 34,
    input_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    num_epochs: int = 60,
    batch_size: int = 4,
    image_extension: str = "jpeg",
    validation_fold: int = 0,
    max_learning_rate: float = 5e-4,
    min_learning_rate: float = 5e-6,
    checkpoint_interval: int = 10,
    random_seed: int = 42,
) -> Experiment:
    """The lab's ``training_spec.txt``: PeopleNet ResNet-34 retrained on FLIR thermal TFRecords.

    One target class ``person`` by default, 960x544 input, 60 epochs, soft-start annealing
    Adam, L1 regularisation, DBSCAN clustering, INTEGRATE AP with min box 4x4 pixels.
    """
    w, h = input_size
    exp = Experiment(random_seed=random_seed)
    ds = exp.dataset_config
    ds.data_sources.add(tfrecords_path=tfrecords_pattern, image_directory_path=image_dir)
    ds.image_extension = image_extension
    for name in class_names:
        ds.target_class_mapping[name] = name
    ds.validation_fold = validation_fold

    aug = exp.augmentation_config
    aug.preprocessing.output_image_width = w
    aug.preprocessing.output_image_height = h
    aug.preprocessing.output_image_channel = 3
    aug.preprocessing.min_bbox_width = 1.0
    aug.preprocessing.min_bbox_height = 1.0
    sp = aug.spatial_augmentation
    sp.hflip_probability, sp.zoom_min, sp.zoom_max = 0.5, 1.0, 1.0
    sp.translate_max_x, sp.translate_max_y = 8.0, 8.0
    col = aug.color_augmentation
    col.hue_rotation_max, col.saturation_shift_max = 25.0, 0.2
    col.contrast_scale_max, col.contrast_center = 0.1, 0.5

    for name in class_names:
        pp = exp.postprocessing_config.target_class_config[name]
        cc = pp.clustering_config
        cc.clustering_algorithm = cc.DBSCAN
        cc.coverage_threshold = 0.005
        cc.dbscan_eps = 0.3
        cc.dbscan_min_samples = 0.05
        cc.minimum_bounding_box_height = 4
        cc.dbscan_confidence_threshold = 0.9

    mc = exp.model_config
    mc.pretrained_model_file = pretrained_model_file
    mc.num_layers = num_layers
    mc.use_batch_norm = True
    mc.load_graph = False
    mc.arch = "resnet"
    mc.objective_set.bbox.scale = 35.0
    mc.objective_set.bbox.offset = 0.5
    mc.objective_set.cov.SetInParent()
    mc.training_precision.backend_floatx = mc.TrainingPrecision.FLOAT32

    ev = exp.evaluation_config
    ev.validation_period_during_training = 10
    ev.first_validation_epoch = 10
    ev.average_precision_mode = ev.INTEGRATE
    for name in class_names:
        ev.minimum_detection_ground_truth_overlap[name] = 0.5
        box = ev.evaluation_box_config[name]
        box.minimum_height, box.maximum_height = 4, 9999
        box.minimum_width, box.maximum_width = 4, 9999

    cf = exp.cost_function_config
    for name in class_names:
        t = cf.target_classes.add(name=name, class_weight=1.0, coverage_foreground_weight=0.05)
        t.objectives.add(name="cov", initial_weight=1.0, weight_target=1.0)
        t.objectives.add(name="bbox", initial_weight=10.0, weight_target=10.0)
    cf.enable_autoweighting = True
    cf.max_objective_weight = 0.9999
    cf.min_objective_weight = 0.0001

    tc = exp.training_config
    tc.batch_size_per_gpu = batch_size
    tc.num_epochs = num_epochs
    lr = tc.learning_rate.soft_start_annealing_schedule
    lr.min_learning_rate, lr.max_learning_rate = min_learning_rate, max_learning_rate
    lr.soft_start, lr.annealing = 0.1, 0.7
    tc.regularizer.type = tc.regularizer.L1
    tc.regularizer.weight = 3e-9
    tc.optimizer.adam.epsilon = 9.9e-9
    tc.optimizer.adam.beta1, tc.optimizer.adam.beta2 = 0.9, 0.999
    tc.cost_scaling.initial_exponent = 20.0
    tc.cost_scaling.increment = 0.005
    tc.cost_scaling.decrement = 1.0
    tc.checkpoint_interval = checkpoint_interval

    br = exp.bbox_rasterizer_config
    for name in class_names:
        r = br.target_class_config[name]
        r.cov_center_x, r.cov_center_y = 0.5, 0.5
        r.cov_radius_x, r.cov_radius_y = 0.4, 0.4
        r.bbox_min_radius = 1.0
    br.deadzone_radius = 0.67
    return exp


def build_dataset_convert_spec(
    root_directory_path: str,
    *,
    image_dir_name: str = "images",
    label_dir_name: str = "labels",
    image_extension: str = ".jpeg",
    num_partitions: int = 2,
    num_shards: int = 10,
    val_split: float = 14,
    class_names: Sequence[str] = ("person",),
) -> DatasetExportConfig:
    """The FLIR ``dataset_convert`` spec: KITTI folders -> TFRecords, random 2-fold split."""
    spec = DatasetExportConfig()
    k = spec.kitti_config
    k.root_directory_path = root_directory_path
    k.image_dir_name, k.label_dir_name = image_dir_name, label_dir_name
    k.image_extension = image_extension
    k.partition_mode = "random"
    k.num_partitions, k.num_shards, k.val_split = num_partitions, num_shards, val_split
    spec.image_directory_path = root_directory_path
    for name in class_names:
        spec.target_class_mapping[name] = name
    return spec


# --- numbers for the Keras trainer ----------------------------------------------------------
@dataclass
class ClassTrainingParams:
    """Per-class cost weights and rasterizer parameters."""

    class_weight: float
    coverage_foreground_weight: float
    objective_weights: dict[str, float]
    objective_targets: dict[str, float]
    cov_center: tuple[float, float]
    cov_radius: tuple[float, float]
    bbox_min_radius: float


@dataclass
class TrainingParams:
    """What :mod:`cvlab.train.trainer` needs from a spec, as plain numbers."""

    class_names: tuple[str, ...]
    input_size: tuple[int, int]
    num_layers: int
    arch: str
    num_epochs: int
    batch_size: int
    min_learning_rate: float
    max_learning_rate: float
    soft_start: float
    annealing: float
    adam_epsilon: float
    adam_beta1: float
    adam_beta2: float
    regularizer: str
    regularizer_weight: float
    enable_autoweighting: bool
    min_objective_weight: float
    max_objective_weight: float
    classes: dict[str, ClassTrainingParams]
    deadzone_radius: float
    bbox_scale: float
    bbox_offset: float
    hflip_probability: float
    translate_max: tuple[float, float]
    zoom: tuple[float, float]
    color: dict[str, float]
    checkpoint_interval: int
    validation_period: int
    first_validation_epoch: int
    ap_mode: str
    iou_thresholds: dict[str, float]
    box_limits: dict[str, tuple[int, int, int, int]]
    tfrecords: list[str] = field(default_factory=list)
    image_dirs: list[str] = field(default_factory=list)
    pretrained_model_file: str = ""
    random_seed: int = 0

    def to_dict(self) -> dict:
        """Nested plain dict (JSON-friendly)."""
        return asdict(self)


def training_config_from_spec(exp: Experiment) -> TrainingParams:
    """Flatten a training spec into :class:`TrainingParams` for the Keras trainer."""
    tc, cf = exp.training_config, exp.cost_function_config
    lr = tc.learning_rate.soft_start_annealing_schedule
    raster = exp.bbox_rasterizer_config.target_class_config
    classes = {}
    for t in cf.target_classes:
        r = raster.get(t.name)
        classes[t.name] = ClassTrainingParams(
            class_weight=t.class_weight,
            coverage_foreground_weight=t.coverage_foreground_weight,
            objective_weights={o.name: o.initial_weight for o in t.objectives},
            objective_targets={o.name: o.weight_target for o in t.objectives},
            cov_center=(r.cov_center_x, r.cov_center_y) if r else (0.5, 0.5),
            cov_radius=(r.cov_radius_x, r.cov_radius_y) if r else (0.4, 0.4),
            bbox_min_radius=r.bbox_min_radius if r else 1.0,
        )
    pre = exp.augmentation_config.preprocessing
    sp = exp.augmentation_config.spatial_augmentation
    col = exp.augmentation_config.color_augmentation
    ev = exp.evaluation_config
    bbox = exp.model_config.objective_set.bbox
    reg = tc.regularizer
    return TrainingParams(
        class_names=tuple(classes),
        input_size=(pre.output_image_width, pre.output_image_height),
        num_layers=exp.model_config.num_layers,
        arch=exp.model_config.arch or "resnet",
        num_epochs=tc.num_epochs,
        batch_size=tc.batch_size_per_gpu,
        min_learning_rate=lr.min_learning_rate,
        max_learning_rate=lr.max_learning_rate,
        soft_start=lr.soft_start,
        annealing=lr.annealing,
        adam_epsilon=tc.optimizer.adam.epsilon,
        adam_beta1=tc.optimizer.adam.beta1,
        adam_beta2=tc.optimizer.adam.beta2,
        regularizer=reg.RegularizationType.Name(reg.type),
        regularizer_weight=reg.weight,
        enable_autoweighting=cf.enable_autoweighting,
        min_objective_weight=cf.min_objective_weight,
        max_objective_weight=cf.max_objective_weight,
        classes=classes,
        deadzone_radius=exp.bbox_rasterizer_config.deadzone_radius,
        bbox_scale=bbox.scale or 35.0,
        bbox_offset=bbox.offset or 0.5,
        hflip_probability=sp.hflip_probability,
        translate_max=(sp.translate_max_x, sp.translate_max_y),
        zoom=(sp.zoom_min or 1.0, sp.zoom_max or 1.0),
        color={
            "color_shift_stddev": col.color_shift_stddev,
            "hue_rotation_max": col.hue_rotation_max,
            "saturation_shift_max": col.saturation_shift_max,
            "contrast_scale_max": col.contrast_scale_max,
            "contrast_center": col.contrast_center,
        },
        checkpoint_interval=tc.checkpoint_interval,
        validation_period=ev.validation_period_during_training,
        first_validation_epoch=ev.first_validation_epoch,
        ap_mode=ev.AP_MODE.Name(ev.average_precision_mode),
        iou_thresholds=dict(ev.minimum_detection_ground_truth_overlap),
        box_limits={
            k: (v.minimum_height, v.minimum_width, v.maximum_height, v.maximum_width)
            for k, v in ev.evaluation_box_config.items()
        },
        tfrecords=[s.tfrecords_path for s in exp.dataset_config.data_sources],
        image_dirs=[s.image_directory_path for s in exp.dataset_config.data_sources],
        pretrained_model_file=exp.model_config.pretrained_model_file,
        random_seed=exp.random_seed,
    )


def evaluation_kwargs_from_spec(exp: Experiment) -> dict:
    """Keyword arguments for :func:`cvlab.train.evaluate.evaluate_detections` from the spec's
    evaluation_config (IoU per class, AP mode, evaluation_box_config; 0 maximum = no limit)."""
    from cvlab.train.evaluate import NO_LIMIT, BoxLimits

    ev = exp.evaluation_config
    limits = {
        k: BoxLimits(
            v.minimum_height,
            v.minimum_width,
            v.maximum_height or NO_LIMIT,
            v.maximum_width or NO_LIMIT,
        )
        for k, v in ev.evaluation_box_config.items()
    }
    return {
        "iou_threshold": dict(ev.minimum_detection_ground_truth_overlap) or 0.5,
        "mode": ev.AP_MODE.Name(ev.average_precision_mode),
        "box_limits": limits,
    }
