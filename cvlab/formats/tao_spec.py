"""TAO DetectNet_v2 specs as real protobuf: read, check, build and write.

Two specs, both protobuf text format with TAO's schema (``cvlab/protos/detectnet_v2/*.proto``,
TAO's messages, field names and numbers):

* the training spec (``detectnet_v2 train -e SPEC``, an ``Experiment``):
  :func:`load_training_spec`, :func:`validate_training_spec`, :func:`build_lab_spec`,
  :func:`write_training_spec`; how it maps onto the Keras trainer is
  :mod:`cvlab.train.config`;
* the ``dataset_convert`` spec (``detectnet_v2 dataset_convert -d SPEC``, a
  ``DatasetExportConfig`` with a ``kitti_config``): :func:`load_dataset_convert_spec`,
  :func:`build_dataset_convert_spec` (:func:`build_lab_convert_spec` for the lab's shipped
  ``dataset_convert_flir.txt``), :func:`write_dataset_convert_spec`.

Every problem is a :class:`SpecError`: parse errors carry the file, line and column (unknown
fields, wrong types, as protobuf's own ``text_format`` parser reports them), inconsistent values
the dotted field path.

Example:
    >>> exp = build_lab_spec("/workspace/tfrecords/*", "/workspace/flir/images")
    >>> exp.model_config.num_layers, exp.training_config.num_epochs
    (34, 60)
    >>> k = build_dataset_convert_spec("/data/out", val_split=10, num_shards=10).kitti_config
    >>> k.image_dir_name, k.image_extension, k.partition_mode, k.val_split
    ('images', '.jpg', 'random', 10.0)
    >>> print(spec_to_text(build_lab_convert_spec()).splitlines()[1])
      root_directory_path: "/workspace/tao-experiments/data/flir/kitti"
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from google.protobuf import text_format

from cvlab.detectnet import PEOPLENET_INPUT_SIZE, STRIDE
from cvlab.errors import ConfigError
from cvlab.fileio import atomic_write_text
from cvlab.protos.detectnet_v2 import dataset_export_config_pb2, experiment_pb2
from cvlab.resources import LAB_CONVERT_SPEC_NAME, LAB_TRAINING_SPEC_NAME, resource_path

Experiment = experiment_pb2.Experiment
DatasetExportConfig = dataset_export_config_pb2.DatasetExportConfig

#: The lab's specs, shipped in :mod:`cvlab.resources`.
LAB_TRAINING_SPEC = resource_path(LAB_TRAINING_SPEC_NAME)
LAB_CONVERT_SPEC = resource_path(LAB_CONVERT_SPEC_NAME)
SPECS_DIR = LAB_TRAINING_SPEC.parent
#: The lab's KITTI folder in the TAO container: ``dataset_convert``'s input, training images.
LAB_KITTI_ROOT = "/workspace/tao-experiments/data/flir/kitti"


class SpecError(ConfigError):
    """A spec that cannot be read, parsed or is inconsistent.

    ``path``, ``line`` and ``column`` say where a parse error is (the message starts with
    ``path:line:column:``); ``field`` is the dotted path of an inconsistent field.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, path=path, line=line, field=field)
        self.column = column
        if line is not None and column is not None:
            where = f"{self.path}:{line}" if self.path else f"line {line}"
            text = str(self)
            self.args = (f"{where}:{column}{text[len(where) :]}",)


# --- reading and writing --------------------------------------------------------------------
def parse_spec_text(text: str, message, source: str | os.PathLike = "<spec>"):
    """Parse protobuf text into ``message`` (returned); errors name ``source``, line and column."""
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        detail = str(exc).split(" : ", 1)[-1]
        if exc.GetLine():
            raise SpecError(
                detail, path=source, line=exc.GetLine(), column=exc.GetColumn()
            ) from None
        raise SpecError(detail, path=source) from None
    return message


def _parse(path: str | os.PathLike, message):
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror or exc}", path=path) from None
    return parse_spec_text(text, message, path)


