"""The shipped RGB stand-in end to end with real parts: ``cvlab export rgb-standin``, ``cvlab
triton serve`` (the bundled tritonserver) and the lab's ``cvlab infer`` line give KITTI labels
with the people of real held-out video frames."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cvlab.datasets.video import fetch_video, heldout_truth, read_frames
from cvlab.export.rgb_standin import STANDIN_CLUSTERING_CONFIG
from cvlab.fileio import atomic_write_image
from cvlab.formats.kitti import read_kitti
from cvlab.train.evaluate import box_iou
from cvlab.train.standin import MODEL_NAME

pytestmark = pytest.mark.server


def test_export_serve_and_the_lab_infer_line_find_real_people(tmp_path) -> None:
    truth = heldout_truth()
    frames = [650, 700, 750]
    images = tmp_path / "images"
    for index, rgb in read_frames(fetch_video(), frames):
        atomic_write_image(images / f"vtest_{index:06d}.jpg", rgb, quality=95)
    env = dict(os.environ, TMPDIR=str(tmp_path), CVLAB_SERVE_FILE=str(tmp_path / "serve.json"))
    cvlab = [sys.executable, "-m", "cvlab"]
    done = subprocess.run(
        [*cvlab, "export", "rgb-standin", "--output", str(tmp_path / "repo")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    serve = subprocess.Popen(
        [*cvlab, "triton", "serve", "--model-repository", str(tmp_path / "repo")],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = serve.stdout.readline()
        assert line.startswith("Triton ready: http 127.0.0.1:"), line
        http = line.split()[3]
        # the lab's RGB command, with the stand-in's name and clustering config
        command = [
            *cvlab, "infer", str(images), "-m", MODEL_NAME, "-x", "1", "-b", "16",
            "--mode", "DetectNet_v2", "-i", "https", "-u", http, "--async",
            "--output_path", str(tmp_path / "out"),
            "--postprocessing_config", str(STANDIN_CLUSTERING_CONFIG),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0
    for index in frames:
        labels = read_kitti(tmp_path / "out" / "infer_labels" / f"vtest_{index:06d}.txt")
        people = labels.xyxy[np.asarray(labels.names) == "person"]
        expected = truth[index]
        assert abs(len(people) - len(expected)) <= 2, (index, len(people), len(expected))
        found = sum(box_iou(people, box).max() >= 0.5 for box in expected) if len(people) else 0
        assert found >= 0.7 * len(expected), (index, found, len(expected))
    assert Path(tmp_path / "out" / "infer_images" / "vtest_000700.jpg").is_file()
