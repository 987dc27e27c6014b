"""``cvlab bench core``: time preprocessing, decoding and clustering on PeopleNet-shaped data.

The outputs are synthetic but realistic: several people of different sizes are rendered as
coverage blobs (many above-threshold cells each, like PeopleNet's ``output_cov/Sigmoid``) with
box regressions consistent with those people plus noise; faces sit on the heads and a few
bags next to people. Targets (one core): decode+cluster of a 3-class 60x34 output under 2 ms
median per image; preprocessing a 1920x1080 JPEG to a 960x544 tensor under 15 ms.

Example:
    >>> import numpy as np
    >>> cov, bbox, truth = synthetic_peoplenet_outputs(np.random.default_rng(0))
    >>> cov.shape, bbox.shape
    ((3, 34, 60), (12, 34, 60))
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cvlab.detectnet import BBOX_OUTPUT, COV_OUTPUT, PEOPLENET_CLASSES, PEOPLENET_INPUT_SIZE

DECODE_CLUSTER_TARGET_MS = 2.0
PREPROCESS_TARGET_MS = 15.0


def _render(
    cov: np.ndarray,
    bbox: np.ndarray,
    cls: int,
    box: np.ndarray,
    rng: np.random.Generator,
    stride: int,
    bbox_norm: float,
    offset: float,
) -> None:
    """Paint one object: an elliptic coverage blob over its centre and matching regressions."""
    _, gh, gw = cov.shape
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    rx, ry = max((x2 - x1) * 0.35, stride * 0.8), max((y2 - y1) * 0.35, stride * 0.8)
    gx = np.arange(gw) * stride + offset
    gy = np.arange(gh) * stride + offset
    dx = (gx[None, :] - cx) / rx
    dy = (gy[:, None] - cy) / ry
    r2 = dx**2 + dy**2
    inside = r2 < 1.0
    peak = rng.uniform(0.6, 0.99)
    blob = np.where(inside, peak * np.exp(-1.5 * r2), 0.0)
    blob += inside * rng.uniform(-0.05, 0.05, size=blob.shape)
    blob = np.clip(blob, 0.0, 1.0)
    take = blob > cov[cls]
    cov[cls][take] = blob[take]
    noise = rng.normal(0.0, 0.04, size=(4, gh, gw))
    reg = np.stack(
        [
            (gx[None, :] - x1) / bbox_norm + 0 * gy[:, None],
            (gy[:, None] - y1) / bbox_norm + 0 * gx[None, :],
            (x2 - gx[None, :]) / bbox_norm + 0 * gy[:, None],
            (y2 - gy[:, None]) / bbox_norm + 0 * gx[None, :],
        ]
    )
    bbox[4 * cls : 4 * cls + 4][:, take] = (reg + noise)[:, take]


def synthetic_peoplenet_outputs(
    rng: np.random.Generator,
    n_people: int = 6,
    model_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    stride: int = 16,
    bbox_norm: float = 35.0,
    offset: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One image's PeopleNet-like ``(cov [3,gh,gw], bbox [12,gh,gw], true boxes per class)``.

    True boxes are in model-input pixels. Background cells get small coverage noise (mostly
    below PeopleNet's 0.005 threshold, some above) and random regressions.
    """
    w, h = model_size
    gh, gw = h // stride, w // stride
    cov = (rng.random((3, gh, gw)) ** 8 * 0.006).astype(np.float32)
    bbox = rng.normal(0.0, 0.3, size=(12, gh, gw)).astype(np.float32)
    truth: dict[str, list[np.ndarray]] = {name: [] for name in PEOPLENET_CLASSES}
    for _ in range(n_people):
        ph = rng.uniform(80, 420)
        pw = ph * rng.uniform(0.3, 0.45)
        x1 = rng.uniform(0, w - pw)
        y1 = rng.uniform(0, h - ph)
        person = np.array([x1, y1, x1 + pw, y1 + ph])
        face_w = pw * 0.35
        fx1 = x1 + (pw - face_w) / 2
        face = np.array([fx1, y1 + ph * 0.02, fx1 + face_w, y1 + ph * 0.02 + face_w * 1.2])
        items = [(0, person), (2, face)]
        if rng.random() < 0.4:
            bw = pw * 0.5
            bx1 = min(x1 + pw * 0.8, w - bw)
            by1 = y1 + ph * 0.45
            items.append((1, np.array([bx1, by1, bx1 + bw, min(by1 + bw, h)])))
        for cls, box in items:
            _render(cov, bbox, cls, box, rng, stride, bbox_norm, offset)
            truth[PEOPLENET_CLASSES[cls]].append(box)
    return (
        cov.astype(np.float32),
        bbox.astype(np.float32),
        {k: np.array(v, np.float32).reshape(-1, 4) for k, v in truth.items()},
    )