def load_training_spec(path: str | os.PathLike, validate: bool = True) -> Experiment:
    """Parse a DetectNet_v2 training spec (text format) into an ``Experiment`` message.

    Raises :class:`SpecError` with ``file:line:column`` for syntax errors and unknown fields,
    and with the field path for inconsistent values (when ``validate``).
    """
    exp = _parse(path, Experiment())
    if validate:
        validate_training_spec(exp, source=str(path))
    return exp


def _check_convert_spec(spec: DatasetExportConfig, source: str | os.PathLike) -> None:
    if spec.WhichOneof("convert_config_type") is None:
        raise SpecError("needs kitti_config or coco_config", path=source)


def load_dataset_convert_spec(path: str | os.PathLike) -> DatasetExportConfig:
    """Parse a ``detectnet_v2 dataset_convert -d SPEC`` file (it needs a kitti/coco config)."""
    spec = _parse(path, DatasetExportConfig())
    _check_convert_spec(spec, path)
    return spec


def spec_to_text(message) -> str:
    """Protobuf text format, as TAO's own spec files are written."""
    return text_format.MessageToString(message)


def write_training_spec(experiment: Experiment, path: str | os.PathLike) -> Path:
    """Validate ``experiment`` and write it as a text-format spec, atomically; returns the path."""
    validate_training_spec(experiment, source=str(path))
    atomic_write_text(path, spec_to_text(experiment))
    return Path(path)


