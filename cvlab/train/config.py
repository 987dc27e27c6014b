"""The trainer's settings (TrainConfig) and how a TAO training spec maps onto them.

:class:`TrainConfig` is everything :func:`cvlab.train.trainer.train` needs (model, schedule,
cost, augmentation, rasterizer, validation). A TAO DetectNet_v2 training spec (read and checked
by :mod:`cvlab.formats.tao_spec`) becomes plain numbers with :func:`training_config_from_spec`
(:class:`TrainingParams`) and a ``TrainConfig`` with :meth:`TrainConfig.from_spec`; its
``evaluation_config`` becomes evaluator arguments with :func:`evaluation_kwargs_from_spec`.

Example:
    >>> from cvlab.formats.tao_spec import build_lab_spec
    >>> exp = build_lab_spec("/workspace/tfrecords/*", "/workspace/flir/images")
    >>> params = training_config_from_spec(exp)
    >>> params.input_size, params.class_names, params.num_epochs
    ((960, 544), ('person',), 60)
    >>> cfg = TrainConfig.from_spec(exp, pretrained_weights="peoplenet.hdf5")  # not the .tlt
    >>> cfg.model.input_size, cfg.epochs, cfg.batch_size, cfg.pretrained_weights
    ((960, 544), 60, 4, 'peoplenet.hdf5')
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field

from cvlab.detectnet import PEOPLENET_INPUT_SIZE
from cvlab.formats.tao_spec import Experiment, SpecError, load_training_spec
from cvlab.train.augment import AugmentConfig
from cvlab.train.losses import CostConfig
from cvlab.train.model import TINY_CONFIG, ModelConfig
from cvlab.train.targets import RasterizerConfig
from cvlab.train.validation import TaoValidation


# --- a TAO spec as plain numbers ------------------------------------------------------------
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
    target_class_mapping: dict[str, str] = field(default_factory=dict)
    all_projections: bool = True
    freeze_blocks: tuple[int, ...] = ()
    freeze_bn: bool = False
    use_batch_norm: bool = True
    load_graph: bool = False
    #: every scalar of augmentation_config's preprocessing (min_bbox_*), spatial_augmentation and
    #: color_augmentation, by proto field name (what :class:`AugmentConfig` takes from a spec)
    augmentation: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Nested plain dict (JSON-friendly)."""
        return asdict(self)


# --- which spec fields cvlab honours ----------------------------------------------------------
#: AugmentConfig fields a TAO spec has no field for, and their value for a spec's run (TAO shifts
#: brightness only through ``color_shift_stddev``).
_CVLAB_ONLY_AUGMENT = {"brightness_shift_max": 0.0}
#: augmentation fields TAO's default (multi-source) loader does not use.
_TAO_IGNORED_AUGMENT = {
    "min_bbox_width": "TAO's default loader ignores it (it always drops boxes under 1 px)",
    "min_bbox_height": "TAO's default loader ignores it (it always drops boxes under 1 px)",
    "vflip_probability": "TAO's default loader never flips vertically",
}


def _augmentation_fields(exp: Experiment) -> dict[str, tuple[str, float]]:
    """proto field name -> (dotted path, value) of augmentation_config's scalar training fields."""
    aug = exp.augmentation_config
    out = {
        name: (f"augmentation_config.preprocessing.{name}", getattr(aug.preprocessing, name))
        for name in ("min_bbox_width", "min_bbox_height")
    }
    for section in ("spatial_augmentation", "color_augmentation"):
        message = getattr(aug, section)
        for fd in message.DESCRIPTOR.fields:
            out[fd.name] = (f"augmentation_config.{section}.{fd.name}", getattr(message, fd.name))
    return out


