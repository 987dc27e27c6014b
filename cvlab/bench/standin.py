"""``cvlab bench standin``: the shipped RGB stand-in on held-out real video frames: person AP against its teacher's, duplicate boxes, frames/s through Triton, and real photos.

The frames scored are the held-out end of ``vtest.avi`` (frames 600-794, never trained, tuned or
thresholded on), every 5th one, against person boxes checked by eye
(:func:`cvlab.datasets.video.heldout_truth`). Each frame goes the notebook's way: JPEG ->
:func:`cvlab.inference.preprocess.preprocess_images` -> the shipped ONNX (onnxruntime, as
Triton's python backend runs it) -> the stand-in's clustering config -> TAO's AP (IoU 0.5,
INTEGRATE, boxes of at least 4x4 px). The *teacher* is SSDLite run as its authors run it (one
300x300 pass per frame, scores from 0.05): the student must beat it. A *duplicate* is a pair of
person boxes matched (best IoU > 0.5) to the same person. The frame rate is the lab's client
(``cvlab infer``'s pipeline) against a local Triton serving ``peoplenet_rgb_standin``, over all
195 held-out frames. The real photos (``messi5.jpg``, ``basketball1/2.png``,
``grace_hopper.jpg``) are out of domain: what the model finds there is printed, never scored
against a target. Targets: person AP >= :data:`AP_TARGET` and above the teacher's, at most
:data:`MAX_DUPLICATES_PER_30` duplicate per 30 people (none: notebook 01's scored frames are these).

Example:
    $ cvlab bench standin
    $ cvlab bench standin --no-triton   # AP and duplicates only
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Minimum held-out person AP (and it must beat the teacher's).
AP_TARGET = 0.80
#: Most duplicate person pairs per 30 people: none.
MAX_DUPLICATES_PER_30 = 0.0


@dataclass
class StandinScore:
    """What :func:`score_standin` measured: TAO's evaluation (``per_class``, ``ap``), the
    duplicate person pairs and the detections per frame."""

    evaluation: Any  # cvlab.train.evaluate.EvaluationResult
    duplicates: int
    detections: list[Any]

    @property
    def ap(self) -> dict[str, float]:
        return dict(self.evaluation.ap)


def duplicate_pairs(predictions: Sequence[Any], truth: Sequence[Any], name: str = "person") -> int:
    """Pairs of ``name`` detections matched (best IoU, IoU > 0.5) to the same ground-truth box.

    Example:
        >>> from cvlab.detections import Detections
        >>> gt = [Detections([[0, 0, 10, 20]], [1.0], [0], ("person",), (64, 64))]
        >>> two = [Detections([[0, 0, 10, 20], [0, 1, 10, 21]], [2.0, 1.5], [0, 0], ("person",), (64, 64))]
        >>> duplicate_pairs(two, gt), duplicate_pairs(gt, gt)
        (1, 0)
    """
    from cvlab.train.evaluate import box_iou

    pairs = 0
    for pred, gt in zip(predictions, truth, strict=True):
        p = pred.xyxy[np.asarray(pred.names) == name] if len(pred) else np.zeros((0, 4))
        g = gt.xyxy[np.asarray(gt.names) == name] if len(gt) else np.zeros((0, 4))
        if not len(p) or not len(g):
            continue
        iou = np.stack([box_iou(g, box) for box in p])  # (predictions, truth)
        best = iou.argmax(axis=1)
        matched = best[iou[np.arange(len(p)), best] > 0.5]
        counts = np.bincount(matched, minlength=len(g))
        pairs += int((counts * (counts - 1) // 2).sum())
    return pairs


def onnx_runner(onnx_path: str | os.PathLike[str]) -> Callable[[np.ndarray], dict]:
    """``NCHW batch -> {output name: array}`` with onnxruntime on the CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]

    def run(batch: np.ndarray) -> dict:
        return dict(zip(names, session.run(None, {input_name: batch}), strict=True))

    return run


