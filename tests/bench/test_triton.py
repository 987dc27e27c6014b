"""``cvlab bench triton`` end to end on a tiny configuration (figures are printed, not asserted)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import pytest
from support.triton import MODEL, demo_server  # noqa: F401 - module-scoped fixture

from cvlab.bench import triton as bench
from cvlab.cli import main

pytestmark = pytest.mark.server


def test_bench_images_are_camera_like_jpegs(tmp_path):
    paths = bench.write_bench_images(tmp_path, bench.DISTINCT_FRAMES + 2, (640, 360))
    assert len(paths) == bench.DISTINCT_FRAMES + 2
    image = cv2.imread(paths[0])
    assert image.shape == (360, 640, 3)
    sizes = [Path(p).stat().st_size for p in paths[:4]]
    # smooth scenes compress like photos (a noise frame of this size is ~200 KB)
    assert all(5_000 < s < 80_000 for s in sizes), sizes
    assert Path(paths[-1]).read_bytes() == Path(paths[1]).read_bytes()  # repeats after 48


def test_bench_prints_pipeline_and_infer_only_figures(capsys):
    argv = ["--images", "16", "--batch", "4", "--input-size", "320x192", "--image-size",
            "640x360", "--repeats", "2", "--model-width", "4", "--no-perf-analyzer"]  # fmt: skip
    assert main(["bench", "triton", *argv]) == 0
    out = capsys.readouterr().out
    assert "client pipeline (read+preprocess+infer+postprocess), shared memory" in out
    assert "client infer only" in out and "run 2: client" in out


def test_perf_analyzer_with_shared_memory_against_the_server(demo_server):  # noqa: F811
    # the real binary from the tritonclient 2.51.0 wheel (pip download, cached after the first run)
    binary = bench.get_perf_analyzer()
    if binary is None:
        pytest.skip("perf_analyzer could not be fetched (no package registry reachable)")
    for memory in ("system", "none"):
        # 20 requests per window (the bench's own setting): fewer cannot reach a stable
        # measurement when other processes share the 2 cores
        rate = bench.run_perf_analyzer(
            binary, MODEL, demo_server.http_url, "http", 4, 2, request_count=20,
            shared_memory=memory,
        )  # fmt: skip
        assert rate > 0


def test_end_to_end_prints_cvlab_infer_beside_the_lab_client_and_peak_memory(capsys):
    """`cvlab infer` as a child process, on N and 2N images (figures printed, not asserted)."""
    argv = ["--end-to-end", "--images", "12", "--batch", "4", "--input-size", "320x192",
            "--image-size", "640x360", "--repeats", "1", "--model-width", "4",
            "--no-perf-analyzer", "--overlay-size", "320x180"]  # fmt: skip
    assert main(["bench", "triton", *argv]) == 0
    out = capsys.readouterr().out
    row = "cvlab infer end to end (folder -> labels + overlays (320x180, quality 75)), shared"
    assert row in out
    assert "cvlab infer on 24 images (memory check)" in out
    assert "lab client tao_client.py (measured earlier here, quoted, not re-run)" in out
    assert "end to end / lab client (7.6 img/s, quoted) = " in out
    peak = re.search(r"peak RSS: 12 images (\d+) MB, 24 images (\d+) MB", out)
    assert peak and int(peak.group(1)) > 50, out  # VmHWM of the child: a real Python process
