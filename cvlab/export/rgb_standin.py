"""The shipped RGB stand-in as a Triton model: ``peoplenet_rgb_standin`` in a model repository.

The weights ship inside the package (:data:`cvlab.train.standin.SHIPPED_DIR`: Keras HDF5 for
transfer learning, ONNX for serving); :func:`write_standin_repository` writes the ONNX as a
python-backend model (onnxruntime on the CPU, as the lab's other local models) with PeopleNet's
tensor names and outputs at the stand-in's input size. Its clustering thresholds ship beside
PeopleNet's (:data:`STANDIN_CLUSTERING_CONFIG`).

Example:
    >>> import tempfile
    >>> model_dir = write_standin_repository(tempfile.mkdtemp())  # doctest: +SKIP
    >>> model_dir.name  # doctest: +SKIP
    'peoplenet_rgb_standin'
"""

from __future__ import annotations

import os
from pathlib import Path

from cvlab.detectnet import PEOPLENET_CLASSES
from cvlab.resources import resource_path
from cvlab.train.standin import MODEL_NAME, ONNX_FILE, SHIPPED_DIR, STANDIN_INPUT_SIZE

#: The stand-in's clustering config (tao-toolkit-triton-apps format), beside PeopleNet's.
STANDIN_CLUSTERING_CONFIG: Path = resource_path("clustering/clustering_config_rgb_standin.prototxt")


def shipped_onnx() -> Path:
    """The shipped stand-in's ONNX file (a clear error if the package lacks it)."""
    path = SHIPPED_DIR / ONNX_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the RGB stand-in is not in this package; rebuild it with "
            "'cvlab video label' and 'cvlab video standin --install'"
        )
    return path


def write_standin_repository(
    repo_dir: str | os.PathLike[str], name: str = MODEL_NAME, max_batch_size: int = 16
) -> Path:
    """``repo_dir/<name>/`` (config.pbtxt, 1/model.onnx, 1/model.py); returns the model folder."""
    from cvlab.triton.model_repository import peoplenet_spec, write_model_repository

    spec = peoplenet_spec(name, len(PEOPLENET_CLASSES), STANDIN_INPUT_SIZE, max_batch_size)
    return Path(write_model_repository(repo_dir, spec, shipped_onnx(), target="python"))
