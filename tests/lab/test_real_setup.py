"""The real-setup steps agree with each other: every command and config.pbtxt of one model's
chain names the same sizes, tensor names, model names and paths (no TensorRT, GCS or GKE here:
the commands are parsed, the configs are the files cvlab writes)."""

from __future__ import annotations

import shlex
from pathlib import Path

from cvlab import lab
from cvlab.detectnet import STRIDE
from cvlab.lab.real_setup import Step
from cvlab.resources import LAB_TRAINING_SPEC_NAME, resource_path
from cvlab.triton.model_repository import read_model_config

BUCKET = "gs://b/tlt/triton-model"


def _argv(steps: list[Step], program: str) -> list[list[str]]:
    return [
        shlex.split(c)
        for s in steps
        for c in s.commands
        if not c.startswith("export ") and shlex.split(c)[:1] == [program]
    ]


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _check_chain(steps: list[Step], name: str, num_classes: int) -> None:
    """tlt-converter -> gsutil (plan and config) -> the config's sizes/names -> Triton on GKE."""
    (converter,) = _argv(steps, "tlt-converter")
    channels, height, width = (int(v) for v in _flag(converter, "-d").split(","))
    outputs = _flag(converter, "-o").split(",")
    engine = _flag(converter, "-e")
    max_batch = int(_flag(converter, "-m")) if "-m" in converter else 16  # tlt-converter's default
    copies = [a for a in _argv(steps, "gsutil") if a[1] == "cp"]
    plan = next(a for a in copies if a[3].endswith("/1/model.plan"))
    assert plan[2] == engine  # the plan copied is the one built
    assert plan[3] == f"{BUCKET}/{name}/1/model.plan"
    config_copy = next(a for a in copies if a[2].endswith("config.pbtxt"))
    assert config_copy[3] == f"{BUCKET}/{name}/"
    config_path = Path(config_copy[2])
    assert config_path.is_file() and config_path.parent.name == name  # written by cvlab
    config = read_model_config(config_path)
    assert config.name == name and config.platform == "tensorrt_plan"
    assert config.max_batch_size == max_batch
    (inp,) = config.input
    assert list(inp.dims) == [channels, height, width]
    assert inp.name == "input_1"
    grids = [height // STRIDE, width // STRIDE]
    dims = {o.name: list(o.dims) for o in config.output}
    assert sorted(dims) == sorted(outputs)
    assert dims["output_cov/Sigmoid"] == [num_classes, *grids]
    assert dims["output_bbox/BiasAdd"] == [4 * num_classes, *grids]
    manifests = next(a for a in _argv(steps, "cvlab") if a[1:3] == ["cloud", "manifests"])
    assert _flag(manifests, "--model-repository") == BUCKET


def test_ir_setup_is_for_the_real_960x544_engine(tmp_path: Path) -> None:
    ws = lab.Workspace(tmp_path)
    steps = lab.ir_model_steps(ws, BUCKET)
    _check_chain(steps, "peoplenet_ir_tlt", 1)
    (export,) = _argv(steps, "detectnet_v2")
    (converter,) = _argv(steps, "tlt-converter")
    assert converter[-1] == _flag(export, "-o")  # converts the .etlt the export wrote
    # the training spec trains at the size the engine is built for
    spec = resource_path(LAB_TRAINING_SPEC_NAME).read_text()
    assert "output_image_width: 960" in spec and "output_image_height: 544" in spec
    # the config the notebook shows is that file: model_repository_gke/peoplenet_ir_tlt
    config = ws.gke_model_repository / "peoplenet_ir_tlt" / "config.pbtxt"
    assert config.is_file() and config in [Path(c.split()[2]) for c in steps[1].commands]
    # the client asks for that model, for its one class
    (client,) = _argv(lab.ir_client_steps(), "cvlab")
    assert _flag(client, "-m") == "peoplenet_ir_tlt" and _flag(client, "--class_list") == "person"
    assert Path(_flag(client, "--postprocessing_config")).is_file()


def test_rgb_setup_is_for_the_real_960x544_engine(tmp_path: Path) -> None:
    ws = lab.Workspace(tmp_path)
    steps = lab.rgb_model_steps(ws, BUCKET)
    _check_chain(steps, "peoplenet_tlt", 3)
    (export,) = _argv(steps, "detectnet_v2")
    (converter,) = _argv(steps, "tlt-converter")
    assert converter[-1] == _flag(export, "-o")
    client = next(a for a in _argv(steps, "cvlab") if a[1] == "infer")
    assert _flag(client, "-m") == "peoplenet_tlt"
    assert Path(_flag(client, "--postprocessing_config")).is_file()


def test_the_offline_model_does_not_change_the_gke_config(tmp_path: Path) -> None:
    """The workspace's GKE config stays the real engine's whatever the offline model's size
    (it once carried the tiny model's 3x256x320 and 16x20 grids), and a tiny engine built here
    does not join it. The ONNX and engine files are placeholders (no TensorRT here)."""
    import pandas as pd

    from cvlab.lab.deploy import ensure_ir_repository
    from cvlab.lab.training import TrainedModel

    ws = lab.Workspace(tmp_path / "ws")
    onnx, engine = tmp_path / "model.onnx", tmp_path / "model.plan"
    onnx.write_bytes(b"placeholder")
    engine.write_bytes(b"placeholder")
    trained = TrainedModel(tmp_path / "m.keras", tmp_path, pd.DataFrame(), (320, 256), ("person",))
    repos = ensure_ir_repository(ws, trained, onnx, engine=engine)
    config = read_model_config(repos.lab_config_path)
    assert repos.lab_config_path == ws.gke_model_repository / "peoplenet_ir_tlt" / "config.pbtxt"
    assert list(config.input[0].dims) == [3, 544, 960]
    assert {o.name: list(o.dims) for o in config.output}["output_cov/Sigmoid"] == [1, 34, 60]
    assert not (ws.gke_model_repository / "peoplenet_ir_tlt" / "1").exists()
    assert lab.deploy._config_summary(repos.lab_config_path) == (
        "peoplenet_ir_tlt (tensorrt_plan): input 3x544x960, grids 34x60"
    )