def _time(fn: Callable[[], object], repeat: int) -> list[tuple[float, float]]:
    """``(wall ms, thread CPU ms)`` of each call after one warm-up call."""
    fn()
    out = []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        out.append(((time.perf_counter() - t0) * 1000.0, (time.thread_time() - c0) * 1000.0))
    return out


def _limit_threads() -> None:
    """One core: keep BLAS/OpenCV from spreading over the machine."""
    import cv2

    cv2.setNumThreads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - scikit-learn ships threadpoolctl
        pass


def run(repeat: int = 200, images: int = 20, seed: int = 0) -> list[dict[str, object]]:
    """Time each stage; one row per stage with median/p90 ms, images/s, target and pass."""
    import cv2

    from cvlab.images import load_image_for_model
    from cvlab.inference.clustering_config import PEOPLENET_RGB_CONFIG, load_clustering_config
    from cvlab.inference.decode import decode_detectnet
    from cvlab.inference.postprocess import DetectNetPostprocessor
    from cvlab.inference.preprocess import preprocess_image

    _limit_threads()
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():  # the legacy float min_samples warning: known, not news here
        warnings.simplefilter("ignore")
        config = load_clustering_config(PEOPLENET_RGB_CONFIG)
    post = DetectNetPostprocessor(config, PEOPLENET_CLASSES)
    frames = [
        synthetic_peoplenet_outputs(rng, n_people=int(rng.integers(3, 9))) for _ in range(images)
    ]
    per_frame = max(1, repeat // images)
    rows: list[dict[str, object]] = []

    def timed_all(fn: Callable[[np.ndarray, np.ndarray], object]) -> list[tuple[float, float]]:
        times: list[tuple[float, float]] = []
        for cov, bbox, _ in frames:
            times += _time(lambda cov=cov, bbox=bbox: fn(cov, bbox), per_frame)
        return times

    decode_ms = timed_all(
        lambda c, b: decode_detectnet(
            c, b, model_size=PEOPLENET_INPUT_SIZE, image_size=(1920, 1080)
        )
    )
    full_ms = timed_all(lambda c, b: post({COV_OUTPUT: c, BBOX_OUTPUT: b}, (1920, 1080)))
    cells = float(np.mean([(f[0] > 0.005).sum() for f in frames]))
    rows.append(_row("decode", decode_ms, None))
    rows.append(_row(f"decode+cluster ({cells:.0f} cells)", full_ms, DECODE_CLUSTER_TARGET_MS))

    with tempfile.TemporaryDirectory() as tmp:
        jpg = Path(tmp) / "frame.jpg"
        img = rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (0, 0), 3)
        cv2.imwrite(str(jpg), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        pre_ms = _time(lambda: preprocess_image(load_image_for_model(jpg)[0]), max(20, repeat // 5))
    rows.append(_row("preprocess 1920x1080 jpg", pre_ms, PREPROCESS_TARGET_MS))
    return rows


def _row(
    stage: str, times: Sequence[tuple[float, float]], target: float | None
) -> dict[str, object]:
    wall = [t[0] for t in times]
    median = statistics.median(wall)
    return {
        "stage": stage,
        "median_ms": round(median, 3),
        "p90_ms": round(float(np.percentile(wall, 90)), 3),
        "cpu_median_ms": round(statistics.median(t[1] for t in times), 3),
        "images_per_s": round(1000.0 / median, 1) if median > 0 else float("inf"),
        "target_ms": target,
        "result": "-" if target is None else ("PASS" if median < target else "FAIL"),
    }


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    """``cvlab bench core`` options."""
    parser.add_argument("--repeat", type=int, default=200, help="timed runs per stage")
    parser.add_argument("--images", type=int, default=20, help="distinct synthetic frames")
    parser.add_argument("--seed", type=int, default=0)


def bench(args: argparse.Namespace) -> int:
    """Print the table; exit code 1 when a target is missed.

    ``median_ms`` is wall time (the target); ``cpu_median_ms`` is this thread's CPU time, which
    shows the cost of the work itself when other processes share the cores.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import pandas as pd

    rows = run(args.repeat, args.images, args.seed)
    print(pd.DataFrame(rows).to_string(index=False))
    return 0 if all(r["result"] != "FAIL" for r in rows) else 1
