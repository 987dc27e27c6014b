"""cvlab.lab.training: the lab's "peoplenet" path reads the lab's TAO spec and takes
PRETRAINED_WEIGHTS; the tiny path takes them too."""

from __future__ import annotations

import pytest

from cvlab.lab.training import _train_config
from cvlab.train.model import WeightsError


def test_peoplenet_config_is_the_lab_spec_with_the_given_weights(tmp_path):
    cfg = _train_config("peoplenet", ("person",), tmp_path / "peoplenet.hdf5")
    assert cfg.pretrained_weights == str(tmp_path / "peoplenet.hdf5") and not cfg.load_graph
    assert (cfg.model.num_layers, cfg.model.input_size) == (34, (960, 544))
    assert cfg.model.regularizer == "L1" and cfg.adam_epsilon == pytest.approx(9.9e-9)
    bbox = cfg.cost.target_classes[0].objectives[1]
    assert (bbox.name, bbox.weight_target) == ("bbox", 10.0)  # as the TAO path trains
    assert _train_config("peoplenet", ("person",)).pretrained_weights is None
    with pytest.raises(WeightsError, match="trainable_unencrypted"):
        _train_config("peoplenet", ("person",), "resnet34_peoplenet.tlt")


def test_tiny_config_takes_pretrained_weights(tmp_path):
    cfg = _train_config("tiny", ("person",), tmp_path / "w.h5")
    assert cfg.pretrained_weights == str(tmp_path / "w.h5") and cfg.model.num_layers == 10
    with pytest.raises(ValueError, match="MODEL_CONFIG"):
        _train_config("huge", ("person",))
