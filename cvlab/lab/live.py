"""A training curve that redraws itself in the notebook while training runs.

:class:`LiveTrainingPlot` watches the trainer's ``metrics.csv`` from a background thread and,
each time an epoch is appended, renders loss and mAP (with
:func:`cvlab.viz.plots.plot_training`) into one display slot that it updates in place.
Rendering uses a standalone Agg figure (no pyplot state is touched), so it does not interfere
with the training loop or the notebook's own figures. Headless runs record the updates too;
the last one is the final curve.

Example:
    >>> with LiveTrainingPlot("runs/lab/training/metrics.csv"):  # doctest: +SKIP
    ...     train(...)
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from cvlab.viz.plots import render_history_png


class LiveTrainingPlot:
    """Context manager: redraw the training curve each time ``metrics_csv`` gains an epoch.

    Args:
        metrics_csv: the trainer's metrics file (written atomically once per epoch).
        total_epochs: shown in the title (``epoch 3/24``) when known.
        interval: seconds between checks of the file.
    """

    def __init__(
        self,
        metrics_csv: str | os.PathLike[str],
        total_epochs: int | None = None,
        interval: float = 1.0,
    ) -> None:
        self.metrics_csv = Path(metrics_csv)
        self.total_epochs = total_epochs
        self.interval = interval
        self.updates = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: Any = None
        self._seen: float | None = None

    def _refresh(self) -> None:
        try:
            stamp = self.metrics_csv.stat().st_mtime
        except FileNotFoundError:
            return
        if stamp == self._seen:
            return
        self._seen = stamp
        try:
            history = pd.read_csv(self.metrics_csv)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError):
            return  # caught between writes: the next check sees the finished file
        if history.empty:
            return
        import base64

        epoch = int(history["epoch"].iloc[-1])
        total = f"/{self.total_epochs}" if self.total_epochs else ""
        title = f"training: epoch {epoch}{total}"
        png = render_history_png(history, title)
        bundle = {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": title}
        self._handle.update(bundle, raw=True)
        self.updates += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._refresh()

    def __enter__(self) -> LiveTrainingPlot:
        from IPython.display import DisplayHandle

        self._seen = self.metrics_csv.stat().st_mtime if self.metrics_csv.exists() else None
        self._handle = DisplayHandle()
        note = "training curve appears after the first epoch"
        self._handle.display({"text/html": f"<i>{note}</i>", "text/plain": note}, raw=True)
        self._thread = threading.Thread(target=self._run, name="live-training-plot", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._refresh()  # the final epoch, even if it landed between two checks