def unsupported_spec_fields(exp: Experiment) -> Iterator[tuple[str, str]]:
    """``(field path, why)`` for every spec field that would change TAO's training but that
    cvlab's trainer does not implement (so :func:`training_config_from_spec` refuses it)."""
    ds = exp.dataset_config
    for i, source in enumerate(ds.data_sources):
        if source.source_weight not in (0.0, 1.0):
            yield (
                f"dataset_config.data_sources[{i}].source_weight",
                "per-source loss weights are not implemented",
            )
    if ds.WhichOneof("dataset_split_type") == "validation_data_source":
        yield (
            "dataset_config.validation_data_source",
            "cvlab validates on a fold of the training records (use validation_fold)",
        )
    if ds.dataloader_mode != ds.MULTISOURCE:
        yield (
            "dataset_config.dataloader_mode",
            "cvlab reproduces TAO's default MULTISOURCE data loader only",
        )
    pre = exp.augmentation_config.preprocessing
    for name in (
        "output_image_min",
        "output_image_max",
        "enable_auto_resize",
        "crop_left",
        "crop_top",
        "crop_right",
        "crop_bottom",
        "scale_width",
        "scale_height",
    ):
        if getattr(pre, name):
            yield (
                f"augmentation_config.preprocessing.{name}",
                "cropping/rescaling is not implemented",
            )
    if pre.output_image_channel not in (0, 3):
        yield ("augmentation_config.preprocessing.output_image_channel", "cvlab trains RGB (3)")
    known = {f.name for f in dataclasses.fields(AugmentConfig)} | set(_TAO_IGNORED_AUGMENT)
    for name, (where, value) in _augmentation_fields(exp).items():
        if value and name not in known:
            yield (where, "cvlab's augmentation does not implement it (set it to 0)")
    mc = exp.model_config
    if mc.use_pooling:
        yield (
            "model_config.use_pooling",
            "TAO's pooled ResNet has a 224-pixel output grid; DetectNet_v2 needs stride 16",
        )
    if mc.arch not in ("", "resnet"):
        yield ("model_config.arch", f"only 'resnet' is implemented, got {mc.arch!r}")
    if mc.num_layers not in (0, 10, 18, 34):
        yield ("model_config.num_layers", f"ResNet 10, 18 or 34, got {mc.num_layers}")
    bad_blocks = [b for b in mc.freeze_blocks if b not in (0, 1, 2, 3, 4)]
    if bad_blocks:
        yield ("model_config.freeze_blocks", f"blocks are 0 (conv1) to 4, got {bad_blocks}")
    if mc.objective_set.bbox.input or mc.objective_set.cov.input:
        yield (
            "model_config.objective_set",
            "the heads always take the last backbone layer (leave 'input' empty)",
        )
    if mc.training_precision.backend_floatx != mc.TrainingPrecision.FLOAT32:
        yield ("model_config.training_precision.backend_floatx", "cvlab trains in FLOAT32")
    if mc.load_graph and mc.allow_loaded_model_modification:
        yield (
            "model_config.allow_loaded_model_modification",
            "with load_graph cvlab loads the heads by name and needs them in the file",
        )
    for t in exp.cost_function_config.target_classes:
        extra = sorted({o.name for o in t.objectives} - {"cov", "bbox"})
        if extra:
            yield (
                f"cost_function_config.target_classes[{t.name!r}].objectives",
                f"only 'cov' and 'bbox' are implemented, got {extra}",
            )
    tc = exp.training_config
    if tc.learning_rate.WhichOneof("learning_rate") == "early_stopping_annealing_schedule":
        yield (
            "training_config.learning_rate.early_stopping_annealing_schedule",
            "use soft_start_annealing_schedule",
        )
    if tc.enable_qat:
        yield ("training_config.enable_qat", "quantization-aware training is not implemented")
    if exp.loss_mask_label_filter.objective_label_filter_configs:
        yield ("loss_mask_label_filter", "loss masks are not implemented")


