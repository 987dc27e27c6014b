"""Lab serving steps: the RGB stand-in model, the local Triton server, the inference client
like the lab's ``tao_client.py`` and the clustering configs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.lab_workspace import RGB_MODEL_NAME, Workspace


def ensure_rgb_standin(ws: Workspace, input_size: tuple[int, int] = (960, 544)) -> Path:
    """The offline stand-in for RGB PeopleNet (untrained, PeopleNet-shaped: person/bag/face)
    in the workspace's model repository; returns its model folder."""
    from cvlab.triton.demo_model import write_demo_repository

    model_dir = ws.model_repository / RGB_MODEL_NAME
    if (model_dir / "config.pbtxt").exists():
        return model_dir
    return Path(
        write_demo_repository(
            ws.model_repository, RGB_MODEL_NAME, num_classes=3, input_size=tuple(input_size)
        )
    )


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
) -> list[Any]:
    """The lab's client on ``images``: batched async requests, clustering with ``config``;
    KITTI labels and overlays written to ``output_dir`` (infer_labels/, infer_images/) as
    ``cvlab infer`` does. Returns Detections in image order; failed requests raise."""
    from cvlab.postprocess import DetectNetPostprocessor
    from cvlab.triton.client import TritonDetectNetClient

    with TritonDetectNetClient(url, model_name, model_version, protocol) as client:
        batch_size = min(batch_size, client.max_batch_size or batch_size)
        post = DetectNetPostprocessor(config, config.class_names, model_size=client.input_size)
        on_result = _writer(output_dir, config) if output_dir is not None else None
        dets = client.infer_images(
            [str(p) for p in images], batch_size, post, async_mode=True, on_result=on_result
        )
    return dets


def _writer(output_dir: str | os.PathLike[str], config: Any) -> Any:
    """A callback writing each frame's KITTI file (16 fields, with confidence) and overlay to
    ``output_dir``/infer_labels and /infer_images, as ``cvlab infer`` does."""
    from cvlab.kitti import write_kitti
    from cvlab.overlay import colors_from_config, save_overlay
    from cvlab.preprocess import load_image

    labels, overlays = Path(output_dir) / "infer_labels", Path(output_dir) / "infer_images"
    labels.mkdir(parents=True, exist_ok=True)
    overlays.mkdir(parents=True, exist_ok=True)
    colors = colors_from_config(config)

    def write(dets: Any) -> None:
        stem = Path(dets.image_path or "frame").stem
        write_kitti(labels / f"{stem}.txt", dets, with_confidence=True)
        if dets.image_path:
            save_overlay(
                overlays / f"{stem}.jpg",
                load_image(dets.image_path),
                dets,
                colors=colors,
                linewidth=config.linewidth,
            )

    return write


@dataclass
class RawOutputs:
    """Images and their raw model outputs (one dict of arrays per image)."""

    images: list[np.ndarray]
    outputs: list[dict[str, np.ndarray]]
    input_size: tuple[int, int]


def raw_outputs(
    url: str,
    model_name: str,
    images: Sequence[str | os.PathLike[str]],
    *,
    protocol: str = "http",
    model_version: str = "",
) -> RawOutputs:
    """Fetch the raw output grids of ``images`` once (for the threshold tuner)."""
    from cvlab.preprocess import load_image, preprocess_images
    from cvlab.triton.client import TritonDetectNetClient

    with TritonDetectNetClient(url, model_name, model_version, protocol) as client:
        size = client.input_size
        step = client.max_batch_size or len(images)
        outputs: list[dict[str, np.ndarray]] = []
        for start in range(0, len(images), step):
            batch = preprocess_images(list(images[start : start + step]), size, on_error="raise")
            result = client.infer_batch(batch.tensor)
            outputs += [{k: v[i] for k, v in result.items()} for i in range(len(batch.paths))]
    return RawOutputs([load_image(p) for p in images], outputs, size)


def clustering_config(path: str | os.PathLike[str], class_names: Sequence[str]) -> Any:
    """A clustering prototxt restricted to ``class_names`` (in that order)."""
    from cvlab.postprocess_config import load_clustering_config

    with _legacy_float_quiet():
        return load_clustering_config(path).for_classes(tuple(class_names))


def ir_postprocessing_config(
    ws: Workspace | None = None,
    path: str | os.PathLike[str] | None = None,
    confidence_threshold: float | None = None,
) -> Any:
    """The PeopleNet IR clustering config (person), optionally with another DBSCAN
    confidence threshold."""
    from cvlab.postprocess_config import PEOPLENET_IR_CONFIG, load_clustering_config

    with _legacy_float_quiet():
        config = load_clustering_config(path or PEOPLENET_IR_CONFIG).for_classes(("person",))
    return _with_threshold(config, confidence_threshold)


def rgb_postprocessing_config(confidence_threshold: float | None = None) -> Any:
    """The PeopleNet RGB clustering config (person, bag, face: the RGB model's three output
    channels); thermal evaluation then looks at ``person`` only."""
    from cvlab.postprocess_config import PEOPLENET_RGB_CONFIG, load_clustering_config

    with _legacy_float_quiet():
        config = load_clustering_config(PEOPLENET_RGB_CONFIG)
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
