"""Model repository writer/reader (Triton's own protobuf), ONNX export and repository checks."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format
from support.triton import INPUT_SIZE, MAX_BATCH, NUM_CLASSES, demo_onnx_path, onnx_reference
from tritonclient.grpc import model_config_pb2 as mc

from cvlab.resources import LAB_IR_CONFIG_PBTXT_NAME, resource_path
from cvlab.triton.model_repository import (
    ModelConfigError,
    parse_model_config,
    peoplenet_spec,
    read_model_config,
    spec_from_config,
    validate_model_repository,
    write_model_repository,
)

LAB_CONFIG = resource_path(LAB_IR_CONFIG_PBTXT_NAME)


@pytest.mark.parametrize("target", ["tensorrt_plan", "onnxruntime_onnx", "python"])
def test_write_read_round_trip(tmp_path, target):
    spec = peoplenet_spec("peoplenet", NUM_CLASSES, INPUT_SIZE, MAX_BATCH)
    if target == "tensorrt_plan":
        # TensorRT cannot run here (no GPU): a dummy engine file is only written, never served.
        model_file = tmp_path / "engine.plan"
        model_file.write_bytes(b"dummy engine")
    else:
        model_file = demo_onnx_path()
    model_dir = write_model_repository(
        tmp_path / "repo", spec, model_file, target=target, version=3
    )

    cfg = read_model_config(model_dir / "config.pbtxt")
    assert spec_from_config(cfg) == spec
    expected_file = {"tensorrt_plan": "model.plan", "onnxruntime_onnx": "model.onnx"}.get(
        target, "model.py"
    )
    assert (model_dir / "3" / expected_file).is_file()
    if target == "python":
        assert cfg.backend == "python" and not cfg.platform
        assert (model_dir / "3" / "model.onnx").read_bytes() == demo_onnx_path().read_bytes()
        compile((model_dir / "3" / "model.py").read_text(), "model.py", "exec")
    else:
        assert cfg.platform == target
    assert validate_model_repository(tmp_path / "repo") == []
    # no temporary files left behind
    assert not [p for p in (tmp_path / "repo").rglob(".*.tmp")]


def test_model_name_cannot_leave_the_repository(tmp_path):
    """Issue 20 item 2: a model name (it may come from a config.pbtxt) is a folder in the
    repository, never a path out of it."""
    from cvlab.fileio import UnsafePathError

    for name in ("../escaped", f"/{tmp_path}/abs"):
        spec = peoplenet_spec(name, NUM_CLASSES, INPUT_SIZE, MAX_BATCH)
        with pytest.raises(UnsafePathError, match="would leave"):
            write_model_repository(tmp_path / "repo", spec, demo_onnx_path(), target="python")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_lab_peoplenet_ir_config_reads_back():
    cfg = read_model_config(LAB_CONFIG)
    spec = spec_from_config(cfg)
    assert spec == peoplenet_spec("peoplenet_ir_tlt", num_classes=1, input_size=(960, 544))
    assert cfg.platform == "tensorrt_plan"
    assert [o.name for o in cfg.output] == ["output_bbox/BiasAdd", "output_cov/Sigmoid"]
    # the writer produces a config equal (as a protobuf message) to the lab's hand-written one
    ours = mc.ModelConfig()
    text_format.Parse(
        (resource_path(LAB_IR_CONFIG_PBTXT_NAME)).read_text(),
        ours,
    )
    assert ours == cfg


def test_parse_error_names_file_and_line(tmp_path):
    bad = tmp_path / "config.pbtxt"
    bad.write_text('name: "m"\nplatform: "onnxruntime_onnx"\nmax_batch_size: sixteen\n')
    with pytest.raises(ModelConfigError, match=r"config.pbtxt:3:"):
        read_model_config(bad)


def test_missing_field_is_named():
    with pytest.raises(ModelConfigError, match=r"x.pbtxt: field output"):
        parse_model_config(
            'name: "m" platform: "onnxruntime_onnx" input { name: "a" data_type: TYPE_FP32 '
            "dims: [3] }",
            "x.pbtxt",
        )
    with pytest.raises(ModelConfigError, match=r"input\[0\].dims"):
        parse_model_config(
            'name: "m" platform: "p" input { name: "a" data_type: TYPE_FP32 dims: [0] } '
            'output { name: "b" data_type: TYPE_FP32 dims: [1] }'
        )


def test_validate_finds_onnx_config_mismatch(tmp_path):
    # config says 1 class and another output name: both disagree with the 3-class demo ONNX
    spec = peoplenet_spec("wrong", 1, INPUT_SIZE, MAX_BATCH)
    spec.outputs[1] = ("output_cov", spec.outputs[1][1])
    write_model_repository(tmp_path, spec, demo_onnx_path(), target="onnxruntime_onnx")
    problems = validate_model_repository(tmp_path)
    assert any("'output_cov' is not an ONNX graph output" in p for p in problems), problems
    assert any("output[0].dims [4, 12, 20]" in p for p in problems), problems
    (tmp_path / "wrong" / "1" / "model.onnx").unlink()
    assert any("missing model.onnx" in p for p in validate_model_repository(tmp_path))


def test_onnx_export_names_and_equivalence():
    import onnx

    from cvlab.export.demo_model import build_demo_model
    from cvlab.export.onnx import check_onnx_matches_keras

    model = onnx.load(str(demo_onnx_path()))
    assert [i.name for i in model.graph.input] == ["input_1"]
    assert sorted(o.name for o in model.graph.output) == [
        "output_bbox/BiasAdd",
        "output_cov/Sigmoid",
    ]
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert not batch_dim.HasField("dim_value")  # dynamic batch
    keras_model = build_demo_model(NUM_CLASSES, INPUT_SIZE)  # same seed -> same weights
    assert check_onnx_matches_keras(keras_model, demo_onnx_path(), atol=1e-4) < 1e-4
    out = onnx_reference(np.zeros((2, 3, INPUT_SIZE[1], INPUT_SIZE[0]), np.float32))
    assert out["output_cov/Sigmoid"].shape == (2, NUM_CLASSES, 12, 20)
    assert out["output_bbox/BiasAdd"].shape == (2, 4 * NUM_CLASSES, 12, 20)


def test_spec_rejects_sizes_off_the_stride():
    with pytest.raises(ValueError, match="multiple of the stride"):
        peoplenet_spec("m", 1, (330, 192))


def test_cli_make_demo_model_and_check_repository(tmp_path, capsys):
    from cvlab.cli import main

    repo = tmp_path / "repo"
    args = ["export", "demo-model", "--output", str(repo), "--name", "tiny", "--num-classes", "1"]
    assert main([*args, "--input-size", "320x192", "--max-batch-size", "4"]) == 0
    cfg = read_model_config(repo / "tiny" / "config.pbtxt")
    assert cfg.max_batch_size == 4 and cfg.backend == "python"
    assert [list(o.dims) for o in cfg.output] == [[4, 12, 20], [1, 12, 20]]
    assert main(["triton", "check", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "model.onnx: symmetric padding on every layer" in out
    (repo / "tiny" / "config.pbtxt").write_text('name: "tiny"\nplatform: 7\n')
    assert main(["triton", "check", str(repo)]) == 1
    assert "config.pbtxt:2:" in capsys.readouterr().out
