"""The files cvlab ships: clustering configs, TAO specs, a Triton config.pbtxt, GKE/Kubernetes
files. They are package data (read with :mod:`importlib.resources`), so an installed wheel has
them too; this is their only copy.

Example:
    >>> from cvlab.resources import resource_path
    >>> resource_path("clustering/clustering_config_peoplenet_rgb.prototxt").name
    'clustering_config_peoplenet_rgb.prototxt'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: The PeopleNet clustering configs of the tao-toolkit-triton-apps client.
PEOPLENET_RGB_CONFIG_NAME = "clustering/clustering_config_peoplenet_rgb.prototxt"
PEOPLENET_IR_CONFIG_NAME = "clustering/clustering_config_peoplenet_ir.prototxt"
#: The lab's TAO specs.
LAB_TRAINING_SPEC_NAME = "specs/detectnet_v2_train_peoplenet_ir.txt"
LAB_CONVERT_SPEC_NAME = "specs/dataset_convert_flir.txt"
#: The lab's Triton config for the retrained IR model.
LAB_IR_CONFIG_PBTXT_NAME = "triton/peoplenet_ir_tlt.config.pbtxt"
#: GKE / Kubernetes files.
TRITON_MANIFEST_NAME = "k8s/triton.yaml"
GKE_SETUP_NAME = "k8s/gke_setup.sh"
LAB_GKE_COMMANDS_NAME = "k8s/lab_gke_commands.sh"


def resource_path(name: str) -> Path:
    """The file ``name`` (``folder/file``) shipped in :mod:`cvlab.resources`, as a path."""
    path = Path(str(resources.files(__name__).joinpath(*name.split("/"))))
    if not path.is_file():
        raise FileNotFoundError(f"{name}: not shipped in cvlab.resources ({path})")
    return path
