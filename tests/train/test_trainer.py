"""The training loop: metrics, checkpoints, TensorBoard, resume, saved model, CLI (real TF)."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
from support.train import limit_tf_threads, tiny_dataset, tiny_train_config  # noqa: F401

from cvlab.cli import main as cvlab_main
from cvlab.train.trainer import train
from cvlab.train.validation import detections_from_outputs
from cvlab.viz.plots import plot_training

limit_tf_threads()


def test_train_checkpoint_resume_and_cli(tiny_dataset, tmp_path):  # noqa: F811
    pattern, root = tiny_dataset
    out = tmp_path / "run"
    config = tiny_train_config(epochs=2, validate_every=2)
    result = train(config, pattern, root, out, progress=False, max_steps_per_epoch=2)

    h = result.history
    assert h["epoch"].tolist() == [1, 2]
    assert h["step"].tolist() == [2, 4]
    for col in ("loss", "lr", "person_cov_loss", "person_bbox_loss", "images_per_s"):
        assert np.isfinite(h[col]).all(), col
    assert np.isnan(h["mAP"].iloc[0]) and 0.0 <= h["mAP"].iloc[1] <= 1.0
    assert "ap_person" in h
    # Autoweighting updated the objective weights after each epoch; they sum to 1.
    np.testing.assert_allclose(h["w_person_cov"] + h["w_person_bbox"], 1.0, rtol=1e-5)
    assert h["w_person_cov"].iloc[0] != 1 / 11
    pd.testing.assert_frame_equal(pd.read_csv(result.metrics_csv), h, check_dtype=False)
    assert [p.name for p in result.checkpoints] == ["ckpt-1", "ckpt-2"]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert not list(out.glob("*.tmp*"))

    # The saved model reloads and gives the same outputs.
    x = np.random.default_rng(0).random((1, 3, 96, 160), dtype=np.float32)
    reloaded = keras.models.load_model(result.model_path)
    np.testing.assert_allclose(
        np.asarray(reloaded(x)[0]), np.asarray(result.model(x, training=False)[0]), rtol=1e-5
    )
    assert reloaded.output_names == ["output_cov", "output_bbox"]

    # Resume through the CLI: only epoch 3 runs, the step counter continues.
    code = cvlab_main(
        [
            "train",
            "run",
            "--tfrecords",
            pattern,
            "--images",
            str(root),
            "--output",
            str(out),
            "--epochs",
            "3",
            "--batch-size",
            "2",
            "--input-size",
            "160x96",
            "--width-multiplier",
            "0.125",
            "--max-steps",
            "2",
            "--validate-every",
            "0",
            "--quiet",
        ]
    )
    assert code == 0
    resumed = pd.read_csv(out / "metrics.csv")
    assert resumed["epoch"].tolist() == [1, 2, 3]
    assert resumed["step"].tolist() == [2, 4, 6]
    np.testing.assert_allclose(resumed["loss"].iloc[:2], h["loss"], rtol=1e-6)


def test_plot_training_and_detections_from_outputs():
    import matplotlib

    matplotlib.use("Agg")
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [0.5, 0.2, 0.1],
            "person_cov_loss": [0.4, 0.2, 0.1],
            "person_bbox_loss": [0.05, 0.02, 0.01],
            "mAP": [np.nan, 0.4, 0.8],
        }
    )
    fig = plot_training(history)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].get_lines()) == 3 and len(fig.axes[1].get_lines()) == 1

    from cvlab.train.targets import build_targets

    box = np.array([[32, 16, 96, 80]], np.float32)
    cov, bbox, _ = build_targets([box], (160, 96))
    dets = detections_from_outputs(cov, bbox, ("person",), (160, 96), (320, 192))
    assert len(dets) == 1 and dets.image_size == (320, 192)
    np.testing.assert_allclose(dets.xyxy[0], box[0] * 2, atol=1e-3)


def test_validation_uses_the_inference_postprocessor():
    """Validation clusters with the core DBSCAN post-processor and the IR config; only the
    confidence threshold is lowered (AP integrates over confidence)."""
    import warnings

    from cvlab.inference.clustering_config import PEOPLENET_IR_CONFIG, load_clustering_config
    from cvlab.inference.postprocess import DetectNetPostprocessor
    from cvlab.train.targets import build_targets
    from cvlab.train.validation import VALIDATION_CONFIDENCE_THRESHOLD, validation_postprocessor

    post = validation_postprocessor(("person",), (160, 96))
    assert isinstance(post, DetectNetPostprocessor) and post.model_size == (160, 96)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ir = load_clustering_config(PEOPLENET_IR_CONFIG)
    person = post.config.classes["person"]
    assert person.dbscan_confidence_threshold == VALIDATION_CONFIDENCE_THRESHOLD < 0.9
    for field in ("algorithm", "dbscan_eps", "coverage_threshold", "minimum_bounding_box_height"):
        assert getattr(person, field) == getattr(ir.classes["person"], field), field

    # Two people, the second fainter. DBSCAN weighs cells by coverage (min_samples 1), so a
    # cluster needs a summed coverage >= 1 to exist at all: inference and validation then give
    # the same boxes and confidences; a fainter person (summed coverage 0.5) is dropped by both.
    boxes = [np.array([[16, 16, 64, 80]], np.float32), np.array([[96, 8, 144, 88]], np.float32)]
    cov_a, bbox_a, _ = build_targets([boxes[0]], (160, 96))
    cov_b, bbox_b, _ = build_targets([boxes[1]], (160, 96))
    bbox = np.where(cov_a > 0, bbox_a, bbox_b).astype(np.float32)
    inference = DetectNetPostprocessor(ir, ["person"], (160, 96))
    for faint, expected in ((0.3, 2), (0.1, 1)):
        cov = np.maximum(cov_a, faint * cov_b).astype(np.float32)
        val = detections_from_outputs(
            cov, bbox, ("person",), (160, 96), (160, 96), postprocessor=post
        )
        ref = inference({"output_cov/Sigmoid": cov, "output_bbox/BiasAdd": bbox}, (160, 96))
        assert len(val) == len(ref) == expected
        order, ref_order = np.argsort(val.xyxy[:, 0]), np.argsort(ref.xyxy[:, 0])
        np.testing.assert_allclose(val.xyxy[order], np.concatenate(boxes)[:expected], atol=1e-3)
        np.testing.assert_allclose(val.xyxy[order], ref.xyxy[ref_order], atol=1e-5)
        np.testing.assert_allclose(val.confidence[order], ref.confidence[ref_order], rtol=1e-6)


_MIRRORED_SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
tf.config.threading.set_intra_op_parallelism_threads(2)
sys.path.insert(0, sys.argv[4])
from support.train import tiny_train_config
from cvlab.train.trainer import train
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
config = tiny_train_config(epochs=1, validate_every=0)
r = train(config, sys.argv[1], sys.argv[2], sys.argv[3], progress=False,
          max_steps_per_epoch=1, strategy=strategy)
print("STEP", int(r.history["step"].iloc[-1]), "LOSS", float(r.history["loss"].iloc[-1]))
"""