def spec_fields_without_effect(exp: Experiment) -> Iterator[tuple[str, str]]:
    """``(field path, why)`` for set fields that change nothing in TAO's training either (or
    only TAO's logging); :func:`training_config_from_spec` warns about each."""
    mc, tc = exp.model_config, exp.training_config
    if mc.dropout_rate:
        yield ("model_config.dropout_rate", "TAO's ResNet template does not use it")
    if mc.activation.activation_type not in ("", "relu") or mc.activation.activation_parameters:
        yield ("model_config.activation", "TAO's ResNet template always uses ReLU")
    if mc.freeze_pretrained_layers:
        yield (
            "model_config.freeze_pretrained_layers",
            "TAO only checks that a pretrained model is given (use freeze_blocks)",
        )
    if mc.allow_loaded_model_modification and not mc.load_graph:
        yield ("model_config.allow_loaded_model_modification", "used by TAO with load_graph only")
    if exp.evaluation_config.early_stopping_patience_steps:
        yield (
            "evaluation_config.early_stopping_patience_steps",
            "used by TAO with early_stopping_annealing_schedule only",
        )
    if tc.cost_scaling.enabled:
        yield (
            "training_config.cost_scaling",
            "loss scaling for FP16; in FP32 the updates are the same without it",
        )
    if tc.visualizer.enabled:
        yield (
            "training_config.visualizer",
            "TAO's TensorBoard images; cvlab logs the scalars only",
        )
    if exp.dataset_export_config:
        yield ("dataset_export_config", "not read by TAO's train")
    known = {f.name for f in dataclasses.fields(AugmentConfig)}
    for name, (where, value) in _augmentation_fields(exp).items():
        if value and name in _TAO_IGNORED_AUGMENT and name not in known:
            yield (where, _TAO_IGNORED_AUGMENT[name])
    if len(exp.dataset_config.data_sources) < 2 and exp.dataset_config.sampling_mode:
        yield ("dataset_config.sampling_mode", "matters with several data_sources only")


def unset_fields_tao_fails_on(exp: Experiment) -> Iterator[tuple[str, str]]:
    """``(field path, why)`` for unset (0) fields whose 0 TAO's training refuses or trains
    nothing with, where cvlab would otherwise have to invent a value.

    * ``zoom_min`` 0 or above ``zoom_max``: TAO's ``AugmentationConfig.SpatialAugmentation``
      raises (``zoom_min must be > 0.0``, ``zoom_min must be <= zoom_max``).
    * ``max_objective_weight`` 0 with ``enable_autoweighting``: TAO's ``CostAutoWeightHook``
      clamps every objective weight to ``min(max(w, min_w), max_w)`` = 0 after the first
      epoch, so nothing trains from then on.
    """
    sp = exp.augmentation_config.spatial_augmentation
    where = "augmentation_config.spatial_augmentation"
    if sp.zoom_min > sp.zoom_max:
        yield (
            f"{where}.zoom_max",
            f"zoom_max ({sp.zoom_max:g}) is below zoom_min ({sp.zoom_min:g}); TAO raises "
            "'zoom_min must be <= zoom_max' (1.0 and 1.0: no zoom)",
        )
    elif sp.zoom_min <= 0:
        yield (
            f"{where}.zoom_min",
            f"zoom_min must be > 0, got {sp.zoom_min:g} (unset); TAO raises 'zoom_min must be "
            "> 0.0' (1.0 and 1.0: no zoom)",
        )
    cf = exp.cost_function_config
    if cf.enable_autoweighting and cf.max_objective_weight <= 0:
        yield (
            "cost_function_config.max_objective_weight",
            "is 0 (unset) with enable_autoweighting: TAO clamps every objective weight to 0 "
            "after the first epoch and stops learning; set it (TAO's default spec: 0.9999)",
        )


def check_spec_for_cvlab(exp: Experiment, source: str = "<spec>") -> None:
    """Raise :class:`SpecError` naming the first field cvlab cannot honour (or that TAO fails
    on: :func:`unset_fields_tao_fails_on`); warn (UserWarning) about each set field that has no
    effect (in TAO either)."""
    for where, why in unset_fields_tao_fails_on(exp):
        raise SpecError(f"{where}: {why}", path=source, field=where)
    for where, why in unsupported_spec_fields(exp):
        raise SpecError(f"not supported by cvlab's trainer: {why}", path=source, field=where)
    for where, why in spec_fields_without_effect(exp):
        warnings.warn(f"{source}: {where} has no effect: {why}", UserWarning, stacklevel=3)


