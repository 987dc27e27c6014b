"""``cvlab bench gpu`` without a GPU: the engine plans, the ONNX Runtime side and the comparison
(run on two real ONNX models), and the one-line failure when TensorRT is absent.

TensorRT cannot run here. The full command is exercised once with TensorRT MOCKED (monkeypatched
``require_tensorrt``, ``build_engine`` and ``TensorRTRunner``: the "engine" is ONNX Runtime on the
ONNX file); everything else is real (demo model export, synthetic frames, preprocessing,
clustering, the table).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from cvlab.bench import gpu
from cvlab.cli import main as cvlab_main
from cvlab.detections import Detections
from cvlab.export.tensorrt import trtexec_command

SIZE = (320, 256)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo DetectNet_v2 ONNX and synthetic thermal frames, as the bench uses them."""
    from cvlab.datasets.synthetic import generate_synthetic_flir
    from cvlab.export.demo_model import write_demo_onnx

    root = tmp_path_factory.mktemp("gpu")
    onnx_path = write_demo_onnx(root / "demo.onnx", num_classes=1, input_size=SIZE)
    flir = generate_synthetic_flir(root / "flir", "v1", num_images=8, seed=0)
    images = sorted(p for p in flir.rglob("*") if p.suffix.lower() in (".jpeg", ".jpg"))
    return onnx_path, images[:8]


def _fp16_weights_copy(onnx_path, out):
    """The same graph with every weight rounded to float16: what an FP16 engine computes with."""
    model = onnx.load(str(onnx_path))
    for init in model.graph.initializer:
        value = numpy_helper.to_array(init)
        if value.dtype == np.float32:
            init.CopyFrom(
                numpy_helper.from_array(value.astype(np.float16).astype(np.float32), init.name)
            )
    onnx.save(model, str(out))
    return out


def test_plans_for_every_precision(demo, tmp_path):
    onnx_path, images = demo
    plans = gpu.plan_engines(onnx_path, tmp_path, ("fp32", "fp16", "int8"), images, 4)
    assert [p.precision for p in plans] == ["fp32", "fp16", "int8"]
    assert all(p.input_chw == (3, SIZE[1], SIZE[0]) for p in plans)
    fp32, fp16, int8 = plans
    assert int8.calibration_cache == tmp_path / "calibration.bin"
    assert int8.calibration_images == [str(p) for p in images] and int8.calibration_max_batches == 2
    assert "--noTF32" in trtexec_command(fp32).argv and "--fp16" in trtexec_command(fp16).argv
    assert fp16.engine_path == tmp_path / "model_fp16.plan"


def test_compare_two_onnx_runs_outputs_and_detections(demo, tmp_path):
    from cvlab.inference.preprocess import preprocess_images

    onnx_path, images = demo
    batch = preprocess_images(images[:4], SIZE, on_error="raise")
    post = gpu.detectnet_postprocess(onnx_path, batch.original_sizes)
    reference = gpu.OnnxRuntimeRunner(onnx_path)
    table = gpu.compare_runs(
        reference,
        {
            "same": gpu.OnnxRuntimeRunner(onnx_path),
            "fp16 weights": gpu.OnnxRuntimeRunner(
                _fp16_weights_copy(onnx_path, tmp_path / "h.onnx")
            ),
        },
        batch.tensor,
        post,
    )
    same, half = table.to_dict("records")
    assert same["max|diff| output_cov"] == 0.0 and same["max|diff| output_bbox"] == 0.0
    assert same["dets ref"] > 0 and same["matched"] == same["dets ref"] == same["dets engine"]
    assert same["worst IoU"] == 1.0 and same["max|conf diff|"] == 0.0
    diff = max(half["max|diff| output_cov"], half["max|diff| output_bbox"])
    assert 0.0 < diff < 0.05
    assert half["matched"] >= 0.8 * half["dets ref"]


def test_compare_detections_one_to_one_per_class():
    def dets(boxes, conf, cls):
        return Detections(np.array(boxes, np.float32), np.array(conf, np.float32), np.array(cls),
                          ("a", "b"), (100, 100))  # fmt: skip

    ref = [dets([[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.8, 0.7], [0, 0, 1])]
    other = [dets([[1, 0, 11, 10], [0, 0, 10, 10]], [0.85, 0.7], [0, 0])]
    agree = gpu.compare_detections(ref, other)
    assert (agree.reference, agree.other, agree.matched) == (3, 2, 1)  # class b is not class a
    assert agree.worst_iou == pytest.approx(1.0) and agree.max_confidence_diff == pytest.approx(0.2)
    assert not agree.identical
    with pytest.raises(KeyError, match="output_bbox"):
        gpu.output_differences({"output_bbox/BiasAdd": np.zeros(2)}, {"x": np.zeros(2)})


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here"
)
def test_without_tensorrt_it_fails_with_one_line(capsys):
    assert cvlab_main(["bench", "gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(
        "cvlab bench gpu: error: TensorRT is not installed"
    )


def test_the_command_with_tensorrt_mocked(demo, tmp_path, monkeypatch, capsys):
    """MOCK: TensorRT replaced by ONNX Runtime on the ONNX file (no GPU here)."""
    import shutil

    onnx_path, images = demo
    built = []

    def fake_build(plan):
        built.append(plan.precision)
        shutil.copy(plan.onnx_path, plan.engine_path)
        return plan.engine_path

    monkeypatch.setattr(gpu, "require_tensorrt", lambda: None)
    monkeypatch.setattr("cvlab.export.tensorrt.build_engine", fake_build)
    monkeypatch.setattr(gpu, "TensorRTRunner", gpu.OnnxRuntimeRunner)
    code = cvlab_main(
        ["bench", "gpu", "--onnx", str(onnx_path), "--images", str(images[0].parent),
         "--output", str(tmp_path), "--batch", "2", "--count", "4"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and built == ["fp32", "fp16", "int8"]
    assert "max|diff| output_cov" in out and "gpu-check: FP32 max |diff| 0" in out
    assert "detections identical: True" in out
