"""Inference in the notebooks: a local Triton, the lab's client (one call, the same path as
``cvlab infer``: :mod:`cvlab.triton.pipeline`) and the PeopleNet clustering configs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from cvlab.lab.workspace import Workspace


def start_triton(repository: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Start the bundled tritonserver on 127.0.0.1 for ``repository`` (a folder or gs:// URL)
    and wait until its models are ready; returns the running
    :class:`cvlab.triton.server.TritonServer` (call ``.stop()`` when done)."""
    from cvlab.triton.server import TritonServer

    kwargs.setdefault("startup_timeout", 120)
    server = TritonServer(repository, **kwargs).start()
    print(f"tritonserver ready: http {server.http_url}, grpc {server.grpc_url}")
    return server


def run_inference(
    url: str,
    model_name: str,
    images: Sequence[str | os.PathLike[str]],
    config: Any,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 16,
    protocol: str = "http",
    model_version: str = "",
    keep_outputs: bool = False,
    progress: bool = True,
) -> Any:
    """The lab's client on ``images`` (:func:`cvlab.triton.pipeline.run_inference`): batched
    async requests, clustering with ``config``; KITTI labels and overlays written to
    ``output_dir`` (infer_labels/, infer_images/) as ``cvlab infer`` does. Each image is sent
    once; ``keep_outputs`` keeps its raw output grids for the threshold tuner. Returns the
    :class:`~cvlab.triton.pipeline.InferSummary` (``.detections`` in image order); failed
    requests raise."""
    from cvlab.triton.pipeline import run_inference as pipeline_run

    return pipeline_run(
        [str(p) for p in images],
        model_name,
        url,
        version=model_version,
        batch_size=batch_size,
        protocol=protocol,
        output_path=output_dir,
        postprocessing_config=config,
        on_error="raise",
        keep_outputs=keep_outputs,
        clamp_batch=True,
        progress=progress,
    )


def threshold_tuner(result: Any, images: Sequence[str | os.PathLike[str]], config: Any) -> Any:
    """A :class:`~cvlab.lab.widgets.ThresholdTuner` over the raw outputs an earlier
    :func:`run_inference` kept (``keep_outputs=True``): no request is sent again."""
    from pathlib import Path

    from cvlab.images import load_image
    from cvlab.lab.widgets import ThresholdTuner

    if result.outputs is None:
        raise ValueError("run_inference(..., keep_outputs=True) keeps the outputs the tuner needs")
    return ThresholdTuner(
        [load_image(p) for p in images],
        result.outputs,
        config,
        model_size=result.input_size,
        names=[Path(p).name for p in images],
    )


def coverage_summary(result: Any, class_names: Sequence[str]) -> pd.DataFrame:
    """Highest coverage per class in each image's raw output (what the clustering starts from)."""
    rows = []
    for i, out in enumerate(result.outputs):
        cov = next(v for k, v in out.items() if k.startswith("output_cov"))
        rows.append(
            {"image": i, **{f"max_cov_{n}": float(cov[c].max()) for c, n in enumerate(class_names)}}
        )
    return pd.DataFrame(rows)


def clustering_config(path: str | os.PathLike[str], class_names: Sequence[str]) -> Any:
    """A clustering prototxt restricted to ``class_names`` (in that order)."""
    from cvlab.inference.clustering_config import load_clustering_config

    with _legacy_float_quiet():
        return load_clustering_config(path).for_classes(tuple(class_names))


def ir_postprocessing_config(
    ws: Workspace | None = None,
    path: str | os.PathLike[str] | None = None,
    confidence_threshold: float | None = None,
) -> Any:
    """The PeopleNet IR clustering config (person), optionally with another DBSCAN
    confidence threshold."""
    from cvlab.inference.clustering_config import PEOPLENET_IR_CONFIG, load_clustering_config

    with _legacy_float_quiet():
        config = load_clustering_config(path or PEOPLENET_IR_CONFIG).for_classes(("person",))
    return _with_threshold(config, confidence_threshold)


def rgb_postprocessing_config(
    confidence_threshold: float | None = None, path: str | os.PathLike[str] | None = None
) -> Any:
    """The RGB model's clustering config (person, bag, face: its three output channels):
    ``path``, by default the offline stand-in's ``clustering_config_rgb_standin.prototxt``
    (PeopleNet's config with the stand-in's thresholds; for real PeopleNet pass
    :data:`~cvlab.inference.clustering_config.PEOPLENET_RGB_CONFIG`), optionally with another
    DBSCAN confidence threshold; thermal evaluation then looks at ``person`` only."""
    from cvlab.export.rgb_standin import STANDIN_CLUSTERING_CONFIG
    from cvlab.inference.clustering_config import load_clustering_config

    with _legacy_float_quiet():
        config = load_clustering_config(path or STANDIN_CLUSTERING_CONFIG)
    return _with_threshold(config, confidence_threshold)


@contextlib.contextmanager
def _legacy_float_quiet() -> Iterator[None]:
    """Silence the known "legacy float dbscan_min_samples" warning of the shipped PeopleNet
    configs (0.05 -> 1, explained in docs/clustering.md); other warnings still show."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy float.*", category=UserWarning)
        yield


def _with_threshold(config: Any, threshold: float | None) -> Any:
    if threshold is None:
        return config
    classes = {
        n: dataclasses.replace(c, dbscan_confidence_threshold=float(threshold))
        for n, c in config.classes.items()
    }
    return dataclasses.replace(config, classes=classes)
