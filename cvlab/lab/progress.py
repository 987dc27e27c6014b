"""Progress bars for notebooks that are saved finished: one HTML line per job, updated in place.

:class:`NotebookProgress` is a ``tqdm`` whose display is one notebook output (an HTML
``<progress>`` bar with tqdm's description, counts, times and postfix, plus the same line as
plain text) that it updates in place while the job runs and a last time when it ends. Unlike
ipywidgets bars, the saved notebook holds that last state itself, so an executed notebook
shows finished bars in JupyterLab, in its HTML export and on any viewer, with no widget state
or JavaScript. :func:`use_in_notebooks` makes ``tqdm.auto`` (which cvlab's long jobs use)
create them inside a Jupyter kernel; elsewhere (command line, tests) tqdm stays as it is.

Each bar's HTML carries ``data-progress="running|done|stopped"``: ``running`` in a saved
notebook means a bar that was never closed, ``stopped`` one closed before its total.

Example:
    >>> bar = NotebookProgress(total=3, desc="demo", display=False)
    >>> for _ in range(3):
    ...     bar.update()
    >>> bar.close()
    >>> 'data-progress="done"' in bar.bundle()["text/html"]
    True
"""

from __future__ import annotations

import html
import io
import sys
import uuid
from typing import Any

from tqdm.asyncio import tqdm_asyncio

_STYLE = {
    "running": "#1f77b4",
    "done": "#76b900",
    "stopped": "#e07b00",
}


class NotebookProgress(tqdm_asyncio):
    """A tqdm shown as one in-place HTML output (see the module doc).

    Takes tqdm's arguments; ``display=False`` keeps it off the notebook (tests). It refreshes
    at most every half second (``mininterval``), so long loops send few updates.
    """

    def __init__(self, *args: Any, display: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("mininterval", 0.5)
        kwargs["file"] = io.StringIO()  # tqdm's text goes nowhere: the display shows it
        self._display_id: str | None = None
        self._closing = False
        super().__init__(*args, **kwargs)
        if self.disable or not display:
            return
        from IPython.display import display as show

        self._display_id = uuid.uuid4().hex
        show(self.bundle(), raw=True, display_id=self._display_id)

    def state(self) -> str:
        """``running``, ``done`` (closed at or past its total, or with no total) or
        ``stopped`` (closed before its total)."""
        if not self._closing:
            return "running"
        return "done" if self.total is None or self.n >= self.total else "stopped"

    def bundle(self) -> dict[str, str]:
        """The output's MIME bundle: ``text/html`` (bar + text) and ``text/plain`` (text)."""
        fmt = dict(self.format_dict)
        text = self.format_meter(**{**fmt, "ncols": 0})
        state = self.state()
        bar = ""
        if self.total:
            bar = (
                f'<progress value="{min(self.n, self.total)}" max="{self.total}" '
                f'style="width:16em;height:1em;vertical-align:middle;'
                f'accent-color:{_STYLE[state]}"></progress> '
            )
        return {
            "text/html": (
                f'<div class="cvlab-progress" data-progress="{state}" '
                f'style="font-family:monospace;font-size:12px">{bar}'
                f"{html.escape(text)}</div>"
            ),
            "text/plain": text,
        }

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        """Update the notebook output (called by tqdm on refresh and on close)."""
        if self._display_id is None:
            return True
        from IPython.display import update_display

        if msg == "":  # a leave=False bar closing: remove it
            update_display({"text/plain": ""}, raw=True, display_id=self._display_id)
            return True
        update_display(self.bundle(), raw=True, display_id=self._display_id)
        return True

    def close(self) -> None:
        """Finish the bar: its last display says ``done`` (or ``stopped``)."""
        if getattr(self, "disable", True):
            return
        self._closing = True
        super().close()


def use_in_notebooks() -> bool:
    """Inside a Jupyter kernel, make ``tqdm.auto.tqdm`` (and ``trange``) create
    :class:`NotebookProgress` bars; returns whether it did (False elsewhere)."""
    if not in_notebook_kernel():
        return False
    import tqdm.auto
    import tqdm.autonotebook

    def trange(*args: Any, **kwargs: Any) -> NotebookProgress:
        return NotebookProgress(range(*args), **kwargs)

    for module in (tqdm.auto, tqdm.autonotebook):
        module.tqdm = NotebookProgress  # type: ignore[misc,assignment]
        module.trange = trange  # type: ignore[assignment]
    return True


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel (an IPython ``ZMQInteractiveShell``)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def setup_notebook() -> bool:
    """In a Jupyter kernel: quiet TensorFlow (:func:`cvlab.quiet.quiet_tensorflow`) and progress
    bars that are saved finished (:func:`use_in_notebooks`). Elsewhere nothing
    changes. Returns whether it ran; ``import cvlab.lab`` calls it."""
    if not in_notebook_kernel():
        return False
    from cvlab.quiet import quiet_tensorflow

    quiet_tensorflow()
    use_in_notebooks()
    return True
