"""``cvlab bench train`` on the project's synthetic FLIR set (real generator, converter, TF)."""

from __future__ import annotations

import re

import cv2
import pandas as pd
from support.train import limit_tf_threads

from cvlab.bench import train as quality
from cvlab.cli import main
from cvlab.train.model import TINY_CONFIG

limit_tf_threads()


def test_bench_trains_on_converted_flir_set_and_reports_ap(tmp_path, capsys):
    """One epoch on 10 FLIR frames: the numbers are printed, the exit code follows the AP bar."""
    args = ["--output", str(tmp_path), "--epochs", "1", "--images", "10", "--start", "scratch"]
    code = main(["bench", "train", *args])
    out = capsys.readouterr().out
    ap = float(re.search(r"person AP \(IoU 0\.5, INTEGRATE\) = ([0-9.]+)", out).group(1))
    assert code == (0 if ap >= quality.AP_TARGET else 1)
    assert re.search(r"training images/s \(median\) [0-9.]+", out)
    # The data went through the FLIR converter at the tiny model's input size.
    prepared = tmp_path / "scratch" / "data" / "prepared"
    shards = sorted(p.name for p in (prepared / "tfrecords").glob("flir-fold-*"))
    assert shards and shards[0].startswith("flir-fold-000")
    image = cv2.imread(str(next((prepared / "images").iterdir())))
    assert (image.shape[1], image.shape[0]) == TINY_CONFIG.input_size
    history = pd.read_csv(tmp_path / "scratch" / "run" / "metrics.csv")
    assert history["epoch"].tolist() == [1] and 0.0 <= history["ap_person"].iloc[0] <= 1.0
    assert (tmp_path / "scratch" / "run" / "model.keras").exists()


def test_bench_trains_with_and_without_the_rgb_standin_weights(tmp_path, capsys) -> None:
    """Two one-epoch runs from the same seed: from scratch and from the shipped RGB stand-in's
    backbone (all its layers loaded, heads fresh); both lines printed side by side."""
    code = main(["bench", "train", "--output", str(tmp_path), "--epochs", "1", "--images", "10"])
    out = capsys.readouterr().out
    assert re.search(
        r"train \(rgb-standin\): loaded (\d+)/\1 backbone layers from .*rgb_standin", out
    )
    lines = re.findall(
        r"^train: from (scratch|rgb-standin) +person AP .* = ([0-9.]+) after 1 ", out, re.M
    )
    assert [name for name, _ in lines] == ["scratch", "rgb-standin"], out
    aps = [float(ap) for _, ap in lines]
    assert code == (0 if min(aps) >= quality.AP_TARGET else 1)
    assert "reached:" in out
    for start in ("scratch", "rgb-standin"):
        assert (tmp_path / start / "run" / "model.keras").exists()
