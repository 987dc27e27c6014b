"""``cvlab bench standin``: train notebook 01's RGB stand-in, report per-class AP, duplicate boxes and training time.

The stand-in is trained exactly as the notebook trains it
(:func:`cvlab.lab.standin.ensure_rgb_standin`, settings
:data:`cvlab.lab.standin.RGB_STANDIN_TRAINING`) in a fresh workspace, then scored on held-out
synthetic daylight frames (:func:`cvlab.lab.standin.write_heldout_frames`: the notebook's seed;
its first frames are the ones the notebook shows) through the same steps as the notebook's
inference: JPEG -> :func:`cvlab.inference.preprocess.preprocess_images` -> the exported ONNX
model (onnxruntime, as Triton's python backend runs it) -> the PeopleNet RGB clustering config
at its operating point (:func:`cvlab.lab.inference.clustering_config`) -> TAO's AP (IoU 0.5,
INTEGRATE, 4x4 minimum box). A *duplicate* is a pair of person detections matched (IoU > 0.5,
best IoU) to the same ground-truth person. Targets: person AP >= 0.85, bag and face AP >= 0.5,
no duplicates, training well under :data:`TIME_BUDGET_S` on 2 CPU cores.

Example:
    $ cvlab bench standin --frames 40
    $ cvlab bench standin --workspace runs/lab   # score the stand-in a lab run trained
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: Minimum AP per class on the held-out frames.
AP_TARGETS: dict[str, float] = {"person": 0.85, "bag": 0.5, "face": 0.5}
#: Wall seconds the stand-in's training may take on 2 shared CPU cores (the demo runs six
#: notebooks in about 5 minutes).
TIME_BUDGET_S = 150.0
#: Held-out frames scored by default (the notebook shows the first few of the same seed).
DEFAULT_FRAMES = 40


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

    def meets_targets(self) -> bool:
        """Every class at or above :data:`AP_TARGETS` and no duplicate person boxes."""
        ap = self.ap
        return self.duplicates == 0 and all(ap.get(c, 0.0) >= t for c, t in AP_TARGETS.items())


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


def score_standin(
    run: Callable[[np.ndarray], dict],
    input_size: tuple[int, int],
    paths: Sequence[str | os.PathLike[str]],
    truth: Sequence[Any],
    config: Any = None,
    batch_size: int = 16,
) -> StandinScore:
    """Detect ``paths`` with ``run`` (a model as :func:`onnx_runner` returns), cluster with
    ``config`` (default: the PeopleNet RGB config for person/bag/face) and score against
    ``truth``."""
    from cvlab.detectnet import PEOPLENET_CLASSES
    from cvlab.inference.clustering_config import PEOPLENET_RGB_CONFIG
    from cvlab.inference.postprocess import DetectNetPostprocessor
    from cvlab.inference.preprocess import preprocess_images
    from cvlab.lab.inference import clustering_config
    from cvlab.train.evaluate import evaluate_detections

    config = config or clustering_config(PEOPLENET_RGB_CONFIG, PEOPLENET_CLASSES)
    post = DetectNetPostprocessor(config, config.class_names, model_size=input_size)
    detections: list[Any] = []
    for start in range(0, len(paths), batch_size):
        chunk = [str(p) for p in paths[start : start + batch_size]]
        batch = preprocess_images(chunk, input_size, on_error="raise")
        outputs = run(batch.tensor)
        detections += post.batch(outputs, batch.original_sizes, batch.paths)
    names = config.class_names
    evaluation = evaluate_detections(detections, list(truth), names, mode="INTEGRATE")
    return StandinScore(evaluation, duplicate_pairs(detections, truth), detections)


def score_table(score: StandinScore) -> pd.DataFrame:
    """One row per class: AP and its target, precision, recall and box counts (rounded)."""
    table = score.evaluation.per_class.copy()
    table.insert(2, "target", [AP_TARGETS.get(c, float("nan")) for c in table["class"]])
    return table.round(3)


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    """``cvlab bench standin`` options."""
    from cvlab.cli import parse_size, positive_int

    parser.add_argument("--output", default=None, help="work directory (a temporary one if unset)")
    parser.add_argument(
        "--workspace",
        default=None,
        help="score the stand-in a lab run trained in this workspace (no training)",
    )
    parser.add_argument(
        "--frames", type=positive_int, default=DEFAULT_FRAMES, help="held-out frames"
    )
    parser.add_argument("--epochs", type=positive_int, default=None, help="unset: the lab's")
    parser.add_argument("--images", type=positive_int, default=None, help="unset: the lab's")
    parser.add_argument(
        "--input-size", type=parse_size, default=None, help="WIDTHxHEIGHT (unset: the lab's)"
    )


def bench(args: argparse.Namespace) -> int:
    """Train (or load) the RGB stand-in, print per-class AP, duplicates and training time."""
    import tempfile

    from cvlab.errors import CvlabError
    from cvlab.lab.standin import ensure_rgb_standin, write_heldout_frames
    from cvlab.lab.workspace import Workspace

    trained_here = args.workspace is None
    ws = Workspace(args.workspace or Path(args.output or tempfile.mkdtemp(prefix="cvlab-standin-")))
    load = os.getloadavg()[0]
    cpu0, t0 = time.process_time(), time.perf_counter()
    if trained_here:
        ensure_rgb_standin(
            ws,
            args.input_size,
            num_images=args.images,
            epochs=args.epochs,
            progress=False,
            force=True,
        )
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    state = ws.state().get("rgb_standin")
    if not state:
        raise CvlabError(f"{ws.root}: no RGB stand-in trained there (run notebook 01 first)")
    with tempfile.TemporaryDirectory(prefix="cvlab-heldout-") as frames:
        paths, truth = write_heldout_frames(frames, args.frames)
        run = onnx_runner(state["onnx"])
        score = score_standin(run, tuple(state["input_size"]), paths, truth)
    print(score_table(score).to_string(index=False))
    print(
        f"standin: person AP {score.ap.get('person', 0):.3f}, bag AP {score.ap.get('bag', 0):.3f}, "
        f"face AP {score.ap.get('face', 0):.3f} on {len(paths)} held-out frames; "
        f"duplicate person pairs {score.duplicates}"
    )
    settings = {k: state.get(k) for k in ("num_images", "epochs", "input_size", "image_size")}
    print(f"standin: settings {settings}")
    recorded = (
        f"training loop {state.get('train_seconds', float('nan')):.1f} s, frames + training + "
        f"export {state.get('build_seconds', float('nan')):.1f} s wall"
    )
    if trained_here:
        print(
            f"standin: {recorded}; this process {cpu:.1f} s CPU in {wall:.1f} s wall (load "
            f"average {load:.1f} at the start, 2 cores); budget {TIME_BUDGET_S:.0f} s wall"
        )
    else:
        print(f"standin: as recorded when {ws.root} trained it: {recorded}")
    ok = score.meets_targets() and (not trained_here or wall <= TIME_BUDGET_S)
    return 0 if ok else 1
