"""An ipywidgets image browser and per-class threshold / eps tuner for DetectNet_v2 outputs.

The raw model outputs (coverage and bbox grids) are fetched once from Triton; moving a slider
only re-runs the clustering (:class:`cvlab.inference.postprocess.DetectNetPostprocessor`) and redraws
the overlay, so tuning is instant. Headless runs (nbclient, CI) can build the widget and read
:meth:`ThresholdTuner.render` as a plain image: nothing needs a browser.

Example:
    >>> tuner = ThresholdTuner(images, outputs, config, model_size=(960, 544))  # doctest: +SKIP
    >>> tuner.widget()  # in a notebook cell                                    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

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

    def render(self, index: int | None = None) -> np.ndarray:
        """The overlay of image ``index`` with the current config (RGB uint8)."""
        from cvlab.viz.overlay import colors_from_config, draw_detections

        i = self.index if index is None else index
        return draw_detections(
            self.images[i],
            self.detections(i),
            colors=colors_from_config(self.config),
            linewidth=self.config.linewidth,
        )

    def confidence_range(self, class_index: int) -> float:
        """Upper end of the confidence slider: the largest summed coverage of the class in any
        image (a cluster cannot score more), at least 1."""
        sums = []
        for out in self.outputs:
            cov = next(v for k, v in out.items() if k.startswith("output_cov"))
            cov = np.asarray(cov).reshape(-1, *np.asarray(cov).shape[-2:])
            sums.append(float(cov[class_index].sum()))
        return float(np.ceil(max(1.0, *sums)))

    def widget(self) -> Any:
        """The interactive browser: image slider, per-class threshold and eps sliders."""
        import cv2
        import ipywidgets as W

        image = W.Image(format="jpeg", layout=W.Layout(max_width="720px"))
        caption = W.HTML()
        index = W.IntSlider(0, 0, len(self.images) - 1, description="image")
        controls: list[Any] = [index]

        def redraw(*_: Any) -> None:
            self.index = index.value
            rgb = self.render()
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            if ok:
                image.value = buf.tobytes()
            dets = self.detections()
            caption.value = f"<b>{self.names[self.index]}</b>: {len(dets)} boxes"

        for c, name in enumerate(self.class_names):
            cfg = self.config.classes[name]
            thr = W.FloatSlider(
                value=float(cfg.dbscan_confidence_threshold),
                min=0.0,
                max=max(self.confidence_range(c), float(cfg.dbscan_confidence_threshold)),
                step=0.01,
                description=f"{name} conf",
            )
            eps = W.FloatSlider(
                value=float(cfg.dbscan_eps), min=0.01, max=1.0, step=0.01, description=f"{name} eps"
            )

            def on_change(_: Any, name: str = name, thr: Any = thr, eps: Any = eps) -> None:
                self.set_class(name, dbscan_confidence_threshold=thr.value, dbscan_eps=eps.value)
                redraw()

            thr.observe(on_change, names="value")
            eps.observe(on_change, names="value")
            controls += [thr, eps]
        index.observe(redraw, names="value")
        redraw()
        box = W.VBox([W.HBox([W.VBox(controls), W.VBox([caption, image])])])
        box.tuner = self  # type: ignore[attr-defined]  # for tests and power users
        return box