def test_mirrored_strategy_on_two_logical_cpus(tiny_dataset, tmp_path):  # noqa: F811
    """The multi-replica path (MirroredStrategy, per-replica batch) on two logical CPU devices,
    in a fresh process because logical devices must be set before TensorFlow starts."""
    import subprocess
    import sys
    from pathlib import Path

    pattern, root = tiny_dataset
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _MIRRORED_SCRIPT,
            pattern,
            str(root),
            str(tmp_path / "run"),
            str(Path(__file__).parents[1]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("STEP")][-1].split()
    assert int(line[1]) == 1 and np.isfinite(float(line[3]))
    assert (tmp_path / "run" / "model.keras").exists()


def test_checkpoint_interval_and_validation_schedule_as_tao(tiny_dataset, tmp_path):  # noqa: F811
    """TAO: checkpoints every checkpoint_interval epochs (and the last); validation at
    first_validation_epoch + k * period and at the last epoch; L1 adds to the loss."""
    from cvlab.train.model import ModelConfig
    from cvlab.train.trainer import validation_due

    assert [e for e in range(1, 121) if validation_due(e, 120, 10, 110)] == [110, 120]
    assert not any(validation_due(e, 5, 0, 1) for e in range(1, 6))  # period 0: never
    pattern, root = tiny_dataset
    base = tiny_train_config().model
    model = ModelConfig(**{**base.__dict__, "regularizer": "L1", "regularizer_weight": 1e-3})
    config = tiny_train_config(
        model=model, epochs=5, checkpoint_interval=2, validate_every=3, first_validation_epoch=1
    )
    result = train(config, pattern, root, tmp_path, progress=False, max_steps_per_epoch=1)
    assert [p.name for p in result.checkpoints] == ["ckpt-2", "ckpt-4", "ckpt-5"]
    validated = result.history.dropna(subset=["mAP"])["epoch"].tolist()
    assert validated == [1, 4, 5]
    # the L1 term (1e-3 * sum |W| over every convolution) is part of the loss
    from cvlab.train.losses import regularization_cost

    assert float(regularization_cost(result.model)) > 0.0
    # the task cost is ~0.1 here, the L1 term ~3: the logged loss must carry it
    assert (result.history["loss"] > 0.9 * float(regularization_cost(result.model))).all()


