"""The shipped RGB stand-in: its Keras weights load into the DetectNet_v2 its TAO spec describes
and give the outputs of its shipped ONNX; ``cvlab export rgb-standin`` writes a valid
repository; its provenance says what it learnt from and keeps the held-out frames out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.train import limit_tf_threads

from cvlab.cli import main
from cvlab.detectnet import PEOPLENET_CLASSES
from cvlab.train import standin

limit_tf_threads()


def test_shipped_weights_give_the_shipped_onnx_outputs() -> None:
    import onnxruntime as ort

    from cvlab.datasets.video import fetch_video, read_frames
    from cvlab.inference.preprocess import preprocess_images
    from cvlab.train.config import TrainConfig
    from cvlab.train.model import build_from_config, load_weights_by_name

    spec = standin.SHIPPED_DIR / standin.SPEC_FILE
    config = TrainConfig.from_spec(spec, width_multiplier=standin.STANDIN_WIDTH)
    assert config.model.input_size == standin.STANDIN_INPUT_SIZE
    assert config.class_names == PEOPLENET_CLASSES
    model = build_from_config(len(config.class_names), config.model)
    report = load_weights_by_name(
        model, standin.SHIPPED_DIR / standin.WEIGHTS_FILE, load_graph=True
    )
    assert not report.skipped and not report.missing and report.heads_loaded

    # a real frame of the video, through the inference preprocessing
    import tempfile

    from cvlab.fileio import atomic_write_image

    with tempfile.TemporaryDirectory() as tmp:
        ((index, rgb),) = read_frames(fetch_video(), [650])
        path = atomic_write_image(f"{tmp}/frame.png", rgb)
        batch = preprocess_images([str(path)], standin.STANDIN_INPUT_SIZE).tensor
    session = ort.InferenceSession(
        str(standin.SHIPPED_DIR / standin.ONNX_FILE), providers=["CPUExecutionProvider"]
    )
    onnx_out = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {"input_1": batch}),
            strict=True,
        )
    )
    keras_out = model(batch, training=False)
    keras_cov, keras_bbox = (np.asarray(v) for v in keras_out)
    np.testing.assert_allclose(onnx_out["output_cov/Sigmoid"], keras_cov, atol=1e-4)
    np.testing.assert_allclose(onnx_out["output_bbox/BiasAdd"], keras_bbox, atol=1e-3)
    assert keras_cov[0, 0].max() > 0.5  # it sees the people of the plaza


def test_shipped_files_are_small_and_their_provenance_is_complete() -> None:
    files = [standin.SHIPPED_DIR / n for n in (standin.WEIGHTS_FILE, standin.ONNX_FILE)]
    assert sum(f.stat().st_size for f in files) <= 10 * 2**20
    provenance = json.loads((standin.SHIPPED_DIR / standin.PROVENANCE_FILE).read_text())
    assert set(provenance["trained_on"]) == set(PEOPLENET_CLASSES)
    assert "600-794" in provenance["heldout"]
    assert provenance["labels"]["video"]["frames"] == [0, 599]  # no held-out frame labelled
    assert provenance["command"].startswith("cvlab video standin")
    assert standin.SHIPPED_CLUSTERING.is_file()


def test_export_rgb_standin_writes_a_valid_repository(tmp_path, capsys) -> None:
    from cvlab.triton.model_repository import read_model_config, validate_model_repository

    assert main(["export", "rgb-standin", "--output", str(tmp_path / "repo")]) == 0
    out = capsys.readouterr().out
    model_dir = tmp_path / "repo" / standin.MODEL_NAME
    assert validate_model_repository(tmp_path / "repo") == []
    cfg = read_model_config(model_dir / "config.pbtxt")
    w, h = standin.STANDIN_INPUT_SIZE
    assert list(cfg.input[0].dims) == [3, h, w]
    assert sorted(list(o.dims) for o in cfg.output) == [
        [3, h // 16, w // 16],
        [12, h // 16, w // 16],
    ]
    assert "cvlab triton serve --model-repository" in out
    assert f"-m {standin.MODEL_NAME}" in out and "clustering_config_rgb_standin.prototxt" in out


def test_the_standin_spec_is_a_valid_tao_spec(tmp_path) -> None:
    from cvlab.formats.tao_spec import load_training_spec, write_training_spec

    spec = standin.build_standin_spec("data/tfrecords/vtest-fold-*", "data", epochs=3)
    written = write_training_spec(spec, tmp_path / "spec.txt")  # validated by TAO's schema
    again = load_training_spec(written)
    assert again.training_config.num_epochs == 3
    assert not again.model_config.pretrained_model_file  # trained from scratch
    assert [t.name for t in again.cost_function_config.target_classes] == list(PEOPLENET_CLASSES)
    assert (standin.SHIPPED_DIR / standin.SPEC_FILE).read_text().count("target_classes") == 3
    radii = {k: v.cov_radius_x for k, v in again.bbox_rasterizer_config.target_class_config.items()}
    assert radii == pytest.approx({"person": 0.25, "bag": 0.4, "face": 0.4})
    assert all(
        v.cov_radius_y == v.cov_radius_x
        for v in again.bbox_rasterizer_config.target_class_config.values()
    )
    shipped = load_training_spec(standin.SHIPPED_DIR / standin.SPEC_FILE)  # what trained it
    assert shipped.bbox_rasterizer_config == again.bbox_rasterizer_config


def test_the_threshold_trades_a_flat_f1_for_no_duplicates() -> None:
    rows = [
        {"threshold": 1.5, "f1": 0.903, "duplicates": 2},
        {"threshold": 2.0, "f1": 0.903, "duplicates": 1},
        {"threshold": 3.25, "f1": 0.898, "duplicates": 0},
        {"threshold": 3.5, "f1": 0.898, "duplicates": 0},
        {"threshold": 4.0, "f1": 0.847, "duplicates": 0},  # no duplicate, but too few people
    ]
    assert standin.choose_threshold(rows)["threshold"] == 3.25  # lowest of the equal ones
    assert standin.choose_threshold(rows, tolerance=0.004)["threshold"] == 2.0
    assert standin.choose_threshold(rows, tolerance=0.0)["threshold"] == 2.0
    assert standin.choose_threshold(rows[-1:])["threshold"] == 4.0


def test_clustering_thresholds_are_written_into_peoplenets_config(tmp_path) -> None:
    from cvlab.inference.clustering_config import load_clustering_config

    path = standin.write_clustering_config(
        {"person": 1.5, "bag": 0.05, "face": 0.3}, tmp_path / "c.prototxt"
    )
    config = load_clustering_config(path)
    assert config.class_names == PEOPLENET_CLASSES
    thresholds = {n: c.dbscan_confidence_threshold for n, c in config.classes.items()}
    assert thresholds == {"person": 1.5, "bag": 0.05, "face": 0.3}
    assert config.classes["person"].dbscan_eps == 0.3  # PeopleNet's other settings
