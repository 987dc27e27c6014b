"""The lab workspace: its fixed folder layout, the state file, and records for the report.

Every notebook works in one workspace folder (``runs/lab`` by default); tables, figures and
images worth showing in the HTML report are recorded under ``<workspace>/report/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cvlab.fileio import atomic_save_figure, atomic_write_image, atomic_write_text
from cvlab.train.standin import MODEL_NAME as STANDIN_MODEL_NAME

if TYPE_CHECKING:  # pandas loads on first use: `cvlab lab demo` imports this module
    import pandas as pd

#: Repository root when cvlab is installed editable from a checkout (``pyproject.toml`` beside it).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Workspace used by the notebooks when no other is given.
DEFAULT_WORKSPACE = "runs/lab"
#: Model names inside the lab's local Triton repository (the RGB stand-in and the IR model).
RGB_MODEL_NAME = STANDIN_MODEL_NAME
IR_MODEL_NAME = "peoplenet_ir"
#: The lab's name for the retrained IR model on GKE (tensorrt_plan).
LAB_IR_MODEL_NAME = "peoplenet_ir_tlt"


def resolve_workspace_path(path: str | os.PathLike[str]) -> Path:
    """Absolute path for a workspace: relative paths are taken from the repository root.

    Notebooks run with the notebooks/ folder as their working directory, the CLI from
    wherever it is called; anchoring relative paths at the repository root (when cvlab lives
    in a checkout) makes ``runs/lab`` mean the same folder for both.
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if (REPO_ROOT / "pyproject.toml").exists():
        return (REPO_ROOT / p).resolve()
    return p.resolve()


@dataclass(frozen=True)
class Workspace:
    """The fixed layout of the lab's working folder.

    Attributes:
        root: the workspace folder (created on first use); relative paths start at the
            repository root, so notebooks (run from notebooks/) and the CLI agree.

    Example:
        >>> import tempfile
        >>> ws = Workspace(tempfile.mkdtemp())
        >>> ws.dataset.relative_to(ws.root).as_posix(), ws.model_repository.name
        ('dataset', 'model_repository')
    """

    root: Path

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_WORKSPACE) -> None:
        object.__setattr__(self, "root", resolve_workspace_path(root))
        self.root.mkdir(parents=True, exist_ok=True)

    # --- inputs
    @property
    def flir_source(self) -> Path:
        """Synthetic FLIR dataset in the real on-disk layout (when no real FLIR_ROOT is given)."""
        return self.root / "flir_source"

    @property
    def rgb_images(self) -> Path:
        """RGB sample images for notebook 01."""
        return self.root / "rgb_images"

    # --- products
    @property
    def dataset(self) -> Path:
        """Prepared dataset: images/, labels/ (KITTI), tfrecords/."""
        return self.root / "dataset"

    @property
    def training(self) -> Path:
        """Trainer output: checkpoints, history CSV, the trained Keras model."""
        return self.root / "training"

    @property
    def export(self) -> Path:
        """Exported ONNX model, TensorRT plan or the commands that build it."""
        return self.root / "export"

    @property
    def model_repository(self) -> Path:
        """Local Triton model repository (CPU-servable variants of both models)."""
        return self.root / "model_repository"

    @property
    def gke_model_repository(self) -> Path:
        """The lab's GKE layout: peoplenet_ir_tlt with a tensorrt_plan config.pbtxt."""
        return self.root / "model_repository_gke"

    @property
    def outputs(self) -> Path:
        """Inference outputs (KITTI labels, overlay images) per notebook."""
        return self.root / "outputs"

    @property
    def report(self) -> Path:
        """Tables, figures and images recorded for the HTML report."""
        return self.root / "report"

    @property
    def state_file(self) -> Path:
        return self.root / "lab_state.json"

    def state(self) -> dict[str, Any]:
        """The small JSON record of what the steps produced (paths, sizes, names)."""
        if not self.state_file.exists():
            return {}
        try:
            return json.loads(self.state_file.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.state_file}: not valid JSON ({exc})") from exc

    def update_state(self, **values: Any) -> dict[str, Any]:
        """Merge ``values`` into the state file (atomic write) and return the new state."""
        state = self.state()
        state.update({k: _jsonable(v) for k, v in values.items()})
        atomic_write_text(self.state_file, json.dumps(state, indent=2, sort_keys=True))
        return state


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _slug(name: str) -> str:
    keep = [c if c.isalnum() or c in "-_." else "_" for c in name.strip()]
    return "".join(keep) or "item"


def record_table(ws: Workspace, name: str, df: pd.DataFrame, title: str | None = None) -> Path:
    """Save a table for the HTML report (CSV under report/tables, atomic)."""
    path = ws.report / "tables" / f"{_slug(name)}.csv"
    atomic_write_text(path, df.to_csv(index=False))
    _record_title(ws, path, title or name)
    return path


def record_figure(ws: Workspace, name: str, fig: Any, title: str | None = None) -> Path:
    """Save a matplotlib figure for the HTML report (PNG under report/figures, atomic)."""
    path = ws.report / "figures" / f"{_slug(name)}.png"
    atomic_save_figure(path, fig, dpi=100, bbox_inches="tight")
    _record_title(ws, path, title or name)
    return path


def record_image(ws: Workspace, name: str, rgb: np.ndarray, title: str | None = None) -> Path:
    """Save an RGB image (e.g. an overlay) for the HTML report (JPEG under report/images)."""
    path = ws.report / "images" / f"{_slug(name)}.jpg"
    atomic_write_image(path, np.asarray(rgb, dtype=np.uint8))
    _record_title(ws, path, title or name)
    return path


def record_text(ws: Workspace, name: str, text: str, title: str | None = None) -> Path:
    """Save preformatted text (a repository tree, a config file) for the HTML report
    (report/texts/<name>.txt, shown as-is)."""
    path = ws.report / "texts" / f"{_slug(name)}.txt"
    atomic_write_text(path, text)
    _record_title(ws, path, title or name)
    return path


def _record_title(ws: Workspace, path: Path, title: str) -> None:
    """Remember ``title`` for ``path`` in report/index.json (kept in recording order)."""
    index_path = ws.report / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[str(path.relative_to(ws.report))] = title
    atomic_write_text(index_path, json.dumps(index, indent=2))


def produced_table(
    paths: Iterable[str | os.PathLike[str]], root: Path | None = None
) -> pd.DataFrame:
    """A table of produced files/folders: path, kind, files, size (MB) (column "size (MB)").

    Used by the last cell of every notebook ("what was produced and where").
    """
    rows = []
    for p in map(Path, paths):
        if not p.exists():
            rows.append((str(p), "missing", 0, 0.0))
            continue
        if p.is_dir():
            files = [f for f in p.rglob("*") if f.is_file()]
            size = sum(f.stat().st_size for f in files)
            kind, count = "folder", len(files)
        else:
            kind, count, size = "file", 1, p.stat().st_size
        shown = str(p.relative_to(root)) if root and p.is_relative_to(root) else str(p)
        rows.append((shown, kind, count, round(size / 1e6, 3)))
    import pandas as pd

    return pd.DataFrame(rows, columns=["path", "kind", "files", "size (MB)"])


def dataclass_table(obj: Any) -> pd.DataFrame:
    """A dataclass (e.g. a config) as a two-column table (field, value)."""
    if not dataclasses.is_dataclass(obj):
        raise TypeError(f"{type(obj).__name__} is not a dataclass")
    import pandas as pd

    return pd.DataFrame(
        [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)],
        columns=["field", "value"],
    )
