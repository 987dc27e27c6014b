"""Helpers of the Triton tests: the demo ONNX model (built once per process) and local repos.

Import the fixtures into a test module with ``from support.triton import ...``.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from cvlab.fileio import pid_alive

#: small input keeps tests quick: 320x192 -> a 20x12 grid
INPUT_SIZE = (320, 192)
NUM_CLASSES = 3
MAX_BATCH = 8
MODEL = "demo"


@functools.lru_cache(maxsize=1)
def demo_onnx_path() -> Path:
    """The demo DetectNet_v2 model exported to ONNX (real Keras + tf2onnx), built once."""
    from cvlab.export.demo_model import write_demo_onnx

    directory = Path(tempfile.mkdtemp(prefix="cvlab-triton-test-"))
    atexit.register(shutil.rmtree, directory, True)  # no temp dir left after the tests
    return write_demo_onnx(directory / "demo.onnx", NUM_CLASSES, INPUT_SIZE)


def write_demo_repo(repo: Path, name: str = MODEL, target: str = "python") -> Path:
    """A model repository serving the demo model under ``name``; returns ``repo``."""
    from cvlab.triton.model_repository import peoplenet_spec, write_model_repository

    spec = peoplenet_spec(name, NUM_CLASSES, INPUT_SIZE, MAX_BATCH)
    write_model_repository(repo, spec, demo_onnx_path(), target=target)
    return repo


def onnx_reference(x: np.ndarray) -> dict[str, np.ndarray]:
    """The demo model run directly with onnxruntime."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(demo_onnx_path()), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"input_1": x}), strict=True))


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``."""
    from cvlab.triton.server import group_pids

    return [pid for pid in group_pids(pgid) if pid_alive(pid)]


def wait_until(predicate, timeout: float = 60.0) -> bool:
    """Poll ``predicate`` every 0.1 s until it is true or ``timeout`` s passed; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def write_test_images(directory: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` small JPEG files of different sizes (real files read back with OpenCV)."""
    import cv2

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        h, w = 120 + 8 * (i % 5), 200 + 16 * (i % 7)
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        cv2.rectangle(image, (20 + i, 10), (90 + i, 100), (255, 255, 255), -1)
        path = directory / f"frame_{i:03d}.jpg"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """A real tritonserver serving the demo model (python backend + onnxruntime)."""
    from cvlab.triton.server import TritonServer

    repo = write_demo_repo(tmp_path_factory.mktemp("repo"))
    with TritonServer(repo, startup_timeout=90) as server:
        yield server
    shutil.rmtree(repo, ignore_errors=True)


def infer_argv(images, url: str, out: Path, *extra: str, batch: int = 4) -> list[str]:
    """``cvlab infer`` arguments of the tests: the demo model, async, the PeopleNet RGB
    clustering config, no progress bar, then ``extra``."""
    from cvlab.inference.clustering_config import PEOPLENET_RGB_CONFIG

    return [
        "infer", str(images), "-m", MODEL, "-b", str(batch), "-u", url, "--async",
        "--output_path", str(out), "--postprocessing_config", str(PEOPLENET_RGB_CONFIG),
        "--no-progress", *extra,
    ]  # fmt: skip
