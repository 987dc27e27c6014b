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
    code = main(["bench", "train", "--output", str(tmp_path), "--epochs", "1", "--images", "10"])
    out = capsys.readouterr().out
    ap = float(re.search(r"person AP \(IoU 0\.5, INTEGRATE\) = ([0-9.]+)", out).group(1))
    assert code == (0 if ap >= quality.AP_TARGET else 1)
    assert re.search(r"training images/s \(median\) [0-9.]+", out)
    # The data went through the FLIR converter at the tiny model's input size.
    prepared = tmp_path / "data" / "prepared"
    shards = sorted(p.name for p in (prepared / "tfrecords").glob("flir-fold-*"))
    assert shards and shards[0].startswith("flir-fold-000")
    image = cv2.imread(str(next((prepared / "images").iterdir())))
    assert (image.shape[1], image.shape[0]) == TINY_CONFIG.input_size
    history = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert history["epoch"].tolist() == [1] and 0.0 <= history["ap_person"].iloc[0] <= 1.0
    assert (tmp_path / "run" / "model.keras").exists()
