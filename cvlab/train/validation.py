"""Training progress: the output grids of validation frames -> Detections, as inference clusters them.

Validation clusters the grids with the core post-processor that inference uses
(:class:`cvlab.inference.postprocess.DetectNetPostprocessor`: DBSCAN on 1-IoU distances), with the
PeopleNet IR clustering config (``cvlab.inference.clustering_config.PEOPLENET_IR_CONFIG``) for the classes
it has and :func:`cvlab.inference.clustering_config.default_config` for the others. The only change is a
low ``dbscan_confidence_threshold`` (:data:`VALIDATION_CONFIDENCE_THRESHOLD`): AP integrates
precision over every confidence level, so low-confidence clusters must be kept for the
precision/recall curve; the inference threshold (0.9 in the IR config) is one point on it.
DBSCAN weighs each cell by its coverage (``min_samples`` 1), so, as at inference, a cluster
needs a summed coverage of at least 1 to exist.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np

from cvlab.detections import Detections
from cvlab.detectnet import BBOX_OUTPUT, COV_OUTPUT

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
        PostprocessingConfig,
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
