"""cvlab: learn and run NVIDIA PeopleNet / DetectNet_v2 as a computer-vision service."""

import os

# TensorFlow 2.21's oneDNN AVX-512 convolution kernels abort training with "double free or
# corruption" on some AVX-512 CPUs (seen on AMD EPYC); its AVX2 kernels are safe (and faster
# than turning oneDNN off: 37 s vs 43 s for the trainer tests there). oneDNN reads this when it
# creates its first kernel, so it also holds when TensorFlow was imported first. Set
# ONEDNN_MAX_CPU_ISA yourself to choose otherwise.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

#: The core API, re-exported so users write ``import cvlab`` (loaded on first use: the command
#: line and ``import cvlab`` stay fast).
_EXPORTS = {
    "Detections": "cvlab.detections",
    "DetectNetPostprocessor": "cvlab.inference.postprocess",
    "load_clustering_config": "cvlab.inference.clustering_config",
    "read_kitti": "cvlab.formats.kitti",
    "write_kitti": "cvlab.formats.kitti",
    "draw_detections": "cvlab.viz.overlay",
    "CvlabError": "cvlab.errors",
}
__all__ = sorted(_EXPORTS)


def lazy_exports(module: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for package ``module`` whose names in ``exports``
    (name -> the module defining it) are imported on first use and then kept (PEP 562).

    >>> import cvlab
    >>> cvlab.Detections.__name__
    'Detections'
    """
    import importlib
    import sys

    def __getattr__(name: str):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            setattr(sys.modules[module], name, value)
            return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*vars(sys.modules[module]), *exports])

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
