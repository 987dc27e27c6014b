"""An ipywidgets image browser and per-class threshold / eps tuner for DetectNet_v2 outputs.

The raw model outputs (coverage and bbox grids) are fetched once from Triton; moving a slider
only re-runs the clustering (:class:`cvlab.inference.postprocess.DetectNetPostprocessor`) and redraws
the overlay, so tuning is instant. Headless runs (nbclient, CI) can build the widget and read
:meth:`ThresholdTuner.render` as a plain image: nothing needs a browser. Where no widget can be
drawn (an HTML export without JavaScript, a plain-text viewer), the widget's output shows a
snapshot of its image and a one-line description instead of a raw ``VBox(...)`` repr.

Example:
    >>> tuner = ThresholdTuner(images, outputs, config, model_size=(960, 544))  # doctest: +SKIP
    >>> tuner.widget()  # in a notebook cell                                    # doctest: +SKIP
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import ipywidgets as W
import numpy as np

from cvlab.detections import Detections
from cvlab.detectnet import PEOPLENET_INPUT_SIZE


class ThresholdTuner:
    """Browse images and tune clustering per class on cached model outputs.

    Args:
        images: RGB uint8 images (original size).
        outputs: per image, the model outputs ``{"output_cov/Sigmoid": [C,gh,gw],
            "output_bbox/BiasAdd": [4C,gh,gw]}`` (as returned by the Triton client).
        config: the starting :class:`cvlab.inference.clustering_config.PostprocessingConfig`.
        model_size: the model input size (width, height).
        names: optional captions (e.g. file names).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        outputs: Sequence[Mapping[str, np.ndarray]],
        config: Any,
        model_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
        names: Sequence[str] | None = None,
    ) -> None:
        if len(images) != len(outputs):
            raise ValueError(f"{len(images)} images but {len(outputs)} model outputs")
        if not images:
            raise ValueError("ThresholdTuner needs at least one image")
        self.images = list(images)
        self.outputs = list(outputs)
        self.config = config
        self.model_size = tuple(model_size)
        self.names = list(names) if names else [f"image {i}" for i in range(len(images))]
        self.index = 0

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.config.class_names)

    def set_class(self, class_name: str, **changes: Any) -> None:
        """Change clustering fields of one class, e.g. ``dbscan_confidence_threshold=0.5``."""
        if class_name not in self.config.classes:
            raise KeyError(f"no class {class_name!r}; classes are {', '.join(self.class_names)}")
        classes = dict(self.config.classes)
        classes[class_name] = replace(classes[class_name], **changes)
        self.config = replace(self.config, classes=classes)

    def detections(self, index: int | None = None) -> Detections:
        """Clustered boxes of image ``index`` (default: the current one) with the current config."""
        from cvlab.inference.postprocess import DetectNetPostprocessor

        i = self.index if index is None else index
        h, w = self.images[i].shape[:2]
        post = DetectNetPostprocessor(self.config, self.class_names, model_size=self.model_size)
        return post(self.outputs[i], image_size=(w, h), image_path=self.names[i])

    def render(
        self,
        index: int | None = None,
        labels: bool | Sequence[str] = True,
        truth: Detections | None = None,
    ) -> np.ndarray:
        """The overlay of image ``index`` with the current config (RGB uint8). ``labels``
        writes class and score on the boxes (of the named classes only, when a list);
        ``truth`` is drawn first in thin white. Frames narrower than 640 pixels are drawn at
        twice their size, so the labels stay legible."""
        import cv2

        from cvlab.viz.overlay import colors_from_config, draw_detections

        i = self.index if index is None else index
        rgb = self.images[i]
        dets = self.detections(i)
        h, w = rgb.shape[:2]
        if w < 640:
            rgb = cv2.resize(rgb, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
            dets = dets.scaled(2.0, 2.0, (2 * w, 2 * h))
            truth = truth.scaled(2.0, 2.0, (2 * w, 2 * h)) if truth is not None else None
        if truth is not None and len(truth):
            white = dict.fromkeys(truth.class_names, (255, 255, 255))
            rgb = draw_detections(rgb, truth, white, linewidth=1, show_labels=False)
        linewidth = max(1, min(self.config.linewidth, min(rgb.shape[:2]) // 100))
        colors = colors_from_config(self.config)
        if isinstance(labels, bool):
            return draw_detections(rgb, dets, colors, linewidth, show_labels=labels)
        named = np.isin(np.asarray(dets.names, dtype=object), list(labels))
        out = draw_detections(rgb, dets[~named], colors, linewidth, show_labels=False)
        return draw_detections(out, dets[named], colors, linewidth, show_labels=True)

    @contextlib.contextmanager
    def threshold(self, class_name: str, value: float) -> Iterator[None]:
        """Temporarily use confidence threshold ``value`` for ``class_name``."""
        saved = self.config
        self.set_class(class_name, dbscan_confidence_threshold=float(value))
        try:
            yield
        finally:
            self.config = saved

    def cluster_scores(self, class_name: str, index: int) -> np.ndarray:
        """Scores of every cluster of ``class_name`` in image ``index`` (threshold 0)."""
        with self.threshold(class_name, 0.0):
            dets = self.detections(index)
        return np.sort(dets.confidence[dets.class_id == self.class_names.index(class_name)])

    def confidence_range(self, class_index: int) -> float:
        """Upper end of a class's threshold slider: a little above the best cluster score of
        the class in any image (a higher threshold hides every box), at least 1."""
        name = self.class_names[class_index]
        best = max(
            (float(self.cluster_scores(name, i).max(initial=0.0)) for i in range(len(self.images))),
            default=0.0,
        )
        return float(max(1.0, np.ceil(best * 1.1 * 2) / 2))

    def jpeg(self, index: int | None = None) -> bytes:
        """:meth:`render` as JPEG bytes (the widget's image)."""
        import cv2

        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(self.render(index), cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError("JPEG encoding of the overlay failed")
        return buf.tobytes()

    def caption(self, index: int | None = None) -> str:
        """``NAME: N boxes (person 2, face 1)`` for image ``index``."""
        i = self.index if index is None else index
        dets = self.detections(i)
        counts = ", ".join(f"{n} {dets.names.count(n)}" for n in self.class_names)
        boxes = "1 box" if len(dets) == 1 else f"{len(dets)} boxes"
        return f"{self.names[i]}: {boxes} ({counts})"

    def widget(self, start: int = 0) -> Any:
        """The interactive browser, showing image ``start`` first: an image slider, and per
        class a confidence-threshold slider (in score units: summed coverage) and a DBSCAN eps
        slider; the caption counts the boxes drawn."""
        image = W.Image(format="jpeg", layout=W.Layout(max_width="720px"))
        caption = W.HTML()
        caption.add_class("cvlab-tuner-caption")
        index = W.IntSlider(
            start,
            0,
            len(self.images) - 1,
            description="image",
            style={"description_width": "120px"},
            layout=W.Layout(width="360px"),
        )
        index.add_class("cvlab-image-index")
        controls: list[Any] = [index]

        def redraw(*_: Any) -> None:
            self.index = index.value
            image.value = self.jpeg()
            caption.value = f"<b>{self.caption()}</b>"

        style = {"description_width": "120px"}
        width = W.Layout(width="360px")
        for c, name in enumerate(self.class_names):
            cfg = self.config.classes[name]
            thr = W.FloatSlider(
                value=float(cfg.dbscan_confidence_threshold),
                min=0.0,
                max=max(self.confidence_range(c), float(cfg.dbscan_confidence_threshold)),
                step=0.01,
                description=f"{name} threshold",
                style=style,
                layout=width,
            )
            thr.add_class(f"cvlab-threshold-{name}")
            eps = W.FloatSlider(
                value=float(cfg.dbscan_eps),
                min=0.01,
                max=1.0,
                step=0.01,
                description=f"{name} eps",
                style=style,
                layout=width,
            )

            def on_change(_: Any, name: str = name, thr: Any = thr, eps: Any = eps) -> None:
                self.set_class(name, dbscan_confidence_threshold=thr.value, dbscan_eps=eps.value)
                redraw()

            thr.observe(on_change, names="value")
            eps.observe(on_change, names="value")
            controls += [thr, eps]
        index.observe(redraw, names="value")
        redraw()
        box = TunerBox([W.HBox([W.VBox(controls), W.VBox([caption, image])])])
        box.tuner = self
        box.add_class("cvlab-tuner")
        return box


class TunerBox(W.VBox):
    """The tuner's outer box, with a static fallback (a snapshot and one line) for viewers that
    cannot draw widgets instead of the raw ``VBox(children=...)`` repr."""

    tuner: ThresholdTuner | None = None

    def __repr__(self) -> str:
        if self.tuner is None:
            return "threshold tuner"
        return f"threshold tuner ({len(self.tuner.images)} images): {self.tuner.caption()}"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None or self.tuner is None:
            return bundle
        data = base64.b64encode(self.tuner.jpeg()).decode("ascii")
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = (
            f'<div class="cvlab-tuner-snapshot"><p><b>{self.tuner.caption()}</b> '
            "(interactive with a running kernel)</p>"
            f'<img src="data:image/jpeg;base64,{data}" style="max-width:720px"></div>'
        )
        return bundle
