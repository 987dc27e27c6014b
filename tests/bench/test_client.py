"""``cvlab bench client``: the server that costs nothing answers with its fixed grids, and the
command prints the stage table, the floor and the ratios (figures printed, never asserted)."""

from __future__ import annotations

import numpy as np
import pytest

from cvlab.bench import client as bench
from cvlab.cli import main
from cvlab.triton.pipeline import make_postprocessor

pytestmark = pytest.mark.server


def test_fixed_outputs_give_the_clustering_real_work():
    grids = bench.fixed_outputs()
    assert grids["cov"].shape == (3, 34, 60) and grids["bbox"].shape == (12, 34, 60)
    above = (grids["cov"] > 0.005).sum(axis=(1, 2))  # PeopleNet's coverage threshold
    assert (above > 50).all() and (above < 600).all()
    post, _ = make_postprocessor((960, 544))
    outputs = {"output_cov/Sigmoid": grids["cov"][None], "output_bbox/BiasAdd": grids["bbox"][None]}
    (detections,) = post.batch(outputs, [(1920, 1080)])
    assert len(detections) >= 8  # the people at least


def test_the_fixed_model_answers_every_frame_with_its_grids(tmp_path):
    from cvlab.triton.client import TritonDetectNetClient
    from cvlab.triton.server import TritonServer

    bench.write_fixed_repository(tmp_path / "repo", "null", (320, 192), 3, 4)
    grids = bench.fixed_outputs((320, 192), 3)
    with (
        TritonServer(tmp_path / "repo", startup_timeout=90) as server,
        TritonDetectNetClient(server.http_url, "null") as client,
    ):
        out = client.infer_batch(np.zeros((3, 3, 192, 320), np.float32))
    assert np.array_equal(out["output_cov/Sigmoid"], np.repeat(grids["cov"][None], 3, 0))
    assert np.array_equal(out["output_bbox/BiasAdd"], np.repeat(grids["bbox"][None], 3, 0))


@pytest.mark.slow
def test_bench_prints_stages_floor_ratios_and_workers(capsys):
    assert main(["bench", "client", "--images", "16", "--repeats", "1", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    for stage in bench.STAGES:
        assert stage in out
    assert "floor ms" in out and "labels fps/core" in out
    for source in ("1280x720", "1920x1080"):
        assert f"{source} labels only/floor = " in out
        assert f"{source} with overlays/floor = " in out
    assert "cvlab infer --workers, labels only, 1280x720, wall clock: 1 worker" in out
