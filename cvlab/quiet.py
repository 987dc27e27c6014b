"""Quiet TensorFlow for notebooks and commands: log levels set before it loads, and the
known-harmless lines and warnings silenced where they start (everything else still shows).

The notebooks call it on ``import cvlab.lab`` (:func:`cvlab.lab.progress.setup_notebook`);
``cvlab`` commands that load TensorFlow (``tensorflow=True`` in :data:`cvlab.cli.VERBS`) call
:func:`quiet_tensorflow` before they run.

TensorFlow 2.21 writes two lines before its logging is initialised, so no log level can stop
them: "All log messages before absl::InitializeLog() ..." and oneDNN's "custom operations are
on" notice (cvlab keeps oneDNN on: it trains faster). :func:`quiet_tensorflow` imports
TensorFlow once with the process's stderr (file descriptor 2, which the notebook kernel
forwards into the notebook) captured, drops exactly those known lines and writes anything else
back to stderr. It also sets ``TF_CPP_MIN_LOG_LEVEL=2`` and ``GRPC_VERBOSITY=ERROR`` (unless
already set) before the import, absl's Python log level to errors, and drops the TensorFlow
log records of :data:`HARMLESS_TF_LOGS` and the warnings of :data:`HARMLESS_WARNINGS`.

Example:
    >>> LOG_ENVIRONMENT["TF_CPP_MIN_LOG_LEVEL"]
    '2'
    >>> is_harmless_line("I0000 00:00:1.2  99 port.cc:153] oneDNN custom operations are on.")
    True
    >>> is_harmless_line("E0000 00:00:1.2  99 cuda_executor.cc:1] failed call to cuInit")
    False
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

#: Environment read by TensorFlow's C++ side and gRPC when they load (set unless already set).
LOG_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2", "GRPC_VERBOSITY": "ERROR"}

#: Lines TensorFlow prints before its logging starts (so no log level can stop them).
_HARMLESS_LINES = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(r"^I\d{4} .*port\.cc:\d+\] oneDNN custom operations are on"),
)

#: TensorFlow Python log records (logger ``tensorflow``) that say nothing a lab user can act on:
#: saving a model whose ``tf.data`` input used a lookup table ("probably safe to ignore", as the
#: message itself says).
HARMLESS_TF_LOGS = (re.compile(r"^Issue encountered when serializing table_initializer"),)

#: (message regex, category) of Python warnings that say nothing a lab user can act on.
HARMLESS_WARNINGS: tuple[tuple[str, type[Warning]], ...] = ()


class _DropHarmlessRecords(logging.Filter):
    """Drops the records of :data:`HARMLESS_TF_LOGS`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.search(message) for p in HARMLESS_TF_LOGS)


def is_harmless_line(line: str) -> bool:
    """True for the lines TensorFlow prints before its logging starts (see the module doc)."""
    return any(p.search(line.strip()) for p in _HARMLESS_LINES)


@contextlib.contextmanager
def _stderr_filtered() -> Iterator[None]:
    """Capture file descriptor 2 in a temporary file; on exit write back all but the
    harmless lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines(keepends=True) if not is_harmless_line(line)]
            if "".join(kept).strip():
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def silence_harmless_warnings() -> None:
    """Ignore the Python warnings of :data:`HARMLESS_WARNINGS` (others still show)."""
    for message, category in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up log lines and set its loggers to errors only.

    Safe to call more than once; when TensorFlow is already imported only the Python log
    levels and warning filters are applied.
    """
    for key, value in LOG_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    silence_harmless_warnings()
    if "tensorflow" not in sys.modules:
        with _stderr_filtered():
            import tensorflow  # noqa: F401
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _DropHarmlessRecords) for f in logger.filters):
        logger.addFilter(_DropHarmlessRecords())
    with contextlib.suppress(ImportError):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
