"""TensorRT engine build plan, trtexec / tao-converter commands and INT8 calibration batches.

TensorRT itself cannot run here (no GPU): the plan and commands are computed without it, and the
calibrator wrapper is exercised against a FAKE minimal ``tensorrt`` module injected into
sys.modules (it only provides the IInt8EntropyCalibrator2 base class). On a machine with
TensorRT and a GPU, ``build_engine`` runs the real API.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import types

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from cvlab.export.calibration import (
    CalibrationBatches,
    CalibrationCache,
    HostBuffer,
    make_entropy_calibrator,
)
from cvlab.export.tensorrt import (
    EngineBuildPlan,
    EnginePlanError,
    read_onnx_input,
    tao_converter_command,
    trtexec_command,
)


def _onnx(path, batch="N", hw=(544, 960)):
    """A one-node DetectNet-shaped ONNX graph (Identity), enough for reading input dims."""
    x = helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [batch, 3, *hw])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3, *hw])
    graph = helper.make_graph([helper.make_node("Identity", ["input_1"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_plan_from_onnx_reads_input_and_gives_the_lab_profile(tmp_path):
    plan = EngineBuildPlan.from_onnx(_onnx(tmp_path / "m.onnx"), tmp_path / "m.plan")
    assert plan.input_name == "input_1" and plan.input_chw == (3, 544, 960)
    assert plan.profile == {"input_1": ((1, 3, 544, 960), (8, 3, 544, 960), (16, 3, 544, 960))}
    assert plan.input_size == (960, 544)
    assert plan.workspace_bytes == 2048 * 1024 * 1024


def test_fixed_batch_onnx_is_rejected(tmp_path):
    with pytest.raises(EnginePlanError, match="fixed batch of 1"):
        read_onnx_input(_onnx(tmp_path / "m.onnx", batch=1))
    with pytest.raises(FileNotFoundError, match="no such ONNX"):
        read_onnx_input(tmp_path / "missing.onnx")


def test_trtexec_command_fp16_and_int8(tmp_path):
    plan = EngineBuildPlan("m.onnx", "m.plan", precision="fp16", workspace_mib=4096,
                           timing_cache="timing.cache")  # fmt: skip
    assert list(trtexec_command(plan).argv) == [
        "trtexec", "--onnx=m.onnx", "--saveEngine=m.plan",
        "--minShapes=input_1:1x3x544x960", "--optShapes=input_1:8x3x544x960",
        "--maxShapes=input_1:16x3x544x960", "--fp16", "--memPoolSize=workspace:4096M",
        "--timingCacheFile=timing.cache",
    ]  # fmt: skip
    cache = tmp_path / "cal.bin"
    cache.write_bytes(b"TRT-8601-EntropyCalibration2\n")
    int8 = EngineBuildPlan("m.onnx", "m.plan", precision="int8", calibration_cache=cache)
    flags = trtexec_command(int8).argv
    assert "--int8" in flags and f"--calib={cache}" in flags and "--fp16" not in flags
    fp32 = trtexec_command(EngineBuildPlan("m.onnx", "m.plan", precision="fp32")).argv
    assert not {"--fp16", "--int8"} & set(fp32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "fp8"}, "precision"),
        ({"min_batch": 4, "opt_batch": 2}, "min \\(4\\) <= opt \\(2\\)"),
        ({"precision": "int8"}, "needs calibration_cache"),
        ({"precision": "int8", "calibration_cache": "/nonexistent/cal.bin"}, "0 calibration image"),
        ({"workspace_mib": 0}, "workspace_mib"),
    ],
)
def test_bad_plans_name_the_setting(kwargs, message):
    with pytest.raises(EnginePlanError, match=message):
        EngineBuildPlan("m.onnx", "m.plan", **kwargs)


def test_tao_converter_lab_and_full_forms():
    lab = tao_converter_command("/tlt/models/ir.etlt", "tlt_encode", engine="/tlt/models/ir.engine",
                                data_type=None, max_batch=None, tool="tlt-converter")  # fmt: skip
    assert lab.shell == (
        "tlt-converter -k tlt_encode -d 3,544,960 -e /tlt/models/ir.engine "
        "-o output_cov/Sigmoid,output_bbox/BiasAdd /tlt/models/ir.etlt"
    )
    full = tao_converter_command("ir.etlt", "k", engine="ir.plan", data_type="int8",
                                 calibration_cache="cal.bin", workspace_bytes=1 << 30,
                                 input_profile=("input_1", 1, 8, 16))  # fmt: skip
    assert list(full.argv) == [
        "tao-converter", "-k", "k", "-d", "3,544,960", "-e", "ir.plan",
        "-o", "output_cov/Sigmoid,output_bbox/BiasAdd", "-t", "int8", "-m", "16",
        "-c", "cal.bin", "-w", str(1 << 30),
        "-p", "input_1,1x3x544x960,8x3x544x960,16x3x544x960", "ir.etlt",
    ]  # fmt: skip
    with pytest.raises(EnginePlanError, match="-c"):
        tao_converter_command("ir.etlt", "k", data_type="int8")


def test_commands_are_shell_commands_without_the_training_package():
    """Engine commands are :class:`cvlab.shell.Command`; the export side needs nothing of
    cvlab.train (a fresh interpreter imports cvlab.export.tensorrt alone)."""
    from cvlab.shell import Command

    assert isinstance(tao_converter_command("ir.etlt", "k", data_type=None), Command)
    code = "import sys, cvlab.export.tensorrt; print(*(m for m in sys.modules if 'train' in m))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert [m for m in done.stdout.split() if m.startswith("cvlab")] == []


@pytest.fixture
def images(tmp_path):
    paths = []
    for i in range(5):
        img = np.full((40, 50, 3), 40 * i, np.uint8)
        img[:, :10] = (255, 0, 0)  # a red stripe at the left (RGB)
        p = tmp_path / f"img{i}.png"
        cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        paths.append(p)
    return paths


def test_calibration_batches_are_full_contiguous_nchw(images):
    batches = CalibrationBatches(images, batch_size=2, input_size=(25, 20))
    assert len(batches) == 2  # 5 images -> 2 full batches of 2
    out = list(batches)
    assert len(out) == 2
    for b in out:
        assert b.shape == (2, 3, 20, 25) == batches.shape
        assert b.dtype == np.float32 and b.flags["C_CONTIGUOUS"]
    # preprocessed as at inference: RGB order, scaled to [0, 1], resized
    assert out[0][0, 0, :, :4].min() == pytest.approx(1.0)  # red channel of the stripe
    assert out[0][0, 2, :, :4].max() == pytest.approx(0.0)
    assert out[1][0, 1, :, -1].mean() == pytest.approx(80 / 255, abs=1e-6)  # image 2
    assert len(CalibrationBatches(images, 2, (25, 20), max_batches=1)) == 1
    with pytest.raises(ValueError, match="at least one full batch"):
        CalibrationBatches(images[:1], batch_size=2)


def test_calibration_cache_roundtrip(tmp_path):
    cache = CalibrationCache(tmp_path / "sub" / "cal.bin")
    assert cache.read() is None
    cache.write(b"table")
    assert cache.read() == b"table"
    assert not list((tmp_path / "sub").glob(".*"))


@pytest.fixture
def fake_tensorrt(monkeypatch):
    """FAKE TensorRT: only the calibrator base class. Real TensorRT needs a GPU."""
    fake = types.ModuleType("tensorrt")

    class IInt8EntropyCalibrator2:
        def __init__(self):
            pass

    fake.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return fake


def test_entropy_calibrator_serves_batches_and_cache(tmp_path, images, fake_tensorrt):
    batches = CalibrationBatches(images, batch_size=2, input_size=(25, 20))
    expected = list(batches)
    cal = make_entropy_calibrator(batches, tmp_path / "cal.bin", allocator=HostBuffer)
    assert isinstance(cal, fake_tensorrt.IInt8EntropyCalibrator2)
    assert cal.get_batch_size() == 2
    assert cal.read_calibration_cache() is None  # first build: TensorRT calibrates
    for want in expected:
        (ptr,) = cal.get_batch(["input_1"])
        got = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), (want.size,))
        np.testing.assert_array_equal(got.reshape(want.shape), want)
    assert cal.get_batch(["input_1"]) is None
    assert cal.batches_served == 2
    cal.write_calibration_cache(memoryview(b"TRT-calibration-table"))
    again = make_entropy_calibrator(batches, tmp_path / "cal.bin", allocator=HostBuffer)
    assert again.read_calibration_cache() == b"TRT-calibration-table"  # later builds reuse it
