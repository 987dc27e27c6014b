"""Training progress: output grids -> Detections for validation, and the loss/mAP plot.

Validation decodes each image's grids with :func:`cvlab.decode.decode_detectnet` and merges the
cell candidates of each class with greedy NMS (:func:`cvlab.cluster.nms`), confidence = cell
coverage, each kept box replaced by the coverage-weighted mean of the cell boxes overlapping it
(as TAO's clustering averages a cluster's boxes); the core DBSCAN post-processor (:class:`cvlab.postprocess.DetectNetPostprocessor`) is
used instead when ``method="postprocessor"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cvlab.detections import Detections


def detections_from_outputs(
    cov: np.ndarray,
    bbox: np.ndarray,
    class_names: Sequence[str],
    model_size: tuple[int, int],
    image_size: tuple[int, int],
    *,
    coverage_threshold: float = 0.02,
    nms_iou: float = 0.4,
    method: str = "nms",
    image_path: str | None = None,
) -> Detections:
    """One image's ``cov [C,gh,gw]`` / ``bbox [4C,gh,gw]`` -> clustered :class:`Detections`."""
    if method == "postprocessor":
        from cvlab.postprocess import DetectNetPostprocessor
        from cvlab.postprocess_config import default_config

        post = DetectNetPostprocessor(default_config(list(class_names)), list(class_names))
        return post(
            {"output_cov/Sigmoid": cov, "output_bbox/BiasAdd": bbox}, image_size, image_path
        )
    from cvlab.cluster import iou_matrix, nms
    from cvlab.decode import decode_detectnet

    grid = decode_detectnet(cov, bbox, model_size=model_size, image_size=image_size)
    parts = []
    for c in range(len(class_names)):
        boxes, scores = grid.boxes[c], grid.coverage[c]
        ok = (
            (scores >= coverage_threshold)
            & (boxes[:, 2] > boxes[:, 0])
            & (boxes[:, 3] > boxes[:, 1])
        )
        idx = np.flatnonzero(ok)
        boxes, scores = boxes[idx], scores[idx]
        keep = nms(boxes, scores, iou_threshold=nms_iou) if idx.size else idx
        merged = np.zeros((len(keep), 4), np.float32)
        confidence = np.zeros(len(keep), np.float32)
        if len(keep):
            # Each kept box becomes the coverage-weighted mean of the cells overlapping it.
            member = iou_matrix(boxes)[keep] > nms_iou
            weights = member * scores[None, :]
            merged = (weights @ boxes) / weights.sum(axis=1, keepdims=True)
            confidence = scores[keep]
        parts.append(Detections(merged, confidence, np.full(len(keep), c), class_names, image_size))
    merged_dets = Detections.merge(parts)
    merged_dets.image_path = image_path
    return merged_dets


def plot_training(history, ax=None):
    """Loss terms (log scale) and validation mAP per epoch from a training history DataFrame.

    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(11, 4))
    else:
        fig, ax_loss, ax_map = ax.figure, ax, ax.twinx()
    loss_cols = [c for c in history.columns if c == "loss" or c.endswith("_loss")]
    for col in loss_cols:
        ax_loss.plot(history["epoch"], history[col], marker="o", label=col)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    if "mAP" in history.columns and history["mAP"].notna().any():
        valid = history[history["mAP"].notna()]
        ax_map.plot(valid["epoch"], valid["mAP"], marker="s", color="tab:green", label="mAP")
        ax_map.set_ylim(0, 1)
        ax_map.legend(fontsize=8)
    ax_map.set_xlabel("epoch")
    ax_map.set_ylabel("validation mAP (IoU 0.5)")
    ax_map.grid(alpha=0.3)
    fig.suptitle("DetectNet_v2 training")
    fig.tight_layout()
    return fig