def test_steps_per_epoch_round_up_as_tao(tiny_dataset, tmp_path):  # noqa: F811
    """TAO's compute_steps_per_epoch (training/utilities.py:97-102) rounds up: 8 training
    frames at batch 3 take 3 steps per epoch (not 2). TAO's training-time validation takes
    num_validation_samples // batch_size steps (scripts/train.py:667)."""
    from cvlab.train.trainer import steps_per_epoch, tao_validation_frames

    # TAO's numbers: divmod, +1 on a remainder; then the same per processor.
    for n, b in [(8, 3), (8, 4), (1, 8), (6000, 16), (6001, 16)]:
        q, r = divmod(n, b)
        assert steps_per_epoch(n, b) == q + (r != 0)
    assert tao_validation_frames(4, 3) == 3 and tao_validation_frames(1, 4) == 0
    pattern, root = tiny_dataset
    result = train(
        tiny_train_config(batch_size=3, epochs=1, validate_every=0), pattern, root, tmp_path,
        progress=False,
    )  # fmt: skip
    assert result.history["step"].tolist() == [3]


def _cli_run(pattern, root, out, *more: str) -> int:
    return cvlab_main(
        ["train", "run", "--tfrecords", pattern, "--images", str(root), "--output", str(out),
         "--batch-size", "2", "--input-size", "160x96", "--width-multiplier", "0.125",
         "--max-steps", "1", "--validate-every", "0", "--quiet", *more]
    )  # fmt: skip


def test_resume_refuses_another_model_and_missing_classes(tiny_dataset, tmp_path, capsys):  # noqa: F811
    """Issue 20 item 6: a finished person run re-run with ``--classes car --epochs 3`` (or
    another architecture) is refused, the difference named, and its model left as it was;
    ``--classes persn`` (no such class in the data) fails and writes nothing."""
    pattern, root = tiny_dataset
    out = tmp_path / "run"
    assert _cli_run(pattern, root, out, "--epochs", "1") == 0
    saved = (out / "model.h5").read_bytes()
    capsys.readouterr()
    for change, named in (
        (["--classes", "car"], "classes: ['person'] -> ['car']"),
        (["--width-multiplier", "0.25"], "model.width_multiplier: 0.125 -> 0.25"),
    ):
        assert _cli_run(pattern, root, out, "--epochs", "3", *change) == 2
        err = capsys.readouterr().err
        assert named in err and len(err.strip().splitlines()) == 1, err
    assert (out / "model.h5").read_bytes() == saved
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [1]
    # the same run with more epochs still resumes
    assert _cli_run(pattern, root, out, "--epochs", "2") == 0
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [1, 2]

    fresh = tmp_path / "typo"
    assert _cli_run(pattern, root, fresh, "--epochs", "1", "--classes", "person,persn") == 2
    err = capsys.readouterr().err
    assert "'persn'" in err and "person" in err and len(err.strip().splitlines()) == 1
    assert not fresh.exists()
