"""Per-class clustering configuration of DetectNet_v2 post-processing, read from protobuf text.

Two file forms are understood, both parsed by ``google.protobuf.text_format`` against compiled
schemas in :mod:`cvlab.protos` (no hand-written parser):

* the tao-toolkit-triton-apps clustering prototxt (``linewidth``, ``stride``,
  ``classwise_clustering_config { key value { coverage_threshold ... dbscan_config {...}
  bbox_color {R G B} } }``) -> :func:`load_clustering_config`;
* the ``postprocessing_config { target_class_config { key value { clustering_config {...}
  confidence_config {...} } } }`` block of a TAO DetectNet_v2 training spec ->
  :func:`load_training_postprocessing`.

Every error names the file, the line (when known) and the field.

Example:
    >>> cfg = load_clustering_config(PEOPLENET_RGB_CONFIG)  # doctest: +SKIP
    >>> cfg.class_names, cfg.classes["face"].dbscan_confidence_threshold  # doctest: +SKIP
    (('person', 'bag', 'face'), 0.7)
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from google.protobuf import text_format
from google.protobuf.message import Message

from cvlab.errors import ConfigError
from cvlab.resources import PEOPLENET_IR_CONFIG_NAME, PEOPLENET_RGB_CONFIG_NAME, resource_path

Algorithm = Literal["dbscan", "nms", "hybrid", "dbscan_legacy"]
ALGORITHMS: tuple[str, ...] = ("dbscan", "nms", "hybrid", "dbscan_legacy")
CONFIDENCE_MODES: tuple[str, ...] = ("sum", "mean")

#: Colours given to classes that have none in their config (RGB), by class index.
DEFAULT_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 255, 0),
    (0, 255, 255),
    (255, 0, 0),
    (255, 165, 0),
    (255, 0, 255),
    (0, 0, 255),
    (255, 255, 0),
    (128, 0, 255),
)


#: The PeopleNet clustering configs shipped in :mod:`cvlab.resources` (their only copy).
PEOPLENET_RGB_CONFIG: Path = resource_path(PEOPLENET_RGB_CONFIG_NAME)
PEOPLENET_IR_CONFIG: Path = resource_path(PEOPLENET_IR_CONFIG_NAME)
CONFIG_DIR: Path = PEOPLENET_RGB_CONFIG.parent


class MissingClassError(ConfigError, KeyError):
    """A class was asked for but the config has no entry for it."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class ClassClusteringConfig:
    """How the grid cells of one class become boxes.

    Attributes:
        coverage_threshold: cells with coverage strictly above this take part.
        minimum_bounding_box_height: clustered boxes must be taller than this (pixels).
        algorithm: ``dbscan`` (1-IoU distances, ``metric='precomputed'``), ``nms``, ``hybrid``
            (TAO: DBSCAN, then NMS over the kept clusters' cells) or ``dbscan_legacy``
            (tao-toolkit-triton-apps: Euclidean distance between rows of the 1-IoU matrix);
            see docs/clustering.md.
        dbscan_eps: DBSCAN neighbourhood radius, in ``[0, 1]`` for the 1-IoU distance of
            ``dbscan``/``hybrid`` (TAO's limit); any positive value for ``dbscan_legacy``, whose
            distance is Euclidean.
        dbscan_min_samples: DBSCAN ``min_samples`` (an integer; 0, a proto's unset value,
            means 1 as TAO's ``max(int(x), 1)``; a legacy float such as 0.05 is mapped the same
            way with a warning and kept in ``legacy_min_samples``). Files warn once per file,
            and not at all for the shipped PeopleNet configs (or unchanged copies), whose 0.05
            is explained in docs/clustering.md.
        neighborhood_size: kept for completeness (unused by the clustering, as in TAO).
        dbscan_confidence_threshold: clusters need a confidence of at least this.
        nms_iou_threshold: NMS suppresses cells overlapping a kept one by more than this (IoU
            with TAO's ``+1`` pixel widths).
        nms_confidence_threshold: NMS keeps cells whose coverage is above this.
        nms_top_k: NMS keeps at most this many boxes.
        confidence_mode: cluster confidence = ``sum`` or ``mean`` of member coverages.
        bbox_color: overlay colour (R, G, B).
        output_confidence_threshold: final filter on box confidence (TAO ``confidence_config``).
        legacy_min_samples: the float ``dbscan_min_samples`` as written in the file, if any.
    """

    coverage_threshold: float = 0.005
    minimum_bounding_box_height: float = 4.0
    algorithm: str = "dbscan"
    dbscan_eps: float = 0.3
    dbscan_min_samples: int = 1
    neighborhood_size: int = 0
    dbscan_confidence_threshold: float = 0.1
    nms_iou_threshold: float = 0.5
    nms_confidence_threshold: float = 0.0
    nms_top_k: int = 200
    confidence_mode: str = "sum"
    bbox_color: tuple[int, int, int] = (0, 255, 0)
    output_confidence_threshold: float = 0.0
    legacy_min_samples: float | None = None

    def __post_init__(self) -> None:
        raw = self.dbscan_min_samples
        if raw == 0:  # TAO: max(int(x), 1); 0 is also what an unset proto field reads as
            object.__setattr__(self, "dbscan_min_samples", 1)
        elif raw < 0:  # left as is: problems() names it
            pass
        elif isinstance(raw, float) and not float(raw).is_integer():
            mapped = max(int(raw), 1)
            warnings.warn(
                f"dbscan_min_samples={raw} is a legacy float; using min_samples={mapped} "
                "(algorithm 'dbscan_legacy' keeps the float meaning)",
                UserWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "legacy_min_samples", float(raw))
            object.__setattr__(self, "dbscan_min_samples", mapped)
        elif isinstance(raw, float):
            object.__setattr__(self, "dbscan_min_samples", int(raw))
        object.__setattr__(self, "bbox_color", tuple(int(c) for c in self.bbox_color))

    @property
    def effective_legacy_min_samples(self) -> float:
        """``min_samples`` as tao-toolkit-triton-apps passes it to DBSCAN (the raw float)."""
        return (
            self.legacy_min_samples
            if self.legacy_min_samples is not None
            else float(self.dbscan_min_samples)
        )

    def problems(self) -> list[tuple[str, str]]:
        """``(field, reason)`` for every invalid value; empty when the config is usable."""
        out: list[tuple[str, str]] = []
        for name in (
            "coverage_threshold",
            "nms_iou_threshold",
            "nms_confidence_threshold",
            "output_confidence_threshold",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                out.append((name, f"must be in [0, 1], got {value}"))
        if not (
            math.isfinite(self.dbscan_confidence_threshold)
            and self.dbscan_confidence_threshold >= 0
        ):
            out.append(
                (
                    "dbscan_confidence_threshold",
                    f"must be >= 0 (a summed coverage), got {self.dbscan_confidence_threshold}",
                )
            )
        eps_ok = math.isfinite(self.dbscan_eps) and self.dbscan_eps >= 0
        if self.algorithm in ("dbscan", "hybrid") and not (eps_ok and self.dbscan_eps <= 1):
            out.append(
                (
                    "dbscan_eps",
                    f"must be in [0, 1] (a 1 - IoU distance, as TAO), got {self.dbscan_eps}",
                )
            )
        if self.algorithm == "dbscan_legacy" and not (eps_ok and self.dbscan_eps > 0):
            out.append(("dbscan_eps", f"must be > 0, got {self.dbscan_eps}"))
        if self.algorithm in ("dbscan", "hybrid", "dbscan_legacy") and self.dbscan_min_samples < 0:
            out.append(("dbscan_min_samples", f"must be >= 0, got {self.dbscan_min_samples}"))
        if not (
            math.isfinite(self.minimum_bounding_box_height)
            and self.minimum_bounding_box_height >= 0
        ):
            out.append(
                (
                    "minimum_bounding_box_height",
                    f"must be >= 0, got {self.minimum_bounding_box_height}",
                )
            )
        if self.nms_top_k < 1:
            out.append(("nms_top_k", f"must be >= 1, got {self.nms_top_k}"))
        if self.algorithm not in ALGORITHMS:
            out.append(
                ("algorithm", f"must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
            )
        if self.confidence_mode not in CONFIDENCE_MODES:
            out.append(
                ("confidence_mode", f"must be 'sum' or 'mean', got {self.confidence_mode!r}")
            )
        if len(self.bbox_color) != 3 or any(not 0 <= c <= 255 for c in self.bbox_color):
            out.append(("bbox_color", f"R, G, B must be in 0..255, got {self.bbox_color}"))
        return out


@dataclass(frozen=True)
class PostprocessingConfig:
    """Clustering settings of every class, plus overlay line width and the output stride."""

    classes: dict[str, ClassClusteringConfig]
    linewidth: int = 4
    stride: int = 16
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        where = self.source or "<config>"
        if not self.classes:
            raise ConfigError(f"{where}: no classes configured")
        if self.stride < 1:
            raise ConfigError(f"{where}: field 'stride' must be >= 1, got {self.stride}")
        if self.linewidth < 0:
            raise ConfigError(f"{where}: field 'linewidth' must be >= 0, got {self.linewidth}")
        for name, cfg in self.classes.items():
            for fname, reason in cfg.problems():
                raise ConfigError(f"{where}: class {name!r}: field '{fname}' {reason}")

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names in config order."""
        return tuple(self.classes)

    def for_classes(self, class_names: Sequence[str]) -> PostprocessingConfig:
        """The configs of ``class_names`` in that order; :class:`MissingClassError` if absent."""
        missing = [n for n in class_names if n not in self.classes]
        if missing:
            raise MissingClassError(
                f"{self.source or '<config>'}: no clustering config for class(es) "
                f"{', '.join(map(repr, missing))}; the config has {', '.join(map(repr, self.classes))}"
            )
        return replace(self, classes={n: self.classes[n] for n in class_names})

    def with_algorithm(self, algorithm: str) -> PostprocessingConfig:
        """The same config with every class using ``algorithm``."""
        return replace(
            self, classes={n: replace(c, algorithm=algorithm) for n, c in self.classes.items()}
        )


def default_config(class_names: Sequence[str], **overrides: Any) -> PostprocessingConfig:
    """PeopleNet-like defaults for ``class_names`` (palette colours by index).

    >>> default_config(["car"], dbscan_eps=0.2).classes["car"].dbscan_eps
    0.2
    """
    return PostprocessingConfig(
        {
            name: ClassClusteringConfig(
                bbox_color=DEFAULT_PALETTE[i % len(DEFAULT_PALETTE)], **overrides
            )
            for i, name in enumerate(class_names)
        }
    )


# --- parsing -----------------------------------------------------------------------------------


def _read(path: str | os.PathLike) -> str:
    path = Path(path)
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: clustering config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read clustering config: {exc}") from None


def _parse(text: str, message: Message, path: str) -> None:
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        line, col = exc.GetLine(), exc.GetColumn()
        where = f"{path}:{line}:{col}" if line else path
        detail = str(exc)
        detail = re.sub(r"^\d+:\d+ : ", "", detail)
        raise ConfigError(f"{where}: {detail}") from None


def _line_of(text: str, class_name: str, field_name: str) -> int | None:
    """Line (1-based) of ``field_name`` inside the entry of ``class_name``, if it can be found."""
    lines = text.splitlines()
    start = 0
    key = re.compile(r'key\s*:\s*["\']' + re.escape(class_name) + r'["\']')
    for i, line in enumerate(lines):
        if key.search(line):
            start = i
            break
    else:
        return None
    name = re.compile(r"\b" + re.escape(field_name) + r"\b")
    for i in range(start, len(lines)):
        if i > start and re.search(r"\bkey\s*:", lines[i]):
            break
        if name.search(lines[i]):
            return i + 1
    return start + 1


def _f32(value: float) -> float:
    """A float32 proto value as the decimal written in the file (0.004999999888 -> 0.005)."""
    return float(f"{value:.7g}")


def _file_order(text: str | None, names: Sequence[str]) -> list[str]:
    """Map keys in the order the file writes them (protobuf maps are unordered)."""
    if text is None:
        return list(names)
    found = re.findall(r'\bkey\s*:\s*["\']([^"\']*)["\']', text)
    ordered = [n for n in dict.fromkeys(found) if n in names]
    return ordered + [n for n in names if n not in ordered]


_FILE_FIELDS = {  # our dataclass field -> name in the files
    "bbox_color": "bbox_color",
    "algorithm": "clustering_algorithm",
    "output_confidence_threshold": "confidence_threshold",
}


def _build(
    classes: dict[str, dict[str, Any]],
    *,
    linewidth: int,
    stride: int,
    path: str,
    text: str | None,
    class_names: Sequence[str] | None,
    extra_checks: Callable[[ClassClusteringConfig], list[tuple[str, str]]] | None = None,
) -> PostprocessingConfig:
    built: dict[str, ClassClusteringConfig] = {}
    legacy: dict[tuple[float, int], list[str]] = {}  # (float, mapped) -> classes
    for name in _file_order(text, list(classes)):
        values = {k: _f32(v) if isinstance(v, float) else v for k, v in classes[name].items()}
        with warnings.catch_warnings():  # said once per file below, not once per class
            warnings.filterwarnings("ignore", message=".*legacy float", category=UserWarning)
            cfg = ClassClusteringConfig(**values)
        if cfg.legacy_min_samples is not None and cfg.algorithm != "dbscan_legacy":
            legacy.setdefault((cfg.legacy_min_samples, cfg.dbscan_min_samples), []).append(name)
        for fname, reason in cfg.problems() + (extra_checks(cfg) if extra_checks else []):
            file_field = _FILE_FIELDS.get(fname, fname)
            line = _line_of(text, name, file_field) if text is not None else None
            where = f"{path}:{line}" if line else path
            raise ConfigError(f"{where}: class {name!r}: field '{file_field}' {reason}")
        built[name] = cfg
    if not _is_shipped(path, text):  # the shipped PeopleNet configs' 0.05 is documented
        for (raw, mapped), names in legacy.items():
            line = _line_of(text, names[0], "dbscan_min_samples") if text is not None else None
            where = f"{path}:{line}" if line else path
            warnings.warn(
                f"{where}: class {', '.join(map(repr, names))}: dbscan_min_samples={raw} is a legacy "
                f"float; using min_samples={mapped} (algorithm 'dbscan_legacy' keeps the float "
                "meaning)",
                UserWarning,
                stacklevel=3,
            )
    config = PostprocessingConfig(built, linewidth=linewidth, stride=stride, source=path)
    return config.for_classes(class_names) if class_names is not None else config


def _is_shipped(path: str | os.PathLike, text: str | None) -> bool:
    """True for the clustering configs cvlab ships (:data:`CONFIG_DIR`) and unchanged copies of
    them (the lab's ``inference_config`` folder holds NVIDIA's same files)."""
    try:
        if Path(path).resolve().parent == CONFIG_DIR.resolve():
            return True
        shipped = (PEOPLENET_RGB_CONFIG, PEOPLENET_IR_CONFIG)
        return text is not None and any(text == config.read_text() for config in shipped)
    except (OSError, ValueError):
        return False


def load_clustering_config(
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    algorithm: str = "dbscan",
    confidence_mode: str = "sum",
) -> PostprocessingConfig:
    """Read a tao-toolkit-triton-apps clustering prototxt.

    Args:
        path: the ``.prototxt`` file.
        class_names: keep (and require) exactly these classes, in this order.
        algorithm: clustering for every class (the file format has no such field);
            ``dbscan_legacy`` reproduces the reference client.
        confidence_mode: ``sum`` (TAO) or ``mean`` of member coverages.

    Raises:
        ConfigError: unreadable file, syntax error or unknown field (``file:line:col``),
            bad value (``file:line``, class and field), missing class.
    """
    from cvlab.protos.triton_apps import postprocessor_config_pb2 as pb

    text = _read(path)
    message = pb.PostprocessingConfig()
    _parse(text, message, str(path))
    classes: dict[str, dict[str, Any]] = {}
    for name, c in message.classwise_clustering_config.items():
        d = c.dbscan_config
        classes[name] = {
            "coverage_threshold": c.coverage_threshold,
            "minimum_bounding_box_height": c.minimum_bounding_box_height,
            "algorithm": algorithm,
            "dbscan_eps": d.dbscan_eps,
            "dbscan_min_samples": d.dbscan_min_samples,
            "neighborhood_size": d.neighborhood_size,
            "dbscan_confidence_threshold": d.dbscan_confidence_threshold,
            "confidence_mode": confidence_mode,
            "bbox_color": (c.bbox_color.R, c.bbox_color.G, c.bbox_color.B),
        }
    return _build(
        classes,
        linewidth=message.linewidth or 4,
        stride=message.stride or 16,
        path=str(path),
        text=text,
        class_names=class_names,
    )


_TRAINING_ALGORITHMS = {0: "dbscan", 1: "nms", 2: "hybrid"}


def training_spec_problems(cfg: ClassClusteringConfig) -> list[tuple[str, str]]:
    """What TAO's train/evaluate spec validator adds to :meth:`ClassClusteringConfig.problems`.

    ``TRAINVAL_VALUE_CHECK_DICT`` limits ``dbscan_min_samples`` and
    ``dbscan_confidence_threshold`` to ``[0, 1]`` in a training spec.
    """
    out = []
    raw = cfg.legacy_min_samples if cfg.legacy_min_samples is not None else cfg.dbscan_min_samples
    if raw > 1:
        out.append(("dbscan_min_samples", f"must be <= 1 in a TAO training spec, got {raw}"))
    if cfg.dbscan_confidence_threshold > 1:
        out.append(
            (
                "dbscan_confidence_threshold",
                f"must be <= 1 in a TAO training spec, got {cfg.dbscan_confidence_threshold}",
            )
        )
    return out


def _tao_training_problems(cfg: ClassClusteringConfig) -> list[tuple[str, str]]:
    """:func:`training_spec_problems` plus TAO's training-time ``ClusteringConfig`` rule."""
    out = training_spec_problems(cfg)
    if cfg.algorithm == "hybrid":
        out.append(
            (
                "algorithm",
                "HYBRID is not available to TAO's training and evaluation (its ClusteringConfig "
                "raises NotImplementedError); use DBSCAN or NMS here, HYBRID only at inference",
            )
        )
    return out


def load_training_postprocessing(
    path_or_message: str | os.PathLike | Message,
    *,
    class_names: Sequence[str] | None = None,
    linewidth: int = 4,
    stride: int = 16,
    confidence_mode: str = "sum",
    colors: Mapping[str, tuple[int, int, int]] | None = None,
    tao_training: bool = False,
) -> PostprocessingConfig:
    """Read the ``postprocessing_config`` of a TAO DetectNet_v2 training spec.

    ``path_or_message`` is a text file holding either the body of ``postprocessing_config``
    (``target_class_config { ... }``) or the block itself (``postprocessing_config { ... }``), or
    a parsed message: a ``PostProcessingConfig`` or any spec message with a
    ``postprocessing_config`` field. Values are checked as TAO's spec validator checks a
    training spec (:func:`training_spec_problems`).

    ``tao_training=True`` reads it as TAO's training-time validation does: HYBRID is refused
    (TAO raises NotImplementedError) and an unset ``nms_iou_threshold`` stays 0 (otherwise it
    reads as 0.5).
    """
    from cvlab.protos.detectnet_v2 import postprocessing_config_pb2 as pb

    text: str | None = None
    if isinstance(path_or_message, Message):
        message = path_or_message
        if "postprocessing_config" in message.DESCRIPTOR.fields_by_name:
            message = message.postprocessing_config
        if message.DESCRIPTOR.full_name != pb.PostProcessingConfig.DESCRIPTOR.full_name:
            raise ConfigError(
                f"expected a {pb.PostProcessingConfig.DESCRIPTOR.full_name} message, "
                f"got {message.DESCRIPTOR.full_name}"
            )
        source = "<postprocessing_config message>"
    else:
        source = str(path_or_message)
        text = _read(path_or_message)
        if re.search(r"^\s*postprocessing_config\s*\{", text, re.MULTILINE):
            wrapper = pb.PostProcessingConfigFile()
            _parse(text, wrapper, source)
            message = wrapper.postprocessing_config
        else:
            message = pb.PostProcessingConfig()
            _parse(text, message, source)
    colors = dict(colors or {})
    classes: dict[str, dict[str, Any]] = {}
    for i, (name, target) in enumerate(message.target_class_config.items()):
        c = target.clustering_config
        classes[name] = {
            "coverage_threshold": c.coverage_threshold,
            "minimum_bounding_box_height": c.minimum_bounding_box_height,
            "algorithm": _TRAINING_ALGORITHMS.get(c.clustering_algorithm, "dbscan"),
            "dbscan_eps": c.dbscan_eps,
            "dbscan_min_samples": c.dbscan_min_samples,
            "neighborhood_size": c.neighborhood_size,
            "dbscan_confidence_threshold": c.dbscan_confidence_threshold,
            "nms_iou_threshold": c.nms_iou_threshold or (0.0 if tao_training else 0.5),
            "nms_confidence_threshold": c.nms_confidence_threshold,
            "confidence_mode": confidence_mode,
            "output_confidence_threshold": target.confidence_config.confidence_threshold,
            "bbox_color": colors.get(name, DEFAULT_PALETTE[i % len(DEFAULT_PALETTE)]),
        }
    return _build(
        classes,
        linewidth=linewidth,
        stride=stride,
        path=source,
        text=text,
        class_names=class_names,
        extra_checks=_tao_training_problems if tao_training else training_spec_problems,
    )


def from_training_spec_postprocessing(
    msg_or_path: str | os.PathLike | Message, class_names: Sequence[str] | None = None
) -> PostprocessingConfig:
    """Alias of :func:`load_training_postprocessing` (the name docs/ARCHITECTURE.md uses)."""
    return load_training_postprocessing(msg_or_path, class_names=class_names)
