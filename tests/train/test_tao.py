"""TAO command builders and training-log parsing (a sample log written in TAO's formats)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from cvlab.shell import Command
from cvlab.train.tao import (
    detectnet_v2_dataset_convert,
    detectnet_v2_export,
    detectnet_v2_train,
    lab_commands,
    parse_tao_log,
    tao_available,
    which_tao,
)

SAMPLE_LOG = Path(__file__).parent / "data" / "tao_detectnet_v2_train.log"


def test_lab_train_and_export_commands_are_exact():
    train = detectnet_v2_train("training_config/training_spec.txt", "experiments", gpus=8)
    assert train.shell == (
        "detectnet_v2 train -e training_config/training_spec.txt -r experiments "
        "-n final_model -k tlt_encode --gpus 8"
    )
    export = detectnet_v2_export("/tlt/experiments/weights/final_model.tlt", "/tlt/models/ir.etlt")
    assert export.argv == (
        "detectnet_v2", "export", "-m", "/tlt/experiments/weights/final_model.tlt",
        "-o", "/tlt/models/ir.etlt", "-k", "tlt_encode",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("launcher", "prefix"),
    [("container", ["detectnet_v2"]), ("tao4", ["tao", "detectnet_v2"]),
     ("tao5", ["tao", "model", "detectnet_v2"])],
)  # fmt: skip
def test_launcher_spellings(launcher, prefix):
    cmd = detectnet_v2_train("s.txt", "r", launcher=launcher, gpus=2, key=None)
    assert list(cmd.argv) == [*prefix, "train", "-e", "s.txt", "-r", "r", "-n", "final_model",
                              "--gpus", "2"]  # fmt: skip
    conv = detectnet_v2_dataset_convert("c.txt", "/tf/flir", launcher=launcher, validation_fold=0)
    assert list(conv.argv) == [
        *prefix,
        "dataset_convert",
        "-d",
        "c.txt",
        "-o",
        "/tf/flir",
        "-f",
        "0",
    ]
    exp = detectnet_v2_export("m.hdf5", "m.onnx", launcher=launcher, key=None, data_type="int8",
                              cal_cache_file="cal.bin", batch_size=8)  # fmt: skip
    assert list(exp.argv)[len(prefix):] == [
        "export", "-m", "m.hdf5", "-o", "m.onnx", "--data_type", "int8",
        "--cal_cache_file", "cal.bin", "--batch_size", "8",
    ]  # fmt: skip


def test_shell_string_quotes_spaces_and_errors_are_clear():
    cmd = detectnet_v2_train("my spec.txt", "out dir", name="final model")
    assert shlex.split(cmd.shell) == list(cmd.argv)
    assert str(cmd) == cmd.shell
    with pytest.raises(ValueError, match="launcher"):
        detectnet_v2_train("s", "r", launcher="tao3")
    with pytest.raises(ValueError, match="gpus"):
        detectnet_v2_train("s", "r", gpus=0)
    with pytest.raises(ValueError, match="data_type"):
        detectnet_v2_export("m", "o", data_type="fp8")


def test_lab_commands_in_order():
    cmds = lab_commands()
    assert list(cmds) == ["dataset_convert", "train", "export", "convert"]
    assert all(isinstance(c, Command) for c in cmds.values())
    assert cmds["convert"].shell == (  # the lab's line, word for word
        "tlt-converter -k tlt_encode -d 3,544,960 -e /tlt/models/ir.engine "
        "-o output_cov/Sigmoid,output_bbox/BiasAdd /tlt/models/ir.etlt"
    )
    assert cmds["export"].shell == (
        "detectnet_v2 export -m /tlt/experiments/weights/final_model.tlt -o /tlt/models/ir.etlt "
        "-k tlt_encode"
    )
    assert "--gpus 8" in cmds["train"].shell


def test_tao_detection_follows_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not tao_available()
    assert which_tao().launcher is None
    tool = tmp_path / "detectnet_v2"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    assert tao_available()
    assert which_tao().detectnet_v2 == str(tool)
    assert which_tao().launcher == "container"


def test_parse_sample_log_into_metrics_frame():
    df = parse_tao_log(SAMPLE_LOG)
    assert list(df["epoch"]) == [1, 2, 3]
    assert list(df.columns[:7]) == [
        "epoch", "step", "lr", "loss", "images_per_s", "validation_cost", "mAP",
    ]  # fmt: skip
    e1, e2, e3 = (df.iloc[k] for k in range(3))
    # epoch 1: steps 0, 100, 200 (the duplicate TAO-prefixed line of step 0 counts once more)
    assert e1.step == 200
    assert e1.loss == pytest.approx((0.08461375 * 2 + 0.0618374 + 0.04922087) / 4)
    assert e1.lr == pytest.approx(6.6467165e-06)
    assert e1.images_per_s == pytest.approx((149.221 + 151.809) / 2)
    assert pd_isnan(e1.mAP)
    assert e2.mAP == pytest.approx(0.418236)
    assert e2.ap_person == pytest.approx(0.418236)
    assert e2.validation_cost == pytest.approx(0.000791)
    assert e3.ap_person == pytest.approx(0.5204173214571198)
    assert e3.step == 800


def test_parse_multi_class_simple_table_from_text():
    text = """INFO:tensorflow:epoch = 9.98, learning_rate = 5e-04, loss = 0.0012, step = 998 (5.1 sec)

Validation cost: 0.000045
Mean average_precision (in %): 76.4810

class name      average precision (in %)
------------  --------------------------
car                              81.5105
cyclist                          80.9753
pedestrian                       66.9571

Median Inference Time: 0.005755
"""
    df = parse_tao_log(text)
    assert len(df) == 1 and df.epoch[0] == 10
    assert df.mAP[0] == pytest.approx(0.764810)
    assert [c for c in df.columns if c.startswith("ap_")] == [
        "ap_car",
        "ap_cyclist",
        "ap_pedestrian",
    ]
    assert df.ap_pedestrian[0] == pytest.approx(0.669571)


def test_parse_rejects_a_log_without_training_lines(tmp_path):
    p = tmp_path / "x.log"
    p.write_text("hello\n")
    with pytest.raises(ValueError, match="no detectnet_v2 training lines"):
        parse_tao_log(p)


def pd_isnan(v) -> bool:
    return v != v
