"""Shared helpers for the trainer tests: TF thread limits, tiny configs and a tiny FLIR dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_INPUT = (160, 96)


def limit_tf_threads(n: int = 2) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # TF already initialised in this process
        pass


def tiny_model_config():
    from cvlab.train.model import ModelConfig

    return ModelConfig(input_size=TINY_INPUT, num_layers=10, width_multiplier=0.125)


def tiny_train_config(**overrides):
    from cvlab.train.config import TrainConfig

    base = dict(model=tiny_model_config(), batch_size=2, validate_every=2, epochs=2)
    base.update(overrides)
    return TrainConfig.tiny(**base)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> tuple[str, Path]:
    """12 synthetic FLIR v1 frames through ``prepare_flir_dataset`` at 320x192 (the project's
    thermal generator and converter): 8 training + 4 validation frames, each with people."""
    limit_tf_threads()
    from cvlab.bench.train import make_flir_person_set

    out = tmp_path_factory.mktemp("train_data")
    return make_flir_person_set(
        out, num_images=12, input_size=(320, 192), seed=3, val_percent=100 / 3
    )