def detect_with(
    run: Callable[[np.ndarray], dict],
    input_size: tuple[int, int],
    paths: Sequence[str | os.PathLike[str]],
    config: Any,
    batch_size: int = 16,
) -> list[Any]:
    """Detections of ``paths`` by ``run`` (a model as :func:`onnx_runner` returns), clustered
    with ``config``, through the notebook's preprocessing."""
    from cvlab.inference.postprocess import DetectNetPostprocessor
    from cvlab.inference.preprocess import preprocess_images

    post = DetectNetPostprocessor(config, config.class_names, model_size=input_size)
    detections: list[Any] = []
    for start in range(0, len(paths), batch_size):
        chunk = [str(p) for p in paths[start : start + batch_size]]
        batch = preprocess_images(chunk, input_size, on_error="raise")
        detections += post.batch(run(batch.tensor), batch.original_sizes, batch.paths)
    return detections


def score_person(detections: Sequence[Any], truth: Sequence[Any]) -> StandinScore:
    """TAO's person AP (IoU 0.5, INTEGRATE) and the duplicate pairs of ``detections``."""
    from cvlab.train.evaluate import evaluate_detections

    evaluation = evaluate_detections(list(detections), list(truth), ("person",), mode="INTEGRATE")
    return StandinScore(evaluation, duplicate_pairs(detections, truth), list(detections))


def write_heldout_frames(
    folder: str | os.PathLike[str], frames: Sequence[int] | None = None
) -> tuple[list[Path], list[Any]]:
    """The scored held-out frames (default: those with eye-checked truth) as JPEGs in
    ``folder`` and their person ground truth (:class:`~cvlab.detections.Detections` with
    PeopleNet's class table); frames without truth get an empty one."""
    from cvlab.datasets.video import (
        FRAME_SIZE,
        fetch_video,
        frame_name,
        heldout_truth,
        read_frames,
    )
    from cvlab.detections import Detections
    from cvlab.detectnet import PEOPLENET_CLASSES
    from cvlab.fileio import atomic_write_image

    truth_boxes = heldout_truth()
    frames = sorted(truth_boxes) if frames is None else sorted(frames)
    paths, truth = [], []
    for index, rgb in read_frames(fetch_video(), frames):
        path = Path(folder) / f"{frame_name(index)}.jpg"
        atomic_write_image(path, rgb, quality=95)
        boxes = truth_boxes.get(index, np.zeros((0, 4)))
        truth.append(
            Detections(
                boxes,
                np.ones(len(boxes)),
                np.zeros(len(boxes)),
                PEOPLENET_CLASSES,
                FRAME_SIZE,
                str(path),
            )  # fmt: skip
        )
        paths.append(path)
    return paths, truth


def teacher_detections(paths: Sequence[Path]) -> list[Any]:
    """SSDLite as its authors run it: one 300x300 pass per frame, scores from 0.05."""
    from cvlab.datasets.teachers import PersonTeacher
    from cvlab.detections import Detections
    from cvlab.detectnet import PEOPLENET_CLASSES
    from cvlab.images import load_image

    teacher = PersonTeacher()
    out = []
    for path in paths:
        rgb = load_image(path)
        boxes, scores = teacher.detect(rgb, min_score=0.05)
        h, w = rgb.shape[:2]
        out.append(Detections(boxes, scores, np.zeros(len(boxes)), PEOPLENET_CLASSES, (w, h)))
    return out


def triton_frame_rate(
    paths: Sequence[Path], config: Any, batch_size: int = 16
) -> tuple[float, int]:
    """Frames/s of the lab's client against a local Triton serving the shipped stand-in
    (HTTP, async, shared memory), and the frames answered."""
    from cvlab.export.rgb_standin import write_standin_repository
    from cvlab.triton.pipeline import run_inference
    from cvlab.triton.server import TritonServer

    with tempfile.TemporaryDirectory(prefix="cvlab-standin-repo-") as repo:
        model_dir = write_standin_repository(repo)
        with TritonServer(repo, startup_timeout=180) as server:
            started = time.perf_counter()
            summary = run_inference(
                [str(p) for p in paths],
                model_dir.name,
                server.http_url,
                batch_size=batch_size,
                postprocessing_config=config,
                on_error="raise",
                progress=False,
                write_images=False,
            )
            seconds = time.perf_counter() - started
    answered = len(summary.detections)
    return answered / seconds, answered