def training_config_from_spec(exp: Experiment, source: str = "<spec>") -> TrainingParams:
    """Flatten a training spec into :class:`TrainingParams` for the Keras trainer.

    Refuses (:class:`SpecError` naming the field) what cvlab cannot train as TAO would
    (:func:`unsupported_spec_fields`) and warns about fields that have no effect.
    """
    check_spec_for_cvlab(exp, source)
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
        num_layers=exp.model_config.num_layers or 18,  # TAO: 0 -> 18
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
        target_class_mapping=dict(exp.dataset_config.target_class_mapping),
        all_projections=exp.model_config.all_projections,
        freeze_blocks=tuple(int(b) for b in exp.model_config.freeze_blocks),
        freeze_bn=exp.model_config.freeze_bn,
        use_batch_norm=exp.model_config.use_batch_norm,
        load_graph=exp.model_config.load_graph,
        augmentation={name: value for name, (_, value) in _augmentation_fields(exp).items()},
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


# --- the trainer's settings ---------------------------------------------------------------
#: ``(minimum_height, minimum_width)`` of the lab spec's ``evaluation_box_config``
#: (:func:`cvlab.formats.tao_spec.build_lab_spec`), in pixels of the prepared images.
EVALUATION_MIN_SIZE = (4.0, 4.0)


#: ``TrainConfig.from_spec(..., pretrained_weights=FROM_SPEC)``: take the spec's pretrained file.
FROM_SPEC = "<model_config.pretrained_model_file>"


