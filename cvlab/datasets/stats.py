"""Dataset statistics from KITTI label folders or TFRecords: tables and a matplotlib figure.

Both :func:`labels_dataframe` and :func:`cvlab.formats.tfrecords.read_tfrecords` give one row per
object (``frame_id``, ``object_class``, ``x1 y1 x2 y2``) and one row with class None per frame
without objects, so every helper here accepts either.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"frame_id": ["a", "a", "b"], "object_class": ["person", "car", None],
    ...                    "x1": [0, 0, None], "y1": [0, 0, None], "x2": [10, 40, None],
    ...                    "y2": [30, 20, None]})
    >>> class_counts(df).to_dict()
    {'car': 1, 'person': 1}
    >>> boxes_per_image(df).to_dict()
    {0: 1, 1: 0, 2: 1}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from cvlab.formats.kitti import read_kitti

if TYPE_CHECKING:
    pass

#: box height bins (pixels of the written image) used by :func:`box_size_histogram`.
HEIGHT_BINS = (0, 16, 32, 64, 128, 256, 512, 10_000)


def labels_dataframe(labels_dir: str | os.PathLike) -> pd.DataFrame:
    """All ``*.txt`` KITTI files of a folder as one row per object (class None: empty file).

    Raises :class:`FileNotFoundError` naming the folder when it holds no ``*.txt`` file (or is
    no folder): a mistyped path must not read as an empty dataset.
    """
    rows = []
    files = sorted(Path(labels_dir).glob("*.txt"))
    if not files:
        what = "no KITTI label files (*.txt) in" if Path(labels_dir).is_dir() else "no folder"
        raise FileNotFoundError(f"{what} {labels_dir} (is it a `cvlab flir prepare` output?)")
    for path in files:
        dets = read_kitti(path)
        if len(dets) == 0:
            rows.append({"frame_id": path.stem, "object_class": None})
        for d in dets:
            rows.append(
                {
                    "frame_id": path.stem,
                    "object_class": d.class_name,
                    "x1": d.x1,
                    "y1": d.y1,
                    "x2": d.x2,
                    "y2": d.y2,
                }
            )
    return pd.DataFrame(rows, columns=["frame_id", "object_class", "x1", "y1", "x2", "y2"])


def _objects(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["object_class"].notna()]


def class_counts(df: pd.DataFrame) -> pd.Series:
    """Objects per class, sorted by name."""
    return _objects(df)["object_class"].value_counts().sort_index().rename("objects")


def boxes_per_image(df: pd.DataFrame) -> pd.Series:
    """How many frames have 0, 1, 2, ... objects (index: boxes per frame)."""
    per_frame = df.groupby("frame_id")["object_class"].count()
    counts = per_frame.value_counts().sort_index()
    full = range(int(counts.index.max()) + 1) if len(counts) else range(0)
    counts = counts.reindex(full, fill_value=0).rename("frames")
    counts.index.name = "boxes"
    return counts


def box_size_histogram(df: pd.DataFrame, bins: tuple[int, ...] = HEIGHT_BINS) -> pd.DataFrame:
    """Objects per class and box-height bin (rows: bins like ``[32, 64)``; columns: classes)."""
    obj = _objects(df)
    heights = (obj["y2"] - obj["y1"]).astype(float)
    cut = pd.cut(heights, bins=list(bins), right=False)
    table = pd.crosstab(cut, obj["object_class"]).reindex(cut.cat.categories, fill_value=0)
    table.index = table.index.astype(str)
    table.index.name = "box height (px)"
    return table


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per class: objects, frames containing it, median/min box width and height."""
    obj = _objects(df).assign(width=lambda d: d.x2 - d.x1, height=lambda d: d.y2 - d.y1)
    return obj.groupby("object_class").agg(
        objects=("frame_id", "size"),
        frames=("frame_id", "nunique"),
        median_width=("width", "median"),
        median_height=("height", "median"),
        min_height=("height", "min"),
    )