def photo_findings(run: Callable, input_size: tuple[int, int], config: Any) -> list[str]:
    """One line per real photo: what the stand-in finds there (out of domain, not scored)."""
    from matplotlib import cbook

    from cvlab.datasets.video import real_photos

    photos = real_photos()
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photos.append(Path(f.name))
    lines = []
    for path, dets in zip(photos, detect_with(run, input_size, photos, config), strict=True):
        names = dets.names
        found = ", ".join(f"{names.count(c)} {c}" for c in config.class_names if c in names)
        top = f"; best person score {dets.confidence[np.asarray(names) == 'person'].max():.2f}" \
            if "person" in names else ""  # fmt: skip
        lines.append(f"  {path.name}: {found or 'nothing'}{top}")
    return lines


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    """``cvlab bench standin`` options."""
    parser.add_argument(
        "--no-triton", action="store_true", help="skip the frame rate through Triton"
    )
    parser.add_argument(
        "--onnx", default=None, help="score this stand-in ONNX instead of the shipped one"
    )


def bench(args: argparse.Namespace) -> int:
    """Score the shipped stand-in on held-out real frames; print AP, teacher AP, duplicates,
    frames/s and the real photos. Exit 1 when a target is missed."""
    from cvlab.datasets.teachers import TeacherMissingError
    from cvlab.datasets.video import HELDOUT_FRAMES, heldout_truth
    from cvlab.detectnet import PEOPLENET_CLASSES
    from cvlab.export.rgb_standin import STANDIN_CLUSTERING_CONFIG, shipped_onnx
    from cvlab.lab.inference import clustering_config
    from cvlab.train.standin import STANDIN_INPUT_SIZE

    config = clustering_config(STANDIN_CLUSTERING_CONFIG, PEOPLENET_CLASSES)
    run = onnx_runner(args.onnx or shipped_onnx())
    with tempfile.TemporaryDirectory(prefix="cvlab-heldout-") as folder:
        paths, truth = write_heldout_frames(folder)
        student = score_person(detect_with(run, STANDIN_INPUT_SIZE, paths, config), truth)
        people = sum(len(t) for t in truth)
        try:
            teacher = score_person(teacher_detections(paths), truth).ap["person"]
            teacher_text = f"{teacher:.3f}"
        except TeacherMissingError:
            teacher, teacher_text = None, "not measured (make teachers)"
        ap = student.ap["person"]
        per_30 = 30.0 * student.duplicates / max(people, 1)
        print(student.evaluation.per_class.round(3).to_string(index=False))
        print(
            f"standin: person AP@0.5 {ap:.3f} on {len(paths)} held-out frames "
            f"({min(heldout_truth())}-{max(heldout_truth())}, every 5th; {people} people "
            f"checked by eye); teacher (SSDLite, one 300x300 pass) {teacher_text}; "
            f"target >= {AP_TARGET:.2f} and above the teacher"
        )
        print(
            f"standin: {student.duplicates} duplicate person pairs for {people} people "
            f"({per_30:.2f} per 30; target <= {MAX_DUPLICATES_PER_30:.0f})"
        )
    ok = ap >= AP_TARGET and (teacher is None or ap > teacher)
    ok = ok and per_30 <= MAX_DUPLICATES_PER_30
    if not args.no_triton:
        with tempfile.TemporaryDirectory(prefix="cvlab-heldout-all-") as folder:
            all_paths, _ = write_heldout_frames(folder, HELDOUT_FRAMES)
            fps, answered = triton_frame_rate(all_paths, config)
        print(
            f"standin: {fps:.1f} frames/s through Triton ({answered} held-out frames, "
            f"768x576 JPEG -> {STANDIN_INPUT_SIZE[0]}x{STANDIN_INPUT_SIZE[1]}, batch 16, "
            f"HTTP, async, shared memory, labels only; {os.cpu_count()} cores)"
        )
    print("real photos (out of domain: never trained or tuned on, not scored):")
    for line in photo_findings(run, STANDIN_INPUT_SIZE, config):
        print(line)
    return 0 if ok else 1