@dataclass
class TrainConfig:
    """Everything a training run needs (mirrors the TAO training spec's sections).

    ``validate_every`` is TAO's ``validation_period_during_training`` (0: never) and
    ``first_validation_epoch`` its first validated epoch (None: ``validate_every``); the last
    epoch is always validated when validation is on. ``checkpoint_interval`` (epochs; 0 means
    10, as in TAO) spaces the checkpoints; the last epoch is always saved.
    ``target_class_mapping`` maps record classes to target classes as TAO's
    ``dataset_config.target_class_mapping`` (None: each target class maps to itself).
    ``pretrained_weights`` is a Keras HDF5 file loaded by layer name (backbone only unless
    ``load_graph``); encrypted ``.tlt``/``.etlt`` files are refused here, before training.
    """

    class_names: tuple[str, ...] = ("person",)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(input_size=PEOPLENET_INPUT_SIZE))
    epochs: int = 60
    batch_size: int = 8
    min_learning_rate: float = 5e-6
    max_learning_rate: float = 5e-4
    soft_start: float = 0.1
    annealing: float = 0.7
    cost: CostConfig | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    rasterizer: RasterizerConfig = field(default_factory=RasterizerConfig)
    validation_fold: int | None = 0
    validate_every: int = 10
    max_checkpoints: int = 3
    pretrained_weights: str | None = None
    seed: int = 0
    threads: int | None = None
    cache_images: bool = False
    target_class_mapping: dict[str, str] | None = None
    load_graph: bool = False
    first_validation_epoch: int | None = None
    checkpoint_interval: int = 10
    adam_epsilon: float = 1e-8
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    #: The spec's clustering + evaluation configs for the TAO-mode AP (None: the lab spec's).
    tao_validation: TaoValidation | None = None

    def __post_init__(self) -> None:
        from cvlab.train.model import check_weights_file

        self.class_names = tuple(n.lower() for n in self.class_names)
        if self.cost is None:
            self.cost = CostConfig.default(self.class_names)
        names = [t.name for t in self.cost.target_classes]
        if names != list(self.class_names):
            raise ValueError(
                f"cost_function_config target classes {names} differ from class_names "
                f"{list(self.class_names)}"
            )
        if not self.adam_epsilon > 0:
            raise ValueError(f"optimizer adam epsilon must be > 0, got {self.adam_epsilon}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(
                    f"optimizer adam {name[5:]} must be in [0, 1), got {getattr(self, name)}"
                )
        self.checkpoint_interval = int(self.checkpoint_interval) or 10  # TAO: 0 -> 10
        if self.checkpoint_interval < 0:
            raise ValueError(f"checkpoint_interval must be >= 0, got {self.checkpoint_interval}")
        if self.pretrained_weights:
            self.pretrained_weights = str(check_weights_file(self.pretrained_weights))
        else:
            self.pretrained_weights = None
            if self.model.freeze_blocks:
                raise ValueError(
                    "model_config.freeze_blocks needs pretrained weights (TAO refuses it too): "
                    "freezing randomly initialised blocks"
                )
            if self.load_graph:
                raise ValueError("model_config.load_graph needs pretrained weights")
        if self.target_class_mapping is not None:
            self.target_class_mapping = dict(self.target_class_mapping)

    def class_ids(self) -> dict[str, int]:
        """Record class name -> target class index, as TAO maps labels
        (:func:`source_class_ids`); classes not in it are dropped.

        >>> TrainConfig.tiny(class_names=("car",), target_class_mapping={"car": "car", "van": "car"}).class_ids()
        {'car': 0, 'van': 0}
        """
        return source_class_ids(self.class_names, self.target_class_mapping)

    @classmethod
    def tiny(cls, **overrides) -> TrainConfig:
        """ResNet-10 x0.25 at 320x256: trains on 2 CPU cores in minutes (see ``cvlab bench train``).

        Batch size 4 (twice the updates of 8 per epoch) converges much faster on the small
        synthetic thermal set; 32 epochs of 192 frames reach person AP >= 0.85. Checkpoints
        every epoch (quick resume of short runs). Its cost keeps bbox ``weight_target`` 1.0
        (TAO's default spec: 10.0): a deliberate CPU-config choice, listed in
        docs/tao_fidelity.md; specs and the other configs use TAO's values.
        """
        from cvlab.train.losses import Objective, TargetClassCost

        names = overrides.get("class_names", cls.class_names)
        tiny_cost = CostConfig(
            [
                TargetClassCost(
                    n.lower(), objectives=[Objective("cov", 1.0, 1.0), Objective("bbox", 10.0, 1.0)]
                )
                for n in names
            ]
        )
        base = dict(
            cost=tiny_cost,
            model=TINY_CONFIG,
            epochs=32,
            batch_size=4,
            min_learning_rate=1e-4,
            max_learning_rate=5e-3,
            soft_start=0.1,
            annealing=0.6,
            validate_every=10,
            cache_images=True,
            checkpoint_interval=1,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def from_spec(
        cls,
        spec,
        width_multiplier: float = 1.0,
        *,
        pretrained_weights: str | os.PathLike | None = FROM_SPEC,
    ) -> TrainConfig:
        """Build from a TAO DetectNet_v2 training spec (path, ``Experiment`` message or
        :class:`TrainingParams`); the spec is read by :mod:`cvlab.formats.tao_spec`.

        Every training field takes effect as in TAO or the spec is refused with a
        :class:`~cvlab.formats.tao_spec.SpecError` naming the field
        (:func:`unsupported_spec_fields`). ``pretrained_weights`` replaces the spec's
        ``model_config.pretrained_model_file`` (None: train from scratch); a ``.tlt``/``.etlt``
        file is refused with :class:`~cvlab.train.model.WeightsError`, which says how to get
        plain weights.
        """
        from cvlab.train.losses import Objective, TargetClassCost
        from cvlab.train.targets import TargetClassConfig

        params = spec
        source = "<spec>"
        if isinstance(spec, str | os.PathLike):
            source = str(spec)
            spec = load_training_spec(spec)
        if not isinstance(params, TrainingParams):
            params = training_config_from_spec(spec, source)
        names = tuple(params.class_names)
        cost = CostConfig(
            [
                TargetClassCost(
                    name,
                    class_weight=c.class_weight,
                    coverage_foreground_weight=c.coverage_foreground_weight,
                    objectives=[
                        Objective(o, c.objective_weights[o], c.objective_targets.get(o, 1.0))
                        for o in c.objective_weights
                    ],
                )
                for name, c in params.classes.items()
            ],
            enable_autoweighting=params.enable_autoweighting,
            # As the spec says (TAO): a 0 maximum with autoweighting is refused when the spec
            # is read (unset_fields_tao_fails_on); without autoweighting it is never used.
            max_objective_weight=params.max_objective_weight,
            min_objective_weight=params.min_objective_weight,
        )
        raster = RasterizerConfig(
            deadzone_radius=params.deadzone_radius,
            bbox_norm=params.bbox_scale,
            offset=params.bbox_offset,
            per_class=tuple(
                TargetClassConfig(*c.cov_center, *c.cov_radius, c.bbox_min_radius)
                for c in params.classes.values()
            ),
        )
        augment = augment_config_from_params(params)
        if pretrained_weights == FROM_SPEC:
            pretrained_weights = params.pretrained_model_file or None
        return cls(
            class_names=names,
            model=ModelConfig(
                input_size=tuple(params.input_size),
                num_layers=params.num_layers or 18,
                width_multiplier=width_multiplier,
                freeze_bn=params.freeze_bn,
                all_projections=params.all_projections,
                freeze_blocks=tuple(params.freeze_blocks),
                use_batch_norm=params.use_batch_norm,
                regularizer=params.regularizer,
                regularizer_weight=params.regularizer_weight,
            ),
            epochs=params.num_epochs,
            batch_size=params.batch_size,
            min_learning_rate=params.min_learning_rate,
            max_learning_rate=params.max_learning_rate,
            soft_start=params.soft_start,
            annealing=params.annealing,
            cost=cost,
            augment=augment,
            rasterizer=raster,
            validate_every=params.validation_period,
            first_validation_epoch=params.first_validation_epoch,
            checkpoint_interval=params.checkpoint_interval,
            adam_epsilon=params.adam_epsilon,
            adam_beta1=params.adam_beta1,
            adam_beta2=params.adam_beta2,
            pretrained_weights=str(pretrained_weights) if pretrained_weights else None,
            load_graph=params.load_graph,
            target_class_mapping=params.target_class_mapping or None,
            seed=params.random_seed,
            tao_validation=(
                TaoValidation.from_spec(spec, names, source=source)
                if isinstance(spec, Experiment)
                else None
            ),
        )


def augment_config_from_params(params: TrainingParams) -> AugmentConfig:
    """:class:`AugmentConfig` from a spec's augmentation fields, by proto field name.

    As TAO reads them: unset contrast_center is 0 (TAO's ``ColorAugmentation`` keeps the
    spec's value), unset rotate_probability 1.0; an unset zoom is refused when the spec is read
    (:func:`unset_fields_tao_fails_on`; 1.0 for hand-built params); cvlab-only settings
    (``brightness_shift_max``) are 0 so that only the spec's fields act. A spec field that
    AugmentConfig lacks must be 0 (:func:`unsupported_spec_fields` refuses it otherwise).
    """
    values = dict(params.augmentation)
    if not values:  # TrainingParams built by hand: the older named fields
        values = {
            "hflip_probability": params.hflip_probability,
            "translate_max_x": params.translate_max[0],
            "translate_max_y": params.translate_max[1],
            "zoom_min": params.zoom[0],
            "zoom_max": params.zoom[1],
            **params.color,
        }
    values["zoom_min"] = values.get("zoom_min") or 1.0
    values["zoom_max"] = values.get("zoom_max") or 1.0
    values["contrast_center"] = values.get("contrast_center") or 0.0  # TAO: unset = 0
    values["rotate_probability"] = values.get("rotate_probability") or 1.0  # TAO: unset = 1
    known = {f.name for f in dataclasses.fields(AugmentConfig)}
    kwargs = {k: v for k, v in _CVLAB_ONLY_AUGMENT.items() if k in known}
    kwargs.update({k: float(v) for k, v in values.items() if k in known})
    return AugmentConfig(**kwargs)


def source_class_ids(
    class_names: tuple[str, ...] | list[str], mapping: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Record class -> target class index under TAO's ``target_class_mapping``.

    TAO maps a record's class through the mapping twice (the data loader maps source -> target,
    then the rasterizer looks the already-mapped name up again), so a class keeps its boxes only
    when ``mapping[mapping[name]]`` is a target class; unmapped classes are dropped. Without a
    mapping every target class maps to itself.

    >>> source_class_ids(("car", "pedestrian"), {"car": "car", "van": "car", "pedestrian": "pedestrian"})
    {'car': 0, 'van': 0, 'pedestrian': 1}
    >>> source_class_ids(("car",), {"van": "car"})  # TAO drops every box: 'car' is not a key
    {}
    """
    names = [n.lower() for n in class_names]
    if not mapping:
        return {n: i for i, n in enumerate(names)}
    out = {}
    for source, target in mapping.items():
        final = mapping.get(target)
        if final in names:
            out[source] = names.index(final)
    return out
