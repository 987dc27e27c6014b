"""The lab's inference step: images -> Triton -> KITTI labels and overlay images.

Mirrors the tao-toolkit-triton-apps client (``tao_client.py -m MODEL -x 1 -b 16 --mode
DetectNet_v2 ...``): it writes ``OUT/infer_labels/<stem>.txt`` (16-field KITTI lines with the
confidence) and ``OUT/infer_images/<stem>.jpg`` (boxes drawn with the clustering config's colours).

Example:
    >>> summary = run_inference("images/", model="peoplenet", url="127.0.0.1:8000",
    ...                         output_path="out")  # doctest: +SKIP
    >>> summary.to_pandas().groupby("class").size()  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cvlab.detections import Detections
from cvlab.triton.client import PEOPLENET_CLASSES, RequestError, TritonDetectNetClient

SUPPORTED_MODES = ("DetectNet_v2",)


@dataclass
class InferSummary:
    """What :func:`run_inference` did."""

    detections: list[Detections]
    errors: list[RequestError] = field(default_factory=list)
    labels_dir: Path | None = None
    images_dir: Path | None = None

    def to_pandas(self):
        """One row per box over all images (pandas DataFrame)."""
        import pandas as pd

        frames = [d.to_pandas() for d in self.detections]
        if not frames:
            return pd.DataFrame(columns=["image", "class", "confidence", "x1", "y1", "x2", "y2"])
        return pd.concat(frames, ignore_index=True)


def collect_images(images: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """A directory (its jpg/png files, sorted), one file, or a list of files."""
    from cvlab.inference.preprocess import list_images

    if isinstance(images, str | os.PathLike):
        path = Path(images)
        if path.is_dir():
            found = [str(p) for p in list_images(path)]
            if not found:
                raise FileNotFoundError(f"{path}: no .jpg/.jpeg/.png images")
            return found
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file or directory")
        return [str(path)]
    return [str(p) for p in images]


def make_postprocessor(
    model_size: tuple[int, int],
    postprocessing_config: str | os.PathLike | None = None,
    class_list: Sequence[str] | None = None,
):
    """DetectNetPostprocessor from a clustering prototxt, or defaults for ``class_list``."""
    from cvlab.inference.clustering_config import default_config, load_clustering_config
    from cvlab.inference.postprocess import DetectNetPostprocessor

    if postprocessing_config:
        config = load_clustering_config(
            postprocessing_config, class_names=list(class_list) if class_list else None
        )
        names = tuple(class_list) if class_list else config.class_names
    else:
        names = tuple(class_list) if class_list else PEOPLENET_CLASSES
        config = default_config(names)
    return DetectNetPostprocessor(config, names, model_size=model_size), config


def run_inference(
    images: str | os.PathLike | Sequence[str | os.PathLike],
    model: str,
    url: str = "127.0.0.1:8000",
    *,
    version: str = "",
    batch_size: int = 16,
    mode: str = "DetectNet_v2",
    protocol: str = "http",
    async_mode: bool = True,
    output_path: str | os.PathLike | None = None,
    postprocessing_config: str | os.PathLike | None = None,
    class_list: Sequence[str] | None = None,
    ssl: bool = False,
    concurrency: int = 4,
    timeout_s: float = 30.0,
    progress: bool = True,
    shared_memory: str = "auto",
) -> InferSummary:
    """Run the lab's client: infer every image, write labels/overlays when ``output_path`` is set.

    Failed requests are reported in ``InferSummary.errors``; the other frames are still written.
    ``shared_memory``: input/output tensor transport, see
    :class:`~cvlab.triton.client.TritonDetectNetClient` (``auto`` uses it for a local server).
    """
    if mode not in SUPPORTED_MODES:
        raise ValueError(
            f"--mode {mode!r} is not supported; supported: {', '.join(SUPPORTED_MODES)}"
        )
    paths = collect_images(images)
    with TritonDetectNetClient(
        url,
        model,
        version,
        protocol,
        timeout_s=timeout_s,
        concurrency=concurrency,
        ssl=ssl,
        shared_memory=shared_memory,
    ) as client:
        if client.max_batch_size > 0 and batch_size > client.max_batch_size:
            raise ValueError(
                f"-b {batch_size} exceeds max_batch_size {client.max_batch_size} of model "
                f"{model!r} on {url}"
            )
        post, config = make_postprocessor(client.input_size, postprocessing_config, class_list)
        summary = InferSummary(detections=[])
        writer = None
        if output_path is not None:
            summary.labels_dir = Path(output_path) / "infer_labels"
            summary.images_dir = Path(output_path) / "infer_images"
            writer = _Writer(summary.labels_dir, summary.images_dir, config)
        summary.detections = client.infer_images(
            paths,
            batch_size,
            post,
            async_mode=async_mode,
            progress=progress,
            on_error="collect",
            on_result=writer,
        )
        summary.errors = list(client.errors)
    return summary


class _Writer:
    """Writes one frame's KITTI file and overlay as soon as its Detections arrive."""

    def __init__(self, labels_dir: Path, images_dir: Path, config) -> None:
        from cvlab.viz.overlay import colors_from_config

        labels_dir.mkdir(parents=True, exist_ok=True)
        images_dir.mkdir(parents=True, exist_ok=True)
        self.labels_dir, self.images_dir = labels_dir, images_dir
        self.colors = colors_from_config(config)
        self.linewidth = getattr(config, "linewidth", 4)

    def __call__(self, dets: Detections) -> None:
        from cvlab.formats.kitti import write_kitti
        from cvlab.inference.preprocess import load_image
        from cvlab.viz.overlay import save_overlay

        stem = Path(dets.image_path or "frame").stem
        write_kitti(self.labels_dir / f"{stem}.txt", dets, with_confidence=True)
        if dets.image_path:
            rgb = load_image(dets.image_path)
            save_overlay(
                self.images_dir / f"{stem}.jpg",
                rgb,
                dets,
                colors=self.colors,
                linewidth=self.linewidth,
            )
