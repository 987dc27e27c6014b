"""Training progress: validation frames' output grids -> Detections and AP, exact and as TAO reports it.

Every validation computes two mean APs from the same model outputs:

* **exact** (history columns ``mAP``, ``ap_<class>``): the grids are clustered by the core
  post-processor that inference uses (:class:`cvlab.inference.postprocess.DetectNetPostprocessor`:
  DBSCAN on 1-IoU distances) with the PeopleNet IR clustering config
  (``cvlab.inference.clustering_config.PEOPLENET_IR_CONFIG``) for the classes it has and
  :func:`cvlab.inference.clustering_config.default_config` for the others, and a low
  ``dbscan_confidence_threshold`` (:data:`VALIDATION_CONFIDENCE_THRESHOLD`: AP integrates
  precision over every confidence level, the inference threshold is one point on it); boxes in
  original-image pixels, AP at IoU 0.5 with the exact INTEGRATE area
  (:func:`cvlab.train.evaluate.evaluate_detections`).
* **TAO** (``mAP_tao``, ``ap_tao_<class>``): what TAO's ``detectnet_v2 train`` logs and
  ``detectnet_v2 evaluate`` prints, from the training spec's ``postprocessing_config`` and
  ``evaluation_config`` (:class:`TaoValidation`): boxes decoded and clustered in model-input
  pixels as TAO's training-time path does (:func:`cvlab.inference.tao_cluster.tao_cluster`),
  evaluated with ``convention="tao"`` (rounded corners, ``+1`` IoU, TAO's SAMPLE/INTEGRATE).

Example:
    >>> tao = TaoValidation.lab_default(("person",))
    >>> tao.mode, tao.iou_thresholds, tao.clustering.classes["person"].algorithm
    ('INTEGRATE', {'person': 0.5}, 'dbscan')
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cvlab.detections import Detections
from cvlab.detectnet import BBOX_OUTPUT, COV_OUTPUT
from cvlab.inference.clustering_config import PostprocessingConfig
from cvlab.train.evaluate import BoxLimits, EvaluationResult

#: Cluster confidence (summed coverage) kept for AP computation; inference uses a higher one.
VALIDATION_CONFIDENCE_THRESHOLD = 0.05


def validation_postprocessor(
    class_names: Sequence[str],
    model_size: tuple[int, int],
    *,
    bbox_norm: float = 35.0,
    offset: float = 0.5,
    confidence_threshold: float = VALIDATION_CONFIDENCE_THRESHOLD,
):
    """The inference post-processor (IR clustering config) with a low confidence threshold.

    Example:
        >>> post = validation_postprocessor(("person",), (320, 256))
        >>> post.config.classes["person"].dbscan_confidence_threshold
        0.05
    """
    from cvlab.inference.clustering_config import (
        PEOPLENET_IR_CONFIG,
        default_config,
        load_clustering_config,
    )
    from cvlab.inference.postprocess import DetectNetPostprocessor

    with warnings.catch_warnings():
        # The IR file's legacy float dbscan_min_samples (0.05) maps to 1, as at inference.
        warnings.simplefilter("ignore", UserWarning)
        ir = load_clustering_config(PEOPLENET_IR_CONFIG)
    defaults = default_config(list(class_names))
    classes = {
        name: dataclasses.replace(
            ir.classes.get(name, defaults.classes[name]),
            dbscan_confidence_threshold=confidence_threshold,
        )
        for name in class_names
    }
    config = PostprocessingConfig(classes, linewidth=ir.linewidth, stride=ir.stride)
    return DetectNetPostprocessor(config, list(class_names), model_size, bbox_norm, offset)


def detections_from_outputs(
    cov: np.ndarray,
    bbox: np.ndarray,
    class_names: Sequence[str],
    model_size: tuple[int, int],
    image_size: tuple[int, int],
    *,
    postprocessor=None,
    image_path: str | None = None,
) -> Detections:
    """One image's ``cov [C,gh,gw]`` / ``bbox [4C,gh,gw]`` -> clustered :class:`Detections`.

    ``postprocessor`` defaults to :func:`validation_postprocessor` (build it once for many images).
    """
    post = postprocessor or validation_postprocessor(class_names, model_size)
    return post({COV_OUTPUT: cov, BBOX_OUTPUT: bbox}, image_size, image_path)


# --- TAO's validation --------------------------------------------------------------------------
@dataclass(frozen=True)
class TaoValidation:
    """A training spec's ``postprocessing_config`` and ``evaluation_config``, as TAO validates.

    Attributes:
        clustering: per-class ``dbscan``/``nms`` settings (read with ``tao_training=True``).
        iou_thresholds: ``minimum_detection_ground_truth_overlap`` per class.
        mode: ``average_precision_mode``, ``"SAMPLE"`` or ``"INTEGRATE"``.
        box_limits: ``evaluation_box_config`` per class (a maximum of 0 means no limit).
    """

    clustering: PostprocessingConfig
    iou_thresholds: dict[str, float]
    mode: str
    box_limits: dict[str, BoxLimits]

    @classmethod
    def from_spec(
        cls, spec, class_names: Sequence[str] | None = None, *, source: str | None = None
    ) -> TaoValidation:
        """From a training spec (path or ``Experiment``), for ``class_names`` (default: the
        spec's target classes); ``source`` names the spec in errors.

        Raises:
            ConfigError: a class missing from ``postprocessing_config``, ``evaluation_config``'s
                overlap map or box map (the message names the field), HYBRID clustering (TAO's
                training refuses it) or a value TAO's spec validator rejects.
        """
        from cvlab.errors import ConfigError
        from cvlab.formats.tao_spec import load_training_spec
        from cvlab.inference.clustering_config import load_training_postprocessing
        from cvlab.train.config import evaluation_kwargs_from_spec

        source = source or (str(spec) if isinstance(spec, str | os.PathLike) else "<spec>")
        exp = load_training_spec(spec) if isinstance(spec, str | os.PathLike) else spec
        names = tuple(class_names or [t.name for t in exp.cost_function_config.target_classes])
        ev = exp.evaluation_config
        for field_path, mapping in (
            (
                "postprocessing_config.target_class_config",
                exp.postprocessing_config.target_class_config,
            ),
            (
                "evaluation_config.minimum_detection_ground_truth_overlap",
                ev.minimum_detection_ground_truth_overlap,
            ),
            ("evaluation_config.evaluation_box_config", ev.evaluation_box_config),
        ):
            missing = [n for n in names if n not in mapping]
            if missing:
                raise ConfigError(
                    f"no entry for class(es) {missing}: TAO's validation needs one per target "
                    "class",
                    path=source,
                    field=field_path,
                )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # legacy float min_samples: TAO's int()
            clustering = load_training_postprocessing(exp, class_names=names, tao_training=True)
        kwargs = evaluation_kwargs_from_spec(exp)
        return cls(
            clustering=dataclasses.replace(clustering, source=source),
            iou_thresholds={n: float(kwargs["iou_threshold"][n]) for n in names},
            mode=kwargs["mode"],
            box_limits={n: kwargs["box_limits"][n] for n in names},
        )

    @classmethod
    def lab_default(cls, class_names: Sequence[str]) -> TaoValidation:
        """The lab spec's settings (:func:`cvlab.formats.tao_spec.build_lab_spec`)."""
        from cvlab.formats.tao_spec import build_lab_spec

        return cls.from_spec(build_lab_spec("", "", class_names=tuple(class_names)))

    def evaluate(
        self, predictions: Sequence[Detections], ground_truth: Sequence[Detections]
    ) -> EvaluationResult:
        """TAO's AP of :func:`tao_detections_from_outputs` against :func:`ground_truth_detections`."""
        from cvlab.train.evaluate import evaluate_detections

        return evaluate_detections(
            predictions,
            ground_truth,
            self.clustering.class_names,
            iou_threshold=self.iou_thresholds,
            mode=self.mode,
            box_limits=self.box_limits,
            convention="tao",
        )


def tao_detections_from_outputs(
    cov: np.ndarray,
    bbox: np.ndarray,
    model_size: tuple[int, int],
    settings: TaoValidation,
    *,
    bbox_norm: float = 35.0,
    offset: float = 0.5,
) -> Detections:
    """One image's ``cov [C,gh,gw]`` / ``bbox [4C,gh,gw]`` -> Detections in model-input pixels,
    decoded and clustered as TAO's training-time validation does (classes in the order of
    ``settings.clustering``, which is the output channel order)."""
    from cvlab.inference.decode import decode_detectnet
    from cvlab.inference.tao_cluster import tao_cluster

    names = settings.clustering.class_names
    grid = decode_detectnet(
        cov,
        bbox,
        model_size=model_size,
        image_size=model_size,
        stride=settings.clustering.stride,
        bbox_norm=bbox_norm,
        offset=offset,
    )
    boxes, conf, ids = [], [], []
    for c, name in enumerate(names):
        b, s = tao_cluster(grid.boxes[c], grid.coverage[c], settings.clustering.classes[name])
        boxes.append(b)
        conf.append(s)
        ids.append(np.full(len(b), c, np.int64))
    return Detections(
        np.concatenate(boxes), np.concatenate(conf), np.concatenate(ids), names, grid.image_size
    )


def ground_truth_detections(
    classes: Sequence[str],
    boxes: np.ndarray,
    image_size: tuple[int, int],
    class_names: Sequence[str],
    frame_size: tuple[int, int],
    class_ids: Mapping[str, int] | None = None,
) -> Detections:
    """One frame's labelled boxes (in ``image_size`` pixels) -> Detections in ``frame_size``
    pixels: the model input for TAO's ground truth, the image itself for the exact AP.

    Boxes are scaled by ``frame / image`` in float32, as the input pipeline resizes the frame;
    ``class_ids`` maps record classes to target indices (TAO's ``target_class_mapping``; default:
    each target class to itself); other classes are dropped, as TAO drops its ``'-1'`` class.

    >>> gt = ground_truth_detections(["car", "van"], [[1, 1, 2, 2], [3, 3, 4, 4]], (64, 32),
    ...                             ["car"], (32, 32))
    >>> gt.xyxy.tolist(), gt.names
    ([[0.5, 1.0, 1.0, 2.0]], ['car'])
    """
    names = tuple(class_names)
    ids = class_ids if class_ids is not None else {n: i for i, n in enumerate(names)}
    target = [ids.get(str(c).lower(), -1) for c in classes]
    keep = [k for k, t in enumerate(target) if t >= 0]
    scale = np.array(
        [
            np.float32(frame_size[0]) / np.float32(image_size[0]),
            np.float32(frame_size[1]) / np.float32(image_size[1]),
        ]
        * 2,
        np.float32,
    )
    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)[keep] * scale
    return Detections(
        xyxy,
        np.ones(len(keep), np.float32),
        [target[k] for k in keep],
        names,
        (int(frame_size[0]), int(frame_size[1])),
    )


# --- both results ------------------------------------------------------------------------------
@dataclass
class ValidationResult:
    """The exact and the TAO evaluation of one validation pass."""

    exact: EvaluationResult
    tao: EvaluationResult

    @property
    def mean_ap(self) -> float:
        """The exact mean AP."""
        return self.exact.mean_ap

    @property
    def ap(self) -> dict[str, float]:
        """Class name -> exact AP."""
        return self.exact.ap

    def history_columns(self) -> dict[str, float]:
        """``mAP``, ``ap_<class>`` (exact) and ``mAP_tao``, ``ap_tao_<class>`` (TAO), side by side.

        >>> import pandas as pd
        >>> r = EvaluationResult(pd.DataFrame({"class": ["person"], "ap": [0.5]}), {}, "", 0.5)
        >>> ValidationResult(r, r).history_columns()
        {'mAP': 0.5, 'mAP_tao': 0.5, 'ap_person': 0.5, 'ap_tao_person': 0.5}
        """
        out = {"mAP": self.exact.mean_ap, "mAP_tao": self.tao.mean_ap}
        for name, ap in self.exact.ap.items():
            out[f"ap_{name}"] = ap
            out[f"ap_tao_{name}"] = self.tao.ap.get(name, float("nan"))
        return out
