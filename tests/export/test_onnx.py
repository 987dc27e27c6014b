"""ONNX export of the Keras DetectNet_v2 (real TensorFlow, tf2onnx and onnxruntime)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)


@pytest.fixture(scope="module")
def tiny_model():
    from cvlab.train.model import build_detectnet_v2

    return build_detectnet_v2(1, input_size=(64, 32), num_layers=10, width_multiplier=0.125)


def test_export_onnx_names_dynamic_batch_and_numeric_check(tmp_path, tiny_model):
    import onnxruntime as ort

    from cvlab.export.onnx import export_onnx

    report = export_onnx(tiny_model, tmp_path / "m.onnx", check_batches=(1, 3))
    assert report.path.is_file() and report.size_bytes > 0
    assert report.input_name == "input_1"
    assert report.dynamic_batch
    assert report.input_shape[1:] == [3, 32, 64]
    assert report.outputs["output_cov/Sigmoid"][1:] == [1, 2, 4]
    assert report.outputs["output_bbox/BiasAdd"][1:] == [4, 2, 4]
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
    assert report.checked_batches == [1, 3]
    assert set(report.to_pandas()["role"]) == {"input", "output"}
    # batch 5 works too, and the coverage head is a sigmoid
    sess = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((5, 3, 32, 64), dtype=np.float32)
    cov, bbox = sess.run(["output_cov/Sigmoid", "output_bbox/BiasAdd"], {"input_1": x})
    assert cov.shape == (5, 1, 2, 4) and bbox.shape == (5, 4, 2, 4)
    assert cov.min() >= 0 and cov.max() <= 1


def test_failed_check_removes_the_file(tmp_path, tiny_model):
    from cvlab.export.onnx import export_onnx

    with pytest.raises(AssertionError, match="differs from Keras"):
        export_onnx(tiny_model, tmp_path / "m.onnx", atol=-1.0)  # impossible tolerance
    assert not (tmp_path / "m.onnx").exists()


def test_export_onnx_command_loads_a_saved_keras_model(tmp_path, tiny_model, capsys):
    from cvlab.cli import main

    tiny_model.save(tmp_path / "m.keras")
    argv = ["export", "onnx", "--model", str(tmp_path / "m.keras"), "--output"]
    assert main([*argv, str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "output_cov/Sigmoid" in out and "max |Keras - ONNX|" in out
    assert (tmp_path / "m.onnx").is_file()