def write_dataset_convert_spec(spec: DatasetExportConfig, path: str | os.PathLike) -> Path:
    """Write a dataset_convert spec (text format) atomically; returns the path."""
    _check_convert_spec(spec, path)
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
                f"augmentation_config.preprocessing.{name} = {value}: "
                f"must be a positive multiple of {STRIDE}",
                path=source,
                field=f"augmentation_config.preprocessing.{name}",
            )
    classes = [t.name for t in exp.cost_function_config.target_classes]
    if not classes:
        raise SpecError(
            "cost_function_config.target_classes is empty",
            path=source,
            field="cost_function_config.target_classes",
        )
    for t in exp.cost_function_config.target_classes:
        names = {o.name for o in t.objectives}
        if not {"cov", "bbox"} <= names:
            where = f"cost_function_config.target_classes[{t.name!r}].objectives"
            raise SpecError(
                f"{where} must include 'cov' and 'bbox', got {sorted(names)}",
                path=source,
                field=where,
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
            raise SpecError(
                f"{field_path} has no entry for class(es) {missing}", path=source, field=field_path
            )
    _check_class_mapping(exp, classes, source)
    _check_optimizer_and_regularizer(exp, source)
    tc = exp.training_config
    if tc.num_epochs <= 0 or tc.batch_size_per_gpu <= 0:
        raise SpecError(
            f"training_config.num_epochs and training_config.batch_size_per_gpu must be > 0 "
            f"(got {tc.num_epochs}, {tc.batch_size_per_gpu})",
            path=source,
            field=f"training_config.{'num_epochs' if tc.num_epochs <= 0 else 'batch_size_per_gpu'}",
        )
    if tc.learning_rate.WhichOneof("learning_rate") == "soft_start_annealing_schedule":
        lr = tc.learning_rate.soft_start_annealing_schedule
        where = "training_config.learning_rate.soft_start_annealing_schedule"
        if not 0 <= lr.soft_start <= lr.annealing <= 1:
            raise SpecError(
                f"{where}: need "
                f"0 <= soft_start ({lr.soft_start:g}) <= annealing ({lr.annealing:g}) <= 1",
                path=source,
                field=where,
            )
        if not 0 < lr.min_learning_rate <= lr.max_learning_rate:
            raise SpecError(
                f"{where}: need 0 < min_learning_rate <= max_learning_rate",
                path=source,
                field=where,
            )
    elif tc.learning_rate.WhichOneof("learning_rate") is None:
        raise SpecError(
            "training_config.learning_rate is not set",
            path=source,
            field="training_config.learning_rate",
        )


def _check_class_mapping(exp: Experiment, classes: list[str], source: str) -> None:
    """TAO's converters lower-case record classes and TAO applies the mapping twice (loader,
    then rasterizer), so keys must be lower case and every target class must map to itself;
    otherwise TAO silently trains on no boxes of that class."""
    where = "dataset_config.target_class_mapping"
    mapping = exp.dataset_config.target_class_mapping
    if not mapping:
        return
    upper = sorted(k for k in mapping if k != k.lower())
    if upper:
        raise SpecError(
            f"{where}: keys {upper} are not lower case; TAO's dataset_convert lower-cases "
            "class names, so they never match a record",
            path=source,
            field=where,
        )
    unmapped = [c for c in classes if mapping.get(c) != c]
    if unmapped:
        raise SpecError(
            f"{where}: target class(es) {unmapped} of cost_function_config must map to "
            f'themselves (add e.g. key: "{unmapped[0]}" value: "{unmapped[0]}"): TAO applies '
            "the mapping twice and drops their boxes otherwise",
            path=source,
            field=where,
        )


def _check_optimizer_and_regularizer(exp: Experiment, source: str) -> None:
    """TAO's ``build_optimizer`` / ``build_regularizer`` checks (Adam has no defaults: an
    omitted epsilon is 0 and refused)."""
    tc = exp.training_config
    adam = tc.optimizer.adam
    where = "training_config.optimizer.adam"
    if not adam.epsilon > 0:
        raise SpecError(
            f"{where}.epsilon must be > 0 (got {adam.epsilon:g})",
            path=source,
            field=f"{where}.epsilon",
        )
    for name in ("beta1", "beta2"):
        value = getattr(adam, name)
        if not 0 <= value < 1:
            raise SpecError(
                f"{where}.{name} must be in [0, 1) (got {value:g})",
                path=source,
                field=f"{where}.{name}",
            )
    if tc.regularizer.weight < 0:
        raise SpecError(
            f"training_config.regularizer.weight must be >= 0 (got {tc.regularizer.weight:g})",
            path=source,
            field="training_config.regularizer.weight",
        )


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
    root_directory_path: str | os.PathLike,
    *,
    image_dir_name: str = "images",
    label_dir_name: str = "labels",
    image_extension: str = ".jpg",
    num_partitions: int = 2,
    num_shards: int = 10,
    val_split: float = 10,
    class_names: Sequence[str] = (),
) -> DatasetExportConfig:
    """A ``dataset_convert`` spec: KITTI folders -> TFRecords, TAO's random partition mode
    (2 folds, fold 0 = validation; what :func:`cvlab.formats.tfrecords.write_tfrecords` writes).

    ``image_extension`` carries the dot (TAO appends it to frame ids as is).
    ``class_names`` become an identity ``target_class_mapping`` (none by default).
    """
    spec = DatasetExportConfig()
    k = spec.kitti_config
    k.root_directory_path = str(root_directory_path)
    k.image_dir_name, k.label_dir_name = image_dir_name, label_dir_name
    k.image_extension = image_extension
    k.partition_mode = "random"
    k.num_partitions, k.num_shards, k.val_split = num_partitions, int(num_shards), float(val_split)
    spec.image_directory_path = str(root_directory_path)
    for name in class_names:
        spec.target_class_mapping[name] = name
    return spec


def build_lab_convert_spec(
    root_directory_path: str | os.PathLike = LAB_KITTI_ROOT,
) -> DatasetExportConfig:
    """The lab's ``dataset_convert_flir.txt``: FLIR KITTI folders with ``.jpeg`` images, 14 %
    validation, 10 shards per fold, class ``person``."""
    return build_dataset_convert_spec(
        root_directory_path, image_extension=".jpeg", val_split=14, class_names=("person",)
    )
