"""Lab training steps: cvlab's TensorFlow trainer on the prepared TFRecords, the training
curve, and the TAO training spec and commands.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cvlab.lab.data import PreparedDataset, ensure_prepared_dataset
from cvlab.lab.workspace import Workspace

#: Epochs of the tiny embedded-default run (about 2 minutes on 2 free CPU cores, 96 training
#: frames; person AP about 0.8 on the held-out frames).
TINY_EPOCHS = 24
#: ``pretrained_weights`` value that names the shipped RGB stand-in's weights (what notebook 03
#: starts from offline, as the lab starts from PeopleNet's).
RGB_STANDIN = "rgb_standin"


@dataclass
class TrainedModel:
    """The trained Keras model and its training record."""

    model_path: Path
    output_dir: Path
    history: pd.DataFrame
    input_size: tuple[int, int]
    class_names: tuple[str, ...]

    def load(self) -> Any:
        """The Keras model (loaded from ``model_path``)."""
        import keras

        import cvlab.train.model  # noqa: F401  (registers the custom layers)

        return keras.models.load_model(self.model_path, compile=False)


def _train_config(
    name: str, class_names: Sequence[str], pretrained_weights: str | Path | None = None
) -> Any:
    """The trainer's settings: ``"tiny"`` (CPU) or ``"peoplenet"``, the lab's TAO training spec
    (:func:`cvlab.formats.tao_spec.build_lab_spec`: ResNet-34, 960x544, its cost, regularizer,
    optimizer and schedule) read as TAO reads it, starting from ``pretrained_weights`` (a plain
    Keras HDF5 such as NGC's unencrypted trainable PeopleNet; ``.tlt`` is refused with the way
    to get one)."""
    from cvlab.train.config import TrainConfig

    weights = str(pretrained_weights) if pretrained_weights else None
    if name == "tiny":
        return TrainConfig.tiny(
            class_names=tuple(class_names),
            epochs=TINY_EPOCHS,
            threads=2,
            pretrained_weights=weights,
        )
    if name == "peoplenet":
        import warnings

        from cvlab.formats.tao_spec import build_lab_spec

        spec = build_lab_spec("<prepared>", "<prepared>", class_names=tuple(class_names))
        with warnings.catch_warnings():  # the lab spec's min_bbox_* (no effect in TAO either)
            warnings.simplefilter("ignore", UserWarning)
            return TrainConfig.from_spec(spec, pretrained_weights=weights)
    raise ValueError(f"MODEL_CONFIG must be 'tiny' or 'peoplenet', got {name!r}")


def ensure_trained_model(
    ws: Workspace,
    prepared: PreparedDataset | None = None,
    *,
    config: str = "tiny",
    epochs: int | None = None,
    batch_size: int | None = None,
    force: bool = False,
    live_plot: bool = False,
    pretrained_weights: str | Path | None = None,
) -> TrainedModel:
    """Train DetectNet_v2 on the prepared TFRecords with cvlab's trainer (once; ``force``
    retrains from scratch). ``live_plot`` redraws the loss/mAP curve after every epoch in
    the notebook. ``pretrained_weights`` (Keras HDF5, loaded by layer name: the backbone, as
    TAO does with ``model_config.pretrained_model_file``; :data:`RGB_STANDIN` for the shipped
    RGB stand-in's) is where training starts; the number of layers loaded is printed.
    Returns the model path and the history DataFrame."""
    state = ws.state().get("trained")
    if state and not force and Path(state["model_path"]).exists():
        return TrainedModel(
            model_path=Path(state["model_path"]),
            output_dir=Path(state["output_dir"]),
            history=pd.read_csv(state["metrics_csv"]),
            input_size=tuple(state["input_size"]),
            class_names=tuple(state["class_names"]),
        )
    from cvlab.train.trainer import train

    if str(pretrained_weights) == RGB_STANDIN:
        from cvlab.train.standin import SHIPPED_DIR, WEIGHTS_FILE

        pretrained_weights = SHIPPED_DIR / WEIGHTS_FILE
    prepared = prepared or ensure_prepared_dataset(ws)
    train_config = _train_config(config, prepared.class_names, pretrained_weights)
    if force and ws.training.exists():
        shutil.rmtree(ws.training)
    run = functools.partial(
        train,
        train_config,
        prepared.tfrecords_pattern,
        prepared.root,
        ws.training,
        epochs=epochs,
        batch_size=batch_size,
        resume=not force,
        progress=True,
        validate_every=max(1, (epochs or train_config.epochs) // 8),  # shows the plateau
    )
    if live_plot:
        from cvlab.lab.live import LiveTrainingPlot

        with LiveTrainingPlot(ws.training / "metrics.csv", epochs or train_config.epochs):
            result = run()
    else:
        result = run()
    trained = TrainedModel(
        model_path=Path(result.model_path),
        output_dir=ws.training,
        history=result.history,
        input_size=tuple(train_config.model.input_size),
        class_names=tuple(train_config.class_names),
    )
    ws.update_state(
        trained={
            "model_path": trained.model_path,
            "output_dir": trained.output_dir,
            "metrics_csv": result.metrics_csv,
            "input_size": trained.input_size,
            "class_names": trained.class_names,
            "config": config,
        }
    )
    return trained


def record_training_curve(ws: Workspace, history: pd.DataFrame) -> Any:
    """Save the loss/mAP curve and the history table for the report (nothing displayed)."""
    import matplotlib.pyplot as plt

    from cvlab.lab.workspace import record_figure, record_table
    from cvlab.viz.plots import plot_training

    fig = plot_training(history)
    path = record_figure(ws, "03_training_curve", fig, "Training loss and validation mAP (03)")
    plt.close(fig)
    record_table(ws, "03_training_history", history, "Training history (03)")
    return path


def plot_history(history: pd.DataFrame) -> Any:
    """Loss terms and validation mAP per epoch (cvlab.viz.plots.plot_training), inline."""
    import matplotlib.pyplot as plt

    from cvlab.viz.plots import plot_training

    fig = plot_training(history)
    plt.show()
    return fig


@dataclass
class TaoStep:
    """The TAO training spec written for the prepared dataset and the commands to run."""

    spec_path: Path
    commands: list[str]
    available: bool


def write_tao_spec(
    ws: Workspace,
    prepared: PreparedDataset,
    *,
    num_epochs: int = 60,
    key: str = "tlt_encode",
    gpus: int = 8,
) -> TaoStep:
    """Write the lab's DetectNet_v2 training spec (TAO protobuf) for ``prepared`` and build the
    ``detectnet_v2 train/export`` commands (run them where TAO is installed)."""
    from cvlab.formats.tao_spec import build_lab_spec, load_training_spec, write_training_spec

    spec = build_lab_spec(
        prepared.tfrecords_pattern,
        str(prepared.root),
        class_names=prepared.class_names,
        num_epochs=num_epochs,
        image_extension="jpg",
    )
    spec_path = write_training_spec(spec, ws.training.parent / "tao" / "training_spec.txt")
    load_training_spec(spec_path)  # parse back: the file is valid for TAO's schema
    results = ws.root / "tao" / "experiments"
    commands, available = _tao_commands(spec_path, results, key, gpus)
    return TaoStep(Path(spec_path), commands, available)


def _tao_commands(spec: Path, results: Path, key: str, gpus: int) -> tuple[list[str], bool]:
    from cvlab.train import tao

    commands = [
        tao.detectnet_v2_train(spec, results, name="final_model", key=key, gpus=gpus),
        tao.detectnet_v2_export(
            results / "weights" / "final_model.tlt", results / "final_model.etlt", key=key
        ),
        tao.detectnet_v2_train(
            spec, results, name="final_model", key=key, gpus=gpus, launcher="tao5"
        ),
    ]
    return [shell_line(c) for c in commands], bool(tao.tao_available())


def shell_line(command: Any) -> str:
    """A command as one bash line: a string as is, a :class:`cvlab.shell.Command` (or anything
    with ``.shell``) by its ``shell``, an argv list by :func:`cvlab.shell.shell_join`."""
    from cvlab.shell import shell_join

    if isinstance(command, str):
        return command
    if hasattr(command, "shell"):
        return str(command.shell)
    return shell_join(command)
