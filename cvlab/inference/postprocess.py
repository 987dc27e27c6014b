"""DetectNet_v2 raw outputs -> :class:`~cvlab.detections.Detections` (decode + per-class clustering).

Example:
    >>> from cvlab.inference.clustering_config import default_config
    >>> import numpy as np
    >>> post = DetectNetPostprocessor(default_config(["person"]), model_size=(64, 32))
    >>> outputs = {"output_cov/Sigmoid:0": np.zeros((1, 1, 2, 4), np.float32),
    ...            "output_bbox/BiasAdd:0": np.zeros((1, 4, 2, 4), np.float32)}
    >>> len(post(outputs, image_size=(640, 320)))
    0
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from cvlab.detections import Detections
from cvlab.detectnet import BBOX_OUTPUT, COV_OUTPUT, PEOPLENET_INPUT_SIZE
from cvlab.inference.cluster import cluster_boxes
from cvlab.inference.clustering_config import PostprocessingConfig, load_clustering_config
from cvlab.inference.decode import decode_detectnet

COV_NAME = COV_OUTPUT
BBOX_NAME = BBOX_OUTPUT


def find_output(outputs: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """``outputs[name]`` or ``outputs[name + ':0']``; ``KeyError`` listing the names present."""
    for key in (name, f"{name}:0"):
        if key in outputs:
            return np.asarray(outputs[key])
    raise KeyError(
        f"model outputs lack {name!r} (or {name}:0); got {', '.join(map(repr, outputs))}"
    )


def legacy_cell_order(grid_shape: tuple[int, int]) -> np.ndarray:
    """Row-major cell indices in the column-major order tao-toolkit-triton-apps visits them."""
    gh, gw = grid_shape
    return np.arange(gh * gw).reshape(gh, gw).T.reshape(-1)


class DetectNetPostprocessor:
    """Turn ``output_cov/Sigmoid`` and ``output_bbox/BiasAdd`` of one image into Detections.

    Args:
        config: per-class clustering settings (and the stride), or the path of a
            tao-toolkit-triton-apps clustering prototxt.
        class_names: the model's classes in output-channel order; defaults to the config's
            order. Every name must have a config entry.
        model_size: model input ``(width, height)``.
        bbox_norm, offset: box decoding parameters (PeopleNet: 35, 0.5).
    """

    def __init__(
        self,
        config: PostprocessingConfig | str | os.PathLike,
        class_names: Sequence[str] | None = None,
        model_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
        bbox_norm: float = 35.0,
        offset: float = 0.5,
    ) -> None:
        if not isinstance(config, PostprocessingConfig):
            config = load_clustering_config(config)
        names = tuple(class_names) if class_names is not None else config.class_names
        self.config = config.for_classes(names)
        self.class_names = names
        self.model_size = (int(model_size[0]), int(model_size[1]))
        self.bbox_norm = float(bbox_norm)
        self.offset = float(offset)

    @property
    def stride(self) -> int:
        return self.config.stride

    def _split(self, outputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return find_output(outputs, COV_NAME), find_output(outputs, BBOX_NAME)

    def __call__(
        self,
        outputs: Mapping[str, np.ndarray],
        image_size: tuple[int, int],
        image_path: str | None = None,
    ) -> Detections:
        """Detections of one image; arrays may carry a leading batch dimension of 1."""
        cov, bbox = self._split(outputs)
        if cov.ndim == 4 or bbox.ndim == 4:
            if cov.shape[0] != 1 or bbox.shape[0] != 1:
                raise ValueError(
                    f"one image expected, got batch sizes {cov.shape[0]} (cov) and "
                    f"{bbox.shape[0]} (bbox); use .batch()"
                )
            cov, bbox = cov[0], bbox[0]
        return self._one(cov, bbox, image_size, image_path)

    def _one(
        self,
        cov: np.ndarray,
        bbox: np.ndarray,
        image_size: tuple[int, int],
        image_path: str | None,
    ) -> Detections:
        if cov.ndim == 3 and cov.shape[0] != len(self.class_names) and cov.size:
            raise ValueError(
                f"output_cov/Sigmoid has {cov.shape[0]} class channels but the postprocessor "
                f"has {len(self.class_names)} classes {self.class_names}"
            )
        grid = decode_detectnet(
            cov,
            bbox,
            model_size=self.model_size,
            image_size=image_size,
            stride=self.stride,
            bbox_norm=self.bbox_norm,
            offset=self.offset,
        )
        boxes, confs, ids = [], [], []
        legacy_order = None
        for c, name in enumerate(self.class_names):
            cfg = self.config.classes[name]
            cell_boxes, cell_cov = grid.boxes[c], grid.coverage[c]
            if cfg.algorithm == "dbscan_legacy":
                if legacy_order is None:
                    legacy_order = legacy_cell_order(grid.grid_shape)
                cell_boxes, cell_cov = cell_boxes[legacy_order], cell_cov[legacy_order]
            b, conf = cluster_boxes(cell_boxes, cell_cov, cfg)
            boxes.append(b)
            confs.append(conf)
            ids.append(np.full(len(b), c, np.int64))
        return Detections(
            xyxy=np.concatenate(boxes),
            confidence=np.concatenate(confs),
            class_id=np.concatenate(ids),
            class_names=self.class_names,
            image_size=grid.image_size,
            image_path=image_path,
        )

    def batch(
        self,
        outputs: Mapping[str, np.ndarray],
        image_sizes: Sequence[tuple[int, int]],
        image_paths: Sequence[str | None] | None = None,
    ) -> list[Detections]:
        """Detections of each image of a batch (arrays ``[N, C, gh, gw]`` / ``[N, 4C, gh, gw]``)."""
        cov, bbox = self._split(outputs)
        if cov.ndim != 4 or bbox.ndim != 4 or cov.shape[0] != bbox.shape[0]:
            raise ValueError(
                f"batched outputs must be [N, C, gh, gw] and [N, 4C, gh, gw] with the same N, "
                f"got {cov.shape} and {bbox.shape}"
            )
        n = cov.shape[0]
        if len(image_sizes) != n:
            raise ValueError(f"{n} images in the outputs but {len(image_sizes)} image sizes")
        paths = list(image_paths) if image_paths is not None else [None] * n
        if len(paths) != n:
            raise ValueError(f"{n} images in the outputs but {len(paths)} image paths")
        return [self._one(cov[i], bbox[i], image_sizes[i], paths[i]) for i in range(n)]
