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

from cvlab.lab.workspace import RGB_MODEL_NAME, Workspace

#: How the offline RGB stand-in is trained: about 100 s of training on 2 CPU cores (the notebook
#: tests run it). Person AP on held-out synthetic frames is about 0.5-0.7; bags and faces are a
#: few pixels at 256x160 and stay near 0 in so short a run.
RGB_STANDIN_TRAINING: dict[str, Any] = {
    "num_images": 160,  # synthetic frames, 20 % of them for validation
    "epochs": 18,
    "seed": 0,
    "image_size": (480, 288),  # rendered frame size (width, height)
    "batch_size": 4,
    "input_size": (256, 160),  # the model's input (width, height); None: the tiny config's
}


def ensure_rgb_standin(
    ws: Workspace,
    input_size: tuple[int, int] | None = None,
    *,
    num_images: int | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    max_batch_size: int = 16,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """The offline stand-in for RGB PeopleNet in the workspace's model repository; returns its
    model folder.

    Trained once and cached (``ws.root/rgb_standin``, ``lab_state.json`` key ``rgb_standin``):
    a tiny DetectNet_v2 (``TrainConfig.tiny``, classes person/bag/face like PeopleNet, input
    ``input_size`` or the default's) on synthetic daylight frames
    (:func:`cvlab.datasets.synthetic.write_synthetic_rgb_set`), exported to ONNX (checked against
    Keras with onnxruntime) and written as a python-backend Triton model. It has seen synthetic
    frames only: meaningful boxes there, not on real photos. Defaults: ``RGB_STANDIN_TRAINING``.
    """
    import dataclasses as dc

    from cvlab.datasets.synthetic import PEOPLENET_CLASSES, write_synthetic_rgb_set
    from cvlab.export.onnx import export_onnx
    from cvlab.train.trainer import TrainConfig, train
    from cvlab.triton.model_repository import peoplenet_spec, write_model_repository

    model_dir = ws.model_repository / RGB_MODEL_NAME
    state = ws.state().get("rgb_standin")
    if state and not force and (model_dir / "config.pbtxt").exists():
        return model_dir
    settings = dict(RGB_STANDIN_TRAINING)
    for key, value in (("num_images", num_images), ("epochs", epochs), ("seed", seed)):
        if value is not None:
            settings[key] = value
    work = ws.root / "rgb_standin"
    data = write_synthetic_rgb_set(
        work / "data",
        settings["num_images"],
        settings["seed"],
        tuple(settings["image_size"]),
        progress=progress,
    )
    config = TrainConfig.tiny(
        class_names=PEOPLENET_CLASSES,
        epochs=settings["epochs"],
        validate_every=settings["epochs"],
        seed=settings["seed"],
        batch_size=settings["batch_size"],
        threads=2,
    )
    input_size = input_size or settings["input_size"]
    if input_size is not None:
        config.model = dc.replace(config.model, input_size=tuple(input_size))
    result = train(
        config, data.tfrecords_pattern, data.root, work / "run", resume=False, progress=progress
    )
    export = export_onnx(result.model, work / "model.onnx", check=True)
    spec = peoplenet_spec(
        RGB_MODEL_NAME, len(PEOPLENET_CLASSES), config.model.input_size, max_batch_size
    )
    model_dir = write_model_repository(ws.model_repository, spec, export.path, target="python")
    last = result.history.iloc[-1]
    ap = {
        k: float(last[k]) for k in result.history.columns if str(k).startswith("ap_") or k == "mAP"
    }
    ws.update_state(
        rgb_standin={
            "model_dir": model_dir,
            "onnx": export.path,
            "input_size": config.model.input_size,
            "class_names": PEOPLENET_CLASSES,
            **settings,
            "validation_ap": ap,
        }
    )
    return Path(model_dir)


@dataclass
class RgbSamples:
    """Notebook 01's RGB images: ``paths`` (grace_hopper.jpg first, then held-out synthetic
    daylight frames), their ground truth (``truth``; none is known for the photo, so it has
    an empty entry) and which images are synthetic (``synthetic``)."""

    paths: list[Path]
    truth: list[Any]
    synthetic: list[bool]

    def synthetic_only(self) -> tuple[list[Path], list[Any]]:
        """Paths and ground truth of the synthetic frames (what can be scored)."""
        keep = [i for i, s in enumerate(self.synthetic) if s]
        return [self.paths[i] for i in keep], [self.truth[i] for i in keep]


def rgb_sample_frames(
    ws: Workspace, count: int = 4, seed: int = 1001, image_size: tuple[int, int] | None = None
) -> RgbSamples:
    """matplotlib's grace_hopper.jpg (a real photo) plus ``count - 1`` synthetic daylight
    frames the stand-in never saw (another seed than its training set; its training frame
    size unless ``image_size`` is given), written once to
    ``ws.rgb_images`` with their exact person/bag/face ground truth."""
    import cv2

    from cvlab.datasets.synthetic import PEOPLENET_CLASSES, SyntheticThermalGenerator
    from cvlab.detections import Detections
    from cvlab.lab.data import sample_photo

    photo = sample_photo(ws)
    h, w = cv2.imread(str(photo)).shape[:2]
    paths = [photo]
    truth = [Detections.empty(PEOPLENET_CLASSES, (w, h), str(photo))]
    size = tuple(image_size or RGB_STANDIN_TRAINING["image_size"])
    gen = SyntheticThermalGenerator(size, seed, style="rgb", empty_fraction=0.0)
    for i in range(max(0, count - 1)):
        frame = gen.render(i)
        path = ws.rgb_images / f"synthetic_rgb_{i:02d}.jpg"
        if not path.exists():
            tmp = path.with_name(f".{path.stem}.tmp.jpg")
            bgr = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(str(tmp), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise OSError(f"{path}: OpenCV could not write the image")
            os.replace(tmp, path)
        gt = frame.to_detections(PEOPLENET_CLASSES)
        gt.image_path = str(path)
        paths.append(path)
        truth.append(gt)
    return RgbSamples(paths, truth, [False] + [True] * (len(paths) - 1))


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
    from cvlab.inference.postprocess import DetectNetPostprocessor
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
    from cvlab.formats.kitti import write_kitti
    from cvlab.inference.preprocess import load_image
    from cvlab.viz.overlay import colors_from_config, save_overlay

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
    from cvlab.inference.preprocess import load_image, preprocess_images
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


def rgb_postprocessing_config(confidence_threshold: float | None = None) -> Any:
    """The PeopleNet RGB clustering config (person, bag, face: the RGB model's three output
    channels); thermal evaluation then looks at ``person`` only."""
    from cvlab.inference.clustering_config import PEOPLENET_RGB_CONFIG, load_clustering_config

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
