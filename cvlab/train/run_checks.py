"""Checks before a training run starts: the target classes are in the data, and a resumed run
continues the same model.

A run records what defines its model in ``<output>/train_run.json`` (:data:`RUN_FILE`): the
target classes, the ``target_class_mapping``, the architecture (:class:`ModelConfig`) and the
spec fields that shape the training (batch size, learning-rate schedule, cost, rasterizer,
augmentation, validation fold). Resuming into that folder with any of them changed is refused,
the differences named: a checkpoint of a person model restored into a car run would otherwise
"resume" and save the person model as the car one. What may change on resume: the number of
epochs (continue a finished run), the validation and checkpoint schedule, threads, caching,
the seed, and ``pretrained_weights`` (the checkpoint replaces them anyway).

Example:
    >>> run_differences({"classes": ["person"], "model": {"num_layers": 10}},
    ...                 {"classes": ["car"], "model": {"num_layers": 18}})
    ["classes: ['person'] -> ['car']", 'model.num_layers: 10 -> 18']
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvlab.errors import CvlabError
from cvlab.fileio import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from cvlab.train.config import TrainConfig

#: The record of what defines a run's model, in its output folder.
RUN_FILE = "train_run.json"
#: TrainConfig fields of the record besides the classes, the mapping and the model.
SPEC_FIELDS = (
    "batch_size",
    "min_learning_rate",
    "max_learning_rate",
    "soft_start",
    "annealing",
    "adam_epsilon",
    "adam_beta1",
    "adam_beta2",
    "cost",
    "augment",
    "rasterizer",
    "validation_fold",
)


class ResumeMismatchError(CvlabError, ValueError):
    """The output folder holds checkpoints of a run with other classes, model or spec."""


class MissingClassError(CvlabError, ValueError):
    """A target class has no object in the training records (a typo, or the wrong data)."""


def _plain(value: Any) -> Any:
    """JSON-ready: dataclasses as dicts, tuples as lists (as the record reads back)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


def run_record(config: TrainConfig) -> dict[str, Any]:
    """What defines the model ``config`` trains (the content of :data:`RUN_FILE`)."""
    return _plain(
        {
            "classes": list(config.class_names),
            "target_class_mapping": config.target_class_mapping,
            "model": _plain(config.model),
            "spec": {name: _plain(getattr(config, name)) for name in SPEC_FIELDS},
        }
    )


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def run_differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``"field: before -> now"`` for every field that differs (dotted names), sorted."""
    old, new = _flat(before), _flat(now)

    def show(values: dict[str, Any], key: str) -> str:
        return repr(values[key]) if key in values else "(none)"

    return [
        f"{key}: {show(old, key)} -> {show(new, key)}"
        for key in sorted(set(old) | set(new))
        if key not in old or key not in new or old[key] != new[key]
    ]


def check_resume(output_dir: str | os.PathLike, config: TrainConfig, resuming: bool) -> None:
    """When ``resuming``, refuse (:class:`ResumeMismatchError` naming every difference) if the
    run recorded in ``output_dir`` differs from ``config``.

    A folder with checkpoints but no record (a run from before the record existed) is taken
    as it is.
    """
    path = Path(output_dir) / RUN_FILE
    if not resuming or not path.is_file():
        return
    try:
        before = json.loads(path.read_text())
    except ValueError as exc:
        raise ResumeMismatchError(f"{path}: unreadable run record ({exc})") from None
    differences = run_differences(before, run_record(config))
    if differences:
        raise ResumeMismatchError(
            f"{output_dir} holds checkpoints of another run ({'; '.join(differences)}): "
            "choose another --output, or --no-resume to train from scratch there"
        )


def write_run_record(output_dir: str | os.PathLike, config: TrainConfig) -> Path:
    """Write :data:`RUN_FILE` for ``config`` in ``output_dir`` (atomically); its path."""
    path = Path(output_dir) / RUN_FILE
    return atomic_write_text(path, json.dumps(run_record(config), indent=2) + "\n")


def check_classes_in_records(
    files: Sequence[str | os.PathLike],
    class_names: Sequence[str],
    mapping: Mapping[str, str] | None = None,
) -> Counter:
    """Boxes per target class in the TFRecord ``files`` (``mapping`` as TAO applies it); a
    :class:`MissingClassError` naming the classes without a single box and what the records
    hold instead: training on zero objects of a class is a typo, not a run.
    """
    from cvlab.formats.tfrecords import read_records
    from cvlab.train.config import source_class_ids

    names = [n.lower() for n in class_names]
    ids = source_class_ids(names, mapping)
    held: Counter = Counter()
    for record in read_records(list(files)):
        held.update(record.classes)
    boxes: Counter = Counter()
    for source, count in held.items():
        if source in ids:
            boxes[names[ids[source]]] += count
    missing = [n for n in names if not boxes[n]]
    if missing:
        found = ", ".join(f"{c} {n}" for c, n in sorted(held.items())) or "no boxes at all"
        raise MissingClassError(
            f"no box of class {', '.join(repr(m) for m in missing)} in the training TFRecords "
            f"({len(files)} file(s); they hold: {found})"
        )
    return boxes
