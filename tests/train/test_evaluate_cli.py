"""The evaluation / TAO / TensorRT commands through the real ``cvlab`` parser."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, save

from cvlab.cli import main
from cvlab.detections import Detections
from cvlab.formats.kitti import write_kitti
from cvlab.formats.tao_spec import load_training_spec


@pytest.fixture
def run(capsys):
    def _run(area: str, *argv: str) -> str:
        assert main(["export" if area == "tensorrt" else "train", area, *argv]) == 0
        return capsys.readouterr().out

    return _run


def test_evaluate_command_prints_table_and_writes_csv_and_plot(tmp_path, run):
    names = ("person",)
    for d in ("labels", "pred"):
        (tmp_path / d).mkdir()
    gt = Detections([[0, 0, 20, 40], [50, 50, 80, 90]], [1, 1], [0, 0], names, (100, 100))
    pred = Detections([[0, 0, 20, 40], [0, 60, 10, 99]], [0.9, 0.8], [0, 0], names, (100, 100))
    write_kitti(tmp_path / "labels/a.txt", gt, with_confidence=False)
    write_kitti(tmp_path / "pred/a.txt", pred, with_confidence=True)
    out = run("evaluate", "--predictions", str(tmp_path / "pred"), "--labels",
              str(tmp_path / "labels"), "--csv", str(tmp_path / "ap.csv"),
              "--plot", str(tmp_path / "pr.png"))  # fmt: skip
    assert "person" in out and "mAP (INTEGRATE, IoU >= 0.5): 0.5000" in out
    assert (tmp_path / "ap.csv").read_text().startswith("class,ap,")
    assert (tmp_path / "pr.png").stat().st_size > 0


def test_evaluate_command_in_tao_convention(tmp_path, run):
    """A 10x10 box on a 10x20 one: IoU 0.474 with continuous sizes (9x9 on 9x19), 0.5 with
    TAO's +1 pixel sizes, so only the TAO convention counts the match (SAMPLE mode: TAO's
    INTEGRATE gives 0 for a single box, see tao_average_precision)."""
    names = ("person",)
    for d in ("labels", "pred"):
        (tmp_path / d).mkdir()
    gt = Detections([[0, 0, 9, 19]], [1], [0], names, (100, 100))
    pred = Detections([[0, 0, 9, 9]], [0.9], [0], names, (100, 100))
    write_kitti(tmp_path / "labels/a.txt", gt, with_confidence=False)
    write_kitti(tmp_path / "pred/a.txt", pred, with_confidence=True)
    argv = ["evaluate", "--predictions", str(tmp_path / "pred"), "--labels",
            str(tmp_path / "labels"), "--min-height", "0", "--min-width", "0",
            "--mode", "SAMPLE"]  # fmt: skip
    assert "mAP (SAMPLE, IoU >= 0.5): 0.0000" in run(*argv)
    tao = run(*argv, "--convention", "tao")
    assert "mAP (SAMPLE, IoU >= 0.5, TAO convention): 1.0000" in tao


def test_tao_commands_writes_the_spec_and_prints_steps(tmp_path, run):
    spec = tmp_path / "spec.txt"
    out = run("tao-commands", "--write-spec", str(spec), "--tfrecords", "/d/tf/*",
              "--image-dir", "/d/img", "--epochs", "5", "--launcher", "tao5")  # fmt: skip
    exp = load_training_spec(spec)
    assert exp.training_config.num_epochs == 5
    assert exp.dataset_config.data_sources[0].tfrecords_path == "/d/tf/*"
    assert f"tao model detectnet_v2 train -e {spec} -r experiments" in out
    assert "tlt-converter -k tlt_encode -d 3,544,960" in out


def test_tensorrt_print_command(tmp_path, run):
    x = helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["N", 3, 544, 960])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 544, 960])
    g = helper.make_graph([helper.make_node("Identity", ["input_1"], ["y"])], "g", [x], [y])
    save(helper.make_model(g), str(tmp_path / "m.onnx"))
    out = run("tensorrt", "--onnx", str(tmp_path / "m.onnx"), "--engine",
              str(tmp_path / "m.plan"), "--print-command")  # fmt: skip
    assert out.startswith("trtexec --onnx=")
    assert "--optShapes=input_1:8x3x544x960" in out and "--fp16" in out


def test_tao_log_command(tmp_path, run):
    from pathlib import Path

    log = Path(__file__).parent / "data" / "tao_detectnet_v2_train.log"
    out = run("tao-log", str(log), "--csv", str(tmp_path / "m.csv"))
    assert "ap_person" in out
    assert len((tmp_path / "m.csv").read_text().splitlines()) == 4
    assert np.isfinite(float((tmp_path / "m.csv").read_text().splitlines()[3].split(",")[6]))


def test_evaluate_with_a_mistyped_predictions_folder_is_one_error_line(tmp_path, capsys):
    """Issue 20 item 10: ``--predictions nosuch`` (or a folder whose files pair with no
    label) is exit 2 and one line, not AP 0 and exit 0."""
    names = ("person",)
    (tmp_path / "labels").mkdir()
    (tmp_path / "other").mkdir()
    gt = Detections([[0, 0, 20, 40]], [1], [0], names, (100, 100))
    write_kitti(tmp_path / "labels/a.txt", gt, with_confidence=False)
    write_kitti(tmp_path / "other/zzz.txt", gt, with_confidence=False)
    for pred in ("nosuch", "other"):
        argv = ["train", "evaluate", "--predictions", str(tmp_path / pred)]
        assert main([*argv, "--labels", str(tmp_path / "labels")]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and str(tmp_path / pred) in captured.err
        assert len(captured.err.strip().splitlines()) == 1
