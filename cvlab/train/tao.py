"""The TAO path: exact ``detectnet_v2`` commands and training-log parsing.

Three spellings of the same tool exist: inside the TAO container (``detectnet_v2 train ...``,
what the lab runs), the TAO 4 launcher (``tao detectnet_v2 train ...``) and the TAO 5 launcher
(``tao model detectnet_v2 train ...``). Each builder returns a :class:`cvlab.shell.Command`
holding the argv list and a shell-quoted string.

:func:`parse_tao_log` reads a ``detectnet_v2 train`` log into the same metrics DataFrame as the
Keras trainer (epoch, step, lr, loss, images_per_s, validation_cost, mAP, ap_<class>; APs as
fractions in [0, 1]).

Example:
    >>> detectnet_v2_train("spec.txt", "experiments", gpus=8).shell
    'detectnet_v2 train -e spec.txt -r experiments -n final_model -k tlt_encode --gpus 8'
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from cvlab.shell import Command

Launcher = Literal["container", "tao4", "tao5"]
LAUNCHERS: tuple[str, ...] = ("container", "tao4", "tao5")
LAB_KEY = "tlt_encode"


def _prefix(task: str, launcher: str) -> list[str]:
    if launcher == "container":
        return ["detectnet_v2", task]
    if launcher == "tao4":
        return ["tao", "detectnet_v2", task]
    if launcher == "tao5":
        return ["tao", "model", "detectnet_v2", task]
    raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")


def detectnet_v2_train(
    spec: str | os.PathLike,
    results_dir: str | os.PathLike,
    *,
    name: str = "final_model",
    key: str | None = LAB_KEY,
    gpus: int = 1,
    launcher: Launcher = "container",
    gpu_index: Sequence[int] | None = None,
    use_amp: bool = False,
) -> Command:
    """``detectnet_v2 train -e SPEC -r RESULTS -n NAME -k KEY --gpus N``.

    The lab: ``detectnet_v2_train("training_config/training_spec.txt", "experiments", gpus=8)``.
    """
    if gpus < 1:
        raise ValueError(f"gpus must be >= 1, got {gpus}")
    argv = [*_prefix("train", launcher), "-e", str(spec), "-r", str(results_dir), "-n", name]
    if key:
        argv += ["-k", key]
    argv += ["--gpus", str(gpus)]
    if gpu_index:
        argv += ["--gpu_index", *(str(i) for i in gpu_index)]
    if use_amp:
        argv.append("--use_amp")
    return Command(tuple(argv))


def detectnet_v2_export(
    model: str | os.PathLike,
    output: str | os.PathLike,
    *,
    key: str | None = LAB_KEY,
    launcher: Launcher = "container",
    data_type: str | None = None,
    cal_cache_file: str | os.PathLike | None = None,
    batch_size: int | None = None,
) -> Command:
    """``detectnet_v2 export -m MODEL -o OUT -k KEY`` (.tlt/.hdf5 -> .etlt, or .onnx in TAO 5).

    The lab: ``detectnet_v2_export("/tlt/experiments/weights/final_model.tlt",
    "/tlt/models/ir.etlt")``.
    """
    argv = [*_prefix("export", launcher), "-m", str(model), "-o", str(output)]
    if key:
        argv += ["-k", key]
    if data_type:
        if data_type not in ("fp32", "fp16", "int8"):
            raise ValueError(f"data_type must be fp32, fp16 or int8, got {data_type!r}")
        argv += ["--data_type", data_type]
    if cal_cache_file:
        argv += ["--cal_cache_file", str(cal_cache_file)]
    if batch_size:
        argv += ["--batch_size", str(batch_size)]
    return Command(tuple(argv))


def detectnet_v2_dataset_convert(
    spec: str | os.PathLike,
    output: str | os.PathLike,
    *,
    launcher: Launcher = "container",
    validation_fold: int | None = None,
) -> Command:
    """``detectnet_v2 dataset_convert -d SPEC -o OUT`` (KITTI -> TFRecords)."""
    argv = [*_prefix("dataset_convert", launcher), "-d", str(spec), "-o", str(output)]
    if validation_fold is not None:
        argv += ["-f", str(validation_fold)]
    return Command(tuple(argv))


def lab_commands(
    spec: str = "training_config/training_spec.txt",
    results_dir: str = "experiments",
    launcher: Launcher = "container",
    gpus: int = 8,
    convert_spec: str = "dataset_convert_flir.txt",
    tfrecords_out: str = "/workspace/tao-experiments/data/tfrecords/flir/flir",
) -> dict[str, Command]:
    """The lab's TAO steps in order: dataset_convert, train, export (+ the .etlt converter).

    Paths default to the lab's; ``data/specs`` holds the two spec files they refer to.
    """
    from cvlab.export.tensorrt import tao_converter_command

    weights = f"/tlt/{results_dir}/weights/final_model.tlt"
    return {
        "dataset_convert": detectnet_v2_dataset_convert(
            convert_spec, tfrecords_out, launcher=launcher
        ),
        "train": detectnet_v2_train(spec, results_dir, gpus=gpus, launcher=launcher),
        "export": detectnet_v2_export(weights, "/tlt/models/ir.etlt", launcher=launcher),
        # tlt-converter defaults: -t fp32, -m 16 (Triton's max_batch_size 16)
        "convert": tao_converter_command(
            "/tlt/models/ir.etlt",
            key=LAB_KEY,
            engine="/tlt/models/ir.engine",
            data_type=None,
            max_batch=None,
            tool="tlt-converter",
        ),
    }


@dataclass(frozen=True)
class TaoTools:
    """Where the TAO executables are (``None`` = not on PATH)."""

    detectnet_v2: str | None
    tao: str | None
    tao_converter: str | None

    @property
    def launcher(self) -> Launcher | None:
        """The spelling that can run here: in-container first, then the TAO launcher."""
        if self.detectnet_v2:
            return "container"
        if self.tao:
            return "tao5"
        return None


def which_tao() -> TaoTools:
    """Look the TAO tools up on PATH."""
    return TaoTools(
        detectnet_v2=shutil.which("detectnet_v2"),
        tao=shutil.which("tao"),
        tao_converter=shutil.which("tao-converter") or shutil.which("tlt-converter"),
    )


def tao_available() -> bool:
    """True when ``detectnet_v2`` (in a TAO container) or the ``tao`` launcher is on PATH."""
    return which_tao().launcher is not None


# --- log parsing -----------------------------------------------------------------------------
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_STEP_LINE = re.compile(rf"\bepoch = (?P<epoch>{_NUM})(?P<rest>.*)")
_KV = re.compile(rf"\b(?P<key>learning_rate|loss|step) = (?P<value>{_NUM})")
_EPOCH_HEADER = re.compile(r"\bEpoch (?P<epoch>\d+)/(?P<total>\d+)\s*$")
_VAL_COST = re.compile(rf"Validation cost: (?P<v>{_NUM})")
_MAP = re.compile(rf"Mean average_precision \(in %\): (?P<v>{_NUM}|nan)")
_SAMPLES = re.compile(rf"Train Samples / sec: (?P<v>{_NUM})")
_TABLE_ROW = re.compile(
    rf"^\s*\|?\s*(?P<name>[A-Za-z_][\w\-]*)\s*\|?\s+(?P<ap>{_NUM}|nan)\s*\|?\s*$"
)


def parse_tao_log(text_or_path: str | os.PathLike) -> pd.DataFrame:
    """A ``detectnet_v2 train`` log -> one row per epoch, like the Keras trainer's metrics.

    Reads the ``epoch = E, learning_rate = LR, loss = L, step = S`` progress lines (both the
    ``INFO:tensorflow:`` and the ``[TAO Toolkit] [INFO] tensorflow`` spelling), ``Train Samples /
    sec``, and each validation block (``Epoch N/M``, ``Validation cost``, ``Mean
    average_precision (in %)`` and the per-class table in either tabulate layout). Loss is the
    mean of the logged values in the epoch, lr/step the last ones; APs become fractions.
    Accepts the log text or a path to it.
    """
    text = _read_log(text_or_path)
    epochs: dict[int, dict] = {}
    current_epoch = 0
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        m = _STEP_LINE.search(line)
        if m and "loss = " in line:
            e = float(m.group("epoch"))
            current_epoch = max(1, math.ceil(e - 1e-9))
            row = epochs.setdefault(current_epoch, {"_losses": [], "_samples": []})
            for kv in _KV.finditer(m.group("rest")):
                key, value = kv.group("key"), float(kv.group("value"))
                if key == "loss":
                    row["_losses"].append(value)
                elif key == "learning_rate":
                    row["lr"] = value
                else:
                    row["step"] = int(value)
            row["epoch_progress"] = e
            continue
        m = _SAMPLES.search(line)
        if m and current_epoch:
            epochs[current_epoch]["_samples"].append(float(m.group("v")))
            continue
        m = _EPOCH_HEADER.search(line)
        if m:
            current_epoch = int(m.group("epoch"))
            epochs.setdefault(current_epoch, {"_losses": [], "_samples": []})
            continue
        m = _VAL_COST.search(line)
        if m:
            row = epochs.setdefault(max(current_epoch, 1), {"_losses": [], "_samples": []})
            row["validation_cost"] = float(m.group("v"))
            continue
        m = _MAP.search(line)
        if m:
            row = epochs.setdefault(max(current_epoch, 1), {"_losses": [], "_samples": []})
            row["mAP"] = float(m.group("v")) / 100.0
            i = _read_ap_table(lines, i, row)
    if not epochs:
        source = text_or_path if isinstance(text_or_path, Path) else "log text"
        raise ValueError(f"{source}: no detectnet_v2 training lines ('epoch = ..., loss = ...')")
    records = []
    for epoch in sorted(epochs):
        row = epochs[epoch]
        losses, samples = row.pop("_losses"), row.pop("_samples")
        rec = {"epoch": epoch, **row}
        rec["loss"] = sum(losses) / len(losses) if losses else float("nan")
        if samples:
            rec["images_per_s"] = sum(samples) / len(samples)
        records.append(rec)
    df = pd.DataFrame(records)
    front = [c for c in ("epoch", "step", "lr", "loss", "images_per_s", "validation_cost", "mAP")]
    for c in front:
        if c not in df:
            df[c] = float("nan")
    ap_cols = sorted(c for c in df.columns if c.startswith("ap_"))
    rest = [c for c in df.columns if c not in front and c not in ap_cols]
    return df[front + ap_cols + rest]


def _read_ap_table(lines: list[str], i: int, row: dict) -> int:
    """Parse the per-class AP table after the mAP line; returns the next line index."""
    j = i
    while j < min(len(lines), i + 4) and "class name" not in lines[j]:
        j += 1
    if j >= len(lines) or "class name" not in lines[j]:
        return i
    j += 1
    while j < len(lines):
        stripped = lines[j].strip()
        if stripped and set(stripped) <= set("+-| "):
            j += 1
            continue
        m = _TABLE_ROW.match(lines[j])
        if not m:
            break
        row[f"ap_{m.group('name').lower()}"] = float(m.group("ap")) / 100.0
        j += 1
    return j


def _read_log(text_or_path: str | os.PathLike) -> str:
    if isinstance(text_or_path, Path):
        return text_or_path.read_text(errors="replace")
    text = str(text_or_path)
    if "\n" not in text and len(text) < 4096 and Path(text).is_file():
        return Path(text).read_text(errors="replace")
    return text
