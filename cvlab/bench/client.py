"""``cvlab bench client``: the client's CPU per frame, stage by stage, beside the JPEG-decode floor.

The server is a local tritonserver serving a model that costs nothing (the python-backend
``fixed_model.py``): every frame is answered with the same realistic DetectNet_v2 grids
(:func:`fixed_outputs`: people, bags and faces, each a blob of covered cells with consistent
box distances, over a background whose few cells above the coverage threshold are noise), so
clustering has real work and the server's CPU does not count. All figures are CPU time of
this process (``getrusage``: every thread), per frame:

- the stage table runs the frames through the client's transport as the pipeline does
  (reading threads, HTTP requests in flight, tensors in system shared memory) and times each
  stage on its thread: read (the file's bytes), decode (reduced-scale DCT decoding where the
  source allows it), resize/normalise into the shared-memory slot, postprocess and cluster,
  label write (16-field KITTI, atomic), overlay encode (fitted inside the model input as
  ``cvlab infer`` does by default, drawn and saved); transport is the rest of the process's
  CPU (requests, responses, hand-offs between threads);
- the client rows run the real pipeline (:func:`cvlab.triton.pipeline.run_inference`, as
  ``cvlab infer -a``) with labels only, with overlays (``cvlab infer``'s default size: the
  model input) and with full-size overlays (``--overlay-size full``, the lab client's size,
  beside them), in the steady state (the CPU of a
  run over all the frames minus a run over half of them: start-up costs cancel out, and so
  does the first touch of the shared-memory slots when half the frames fill them all: a short
  run pays about one page fault per 4 KiB of tensor, 3 ms for a 960x544 frame here);
- the floor is a bare ``cv2.imdecode`` loop (full size, OpenCV single-threaded) over the same
  files' bytes, read beforehand.

Last, ``cvlab infer --workers`` 1 against 2 (labels only, wall clock, steady state).

Targets (printed, never asserted by a test): labels only at most 1.3x the floor, with overlays
at most 2x; 2 workers at least 1.6x one on 2 cores. Frames per second per core = 1000 /
(client CPU ms per frame).

Example:
    cvlab bench client --images 96 --batch 8
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cvlab.detectnet import PEOPLENET_INPUT_SIZE

#: client CPU per frame / bare-decode CPU per frame, at most
TARGET_LABELS = 1.3
TARGET_OVERLAYS = 2.0
#: 2 workers against 1 on 2 cores (wall-clock frames/s), at least
TARGET_WORKERS = 1.6
#: the sources benchmarked, (width, height)
SOURCES = ((1280, 720), (1920, 1080))
#: the client's stages, in the order a frame meets them
STAGES = (
    "read", "decode", "resize/normalise", "transport", "postprocess+cluster", "label write",
    "overlay encode",
)  # fmt: skip
FIXED_MODEL_FILE = (
    Path(__file__).resolve().parents[1] / "triton" / "python_backend" / "fixed_model.py"
)


def fixed_outputs(
    input_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    num_classes: int = 3,
    seed: int = 0,
    stride: int = 16,
    bbox_norm: float = 35.0,
) -> dict[str, np.ndarray]:
    """One frame's realistic DetectNet_v2 grids: ``{"cov": [C, gh, gw], "bbox": [4C, gh, gw]}``.

    Class 0 (person) gets 8 standing figures, class 1 (bag) 2 bags, class 2 (face) 3 faces
    (other classes: 2 boxes each); each object covers the cells whose centres lie in the middle
    of its box (coverage 0.2-0.95, highest at the centre) and those cells' box distances point
    at its edges (with a little noise), as a trained model's do. About 3 % of the other cells
    have a coverage above PeopleNet's 0.005 threshold.

    >>> grids = fixed_outputs((320, 192), 3)
    >>> grids["cov"].shape, grids["bbox"].shape, bool(grids["cov"].max() > 0.9)
    ((3, 12, 20), (12, 12, 20), True)
    """
    rng = np.random.default_rng(seed)
    width, height = input_size
    gw, gh = width // stride, height // stride
    cov = (rng.exponential(0.0015, (num_classes, gh, gw))).astype(np.float32)
    bbox = rng.uniform(0.3, 2.0, (num_classes * 4, gh, gw)).astype(np.float32)
    gx = stride * np.arange(gw, dtype=np.float32) + 0.5
    gy = stride * np.arange(gh, dtype=np.float32) + 0.5
    shapes = {0: (8, 0.09, 2.6), 1: (2, 0.05, 1.0), 2: (3, 0.035, 1.2)}  # count, width, h/w
    for c in range(num_classes):
        count, rel_w, aspect = shapes.get(c, (2, 0.07, 1.5))
        for _ in range(count):
            bw = rel_w * width * rng.uniform(0.8, 1.3)
            bh = min(bw * aspect, 0.9 * height)
            x1 = rng.uniform(0, width - bw)
            y1 = rng.uniform(0, height - bh)
            x2, y2 = x1 + bw, y1 + bh
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            cols = np.nonzero(np.abs(gx - cx) <= 0.3 * bw + stride / 2)[0]
            rows = np.nonzero(np.abs(gy - cy) <= 0.3 * bh + stride / 2)[0]
            for j in rows:
                for i in cols:
                    near = 1 - max(abs(gx[i] - cx) / bw, abs(gy[j] - cy) / bh)
                    cov[c, j, i] = max(cov[c, j, i], np.clip(near * 1.1, 0.2, 0.95))
                    edges = (gx[i] - x1, gy[j] - y1, x2 - gx[i], y2 - gy[j])
                    for k, edge in enumerate(edges):
                        bbox[4 * c + k, j, i] = edge / bbox_norm + rng.normal(0, 0.02)
    return {"cov": cov, "bbox": bbox}


def write_fixed_repository(
    repo_dir: str | os.PathLike,
    name: str,
    input_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
    num_classes: int = 3,
    max_batch_size: int = 16,
) -> Path:
    """A model repository serving ``name``: PeopleNet's tensors, answered by ``fixed_model.py``
    with :func:`fixed_outputs`. Returns the model directory."""
    from cvlab.fileio import atomic_path, atomic_write_text
    from cvlab.triton.model_repository import build_model_config, config_to_text, peoplenet_spec

    spec = peoplenet_spec(name, num_classes, input_size, max_batch_size)
    model_dir = Path(repo_dir) / name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    for kind, grid in fixed_outputs(input_size, num_classes).items():
        with atomic_path(version_dir / f"{kind}.npy") as tmp, open(tmp, "wb") as handle:
            np.save(handle, grid)
    with atomic_path(version_dir / "model.py") as tmp:
        shutil.copyfile(FIXED_MODEL_FILE, tmp)
    atomic_write_text(
        model_dir / "config.pbtxt", config_to_text(build_model_config(spec, "python"))
    )
    return model_dir


def cpu_seconds() -> float:
    """CPU seconds of this process so far, every thread (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_ms_per_frame(work: Callable[[], object], frames: int) -> float:
    start = cpu_seconds()
    work()
    return 1000 * (cpu_seconds() - start) / frames


def decode_floor_ms(paths: list[str], repeats: int = 2) -> float:
    """CPU ms per frame of a bare ``cv2.imdecode`` (full size) over the files' bytes."""
    import cv2

    from cvlab.triton.pipeline import opencv_single_threaded

    blobs = [np.frombuffer(Path(p).read_bytes(), np.uint8) for p in paths]

    def loop() -> None:
        for _ in range(repeats):
            for blob in blobs:
                cv2.imdecode(blob, cv2.IMREAD_COLOR)

    with opencv_single_threaded():
        return _cpu_ms_per_frame(loop, repeats * len(blobs))


def stage_ms(client, post, config, paths: list[str], batch: int, out: Path) -> dict[str, float]:
    """CPU ms per frame of each stage of the client, run as the pipeline runs them.

    The frames go through :meth:`~cvlab.triton.client.TritonDetectNetClient.stream_images`
    (reading threads, requests in flight, tensors written straight into the shared-memory
    slots); each stage is timed on the thread that runs it (``time.thread_time``), and
    transport is the rest of the process's CPU over the run (requests, responses, the threads'
    hand-offs).
    """
    import threading

    from cvlab.formats.kitti import write_kitti
    from cvlab.images import load_image_for_model
    from cvlab.inference.preprocess import ImageBatch, preprocess_image
    from cvlab.triton.outputs import OVERLAY_QUALITY
    from cvlab.triton.pipeline import opencv_single_threaded
    from cvlab.viz.overlay import colors_from_config, save_overlay

    size = client.input_size
    times = dict.fromkeys(STAGES, 0.0)
    lock = threading.Lock()
    frames: dict[int, list[np.ndarray]] = {}
    colors = colors_from_config(config)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    (out / "overlays").mkdir(parents=True, exist_ok=True)

    def add(stage: str, seconds: float) -> None:
        with lock:
            times[stage] += seconds

    def load(index: int, chunk: list[str], slot: np.ndarray | None) -> ImageBatch:
        tensor = slot if slot is not None else np.empty((len(chunk), 3, size[1], size[0]), "f4")
        result = ImageBatch(tensor=tensor[: len(chunk)], paths=list(chunk))
        for row, path in enumerate(chunk):
            t0 = time.thread_time()
            Path(path).read_bytes()
            t1 = time.thread_time()
            bgr, original = load_image_for_model(path, size, bgr=True)  # reads again (cached)
            t2 = time.thread_time()
            preprocess_image(bgr, size, out=tensor[row], bgr=True)
            t3 = time.thread_time()
            add("read", t1 - t0)
            add("decode", max((t2 - t1) - (t1 - t0), 0.0))
            add("resize/normalise", t3 - t2)
            result.original_sizes.append(original)
            result.frames.append(bgr)
        frames[index] = result.frames
        return result

    def on_outputs(index: int, names: list[str], sizes: list, outputs: dict) -> None:
        t0 = time.thread_time()
        detections = post.batch(outputs, sizes, names)
        t1 = time.thread_time()
        for i, dets in enumerate(detections):
            write_kitti(out / "labels" / f"{index}_{i}.txt", dets, True)
        t2 = time.thread_time()
        for i, (bgr, dets) in enumerate(zip(frames.pop(index), detections, strict=True)):
            save_overlay(
                out / "overlays" / f"{index}_{i}.jpg", bgr, dets, colors=colors,
                linewidth=config.linewidth, quality=OVERLAY_QUALITY, bgr=True, max_size=size,
                in_place=True,
            )  # fmt: skip
        t3 = time.thread_time()
        add("postprocess+cluster", t1 - t0)
        add("label write", t2 - t1)
        add("overlay encode", t3 - t2)

    with opencv_single_threaded():
        start = cpu_seconds()
        errors = client.stream_images(paths, on_outputs, batch, progress=False, load=load)
        total = cpu_seconds() - start
    if errors:
        raise RuntimeError(f"bench requests failed: {errors[0]}")
    times["transport"] = max(total - sum(times.values()), 0.0)
    return {stage: 1000 * times[stage] / len(paths) for stage in STAGES}


def pipeline_ms(
    url: str,
    model: str,
    paths: list[str],
    out: Path,
    batch: int,
    overlays: bool,
    overlay_size: str | tuple[int, int] | None = None,
) -> float:
    """CPU ms per frame of the whole client (``run_inference``, as ``cvlab infer -a``), in the
    steady state: the CPU of a run over all ``paths`` minus that of a run over the first half,
    per frame of the difference (start-up, connection and the first touch of the shared-memory
    slots cancel out). ``overlay_size``: as ``cvlab infer --overlay-size`` (default: its
    default, the model input; ``"full"``: the image's size)."""
    from cvlab.triton.outputs import OVERLAY_SIZE
    from cvlab.triton.pipeline import run_inference

    def run(frames: list[str]) -> float:
        start = cpu_seconds()
        try:
            summary = run_inference(
                frames, model, url, batch_size=batch, output_path=out, progress=False,
                write_images=overlays, overlay_size=overlay_size or OVERLAY_SIZE,
            )  # fmt: skip
        finally:
            shutil.rmtree(out, ignore_errors=True)
        if summary.errors or summary.skipped:
            raise RuntimeError(f"bench run failed: {summary.without_outputs[:3]}")
        return cpu_seconds() - start

    half = len(paths) // 2
    return 1000 * (run(paths) - run(paths[:half])) / (len(paths) - half)


def workers_fps(
    url: str, model: str, paths: list[str], out: Path, batch: int, workers: int
) -> float:
    """Frames per second of wall time of ``cvlab infer --workers N`` (labels only) in the
    steady state: all ``paths`` minus the first half, per frame of the difference (the
    workers' start-up cancels out)."""
    from cvlab.triton.workers import run_inference_workers

    def run(frames: list[str]) -> float:
        start = time.perf_counter()
        try:
            run_inference_workers(
                frames, model, url, workers=workers, batch_size=batch, output_path=out,
                progress=False, write_images=False,
            )  # fmt: skip
        finally:
            shutil.rmtree(out, ignore_errors=True)
        return time.perf_counter() - start

    half = len(paths) // 2
    return (len(paths) - half) / max(run(paths) - run(paths[:half]), 1e-9)


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    """``cvlab bench client`` options."""
    parser.add_argument(
        "--images",
        type=int,
        default=128,
        help="frames per source size; half of them must fill every shared-memory slot "
        "(concurrency + 3 batches) for the steady-state figures",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median kept)")
    parser.add_argument(
        "--no-workers", action="store_true", help="skip the 1 vs 2 workers wall-clock figure"
    )


def bench(args: argparse.Namespace) -> int:
    """Print the stage table, the floor and the client/floor ratios for each source size."""
    import statistics

    import pandas as pd

    from cvlab.bench.triton import write_bench_images
    from cvlab.triton.client import TritonDetectNetClient
    from cvlab.triton.pipeline import make_postprocessor
    from cvlab.triton.server import TritonServer

    model = "bench_null"
    size = PEOPLENET_INPUT_SIZE
    print(
        f"cvlab bench client: model {model} (fixed outputs, no compute) {size[0]}x{size[1]}, "
        f"batch {args.batch}, HTTP + shared memory, {args.images} frames per source, "
        f"{os.cpu_count()} CPU core(s); CPU ms per frame of this process, medians of "
        f"{args.repeats}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="cvlab-bench-client-") as tmp:
        tmp = Path(tmp)
        write_fixed_repository(tmp / "repo", model, size, 3, max(args.batch, 1))
        with TritonServer(tmp / "repo", startup_timeout=120) as server:
            rows, stages = [], {}
            for width, height in SOURCES:
                source = f"{width}x{height}"
                images = tmp / f"images_{source}"
                paths = write_bench_images(images, args.images, (width, height))

                def median(measure: Callable[[], float]) -> float:
                    return statistics.median(measure() for _ in range(args.repeats))

                floor = median(lambda paths=paths: decode_floor_ms(paths))
                with TritonDetectNetClient(server.http_url, model) as client:
                    post, config = make_postprocessor(client.input_size)
                    stage_ms(client, post, config, paths, args.batch, tmp / "stages")  # warm-up
                    runs = [
                        stage_ms(client, post, config, paths, args.batch, tmp / "stages")
                        for _ in range(args.repeats)
                    ]
                stages[source] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                shutil.rmtree(tmp / "stages", ignore_errors=True)
                labels = median(
                    lambda paths=paths: pipeline_ms(
                        server.http_url, model, paths, tmp / "out", args.batch, False
                    )
                )
                fitted = median(
                    lambda paths=paths: pipeline_ms(
                        server.http_url, model, paths, tmp / "out", args.batch, True
                    )
                )
                full = median(
                    lambda paths=paths: pipeline_ms(
                        server.http_url, model, paths, tmp / "out", args.batch, True, "full"
                    )
                )
                rows.append(
                    {
                        "source": source,
                        "floor ms": floor,
                        "labels ms": labels,
                        "overlays ms": fitted,
                        "full-size ms": full,
                        "labels/floor": labels / floor,
                        "overlays/floor": fitted / floor,
                        "full-size/floor": full / floor,
                        "labels fps/core": 1000 / labels,
                        "overlays fps/core": 1000 / fitted,
                    }
                )
                if (width, height) == SOURCES[0] and not args.no_workers:
                    scaling = {
                        n: median(
                            lambda n=n, paths=paths: workers_fps(
                                server.http_url, model, paths, tmp / "out", args.batch, n
                            )
                        )
                        for n in (1, 2)
                    }
    table = pd.DataFrame(stages)
    table.index.name = "stage"
    print("\nCPU ms per frame by stage (timed on the thread running it):")
    print(table.to_string(float_format=lambda v: f"{v:.2f}"))
    print(
        "\nthe whole client (cvlab infer -a) beside the floor (bare cv2.imdecode, full size); "
        "overlays: cvlab infer's default size (fitted inside the model input), full-size: "
        "--overlay-size full:"
    )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if not args.no_workers:
        ratio = scaling[2] / scaling[1]
        verdict = "meets" if ratio >= TARGET_WORKERS else "below"
        print(
            f"\ncvlab infer --workers, labels only, {SOURCES[0][0]}x{SOURCES[0][1]}, wall clock: "
            f"1 worker {scaling[1]:.1f} frames/s, 2 workers {scaling[2]:.1f} frames/s = "
            f"{ratio:.2f}x ({verdict} the {TARGET_WORKERS:.1f}x target on {os.cpu_count()} "
            "core(s))"
        )
    for row in rows:
        for what, target in (("labels", TARGET_LABELS), ("overlays", TARGET_OVERLAYS)):
            ratio = row[f"{what}/floor"]
            verdict = "meets" if ratio <= target else "above"
            print(
                f"{row['source']} {what} only/floor = {ratio:.2f}x ({verdict} the "
                f"{target:.1f}x target)".replace("overlays only", "with overlays")
            )
    return 0
