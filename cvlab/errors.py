"""One exception root for cvlab.

Every error cvlab raises on purpose derives from :class:`CvlabError`, so the command line can
print it as one line and exit 2 (user errors) without a traceback. Errors about a file's
content are :class:`FormatError`, which carries the file, line and field.

Example:
    >>> err = FormatError("expected 15 or 16 fields, got 3", path="a.txt", line=2)
    >>> str(err)
    'a.txt:2: expected 15 or 16 fields, got 3'
    >>> isinstance(err, ValueError) and isinstance(err, CvlabError)
    True
"""

from __future__ import annotations

import os


class CvlabError(Exception):
    """Root of every error cvlab raises on purpose (a user error: bad input, missing file)."""


class FormatError(CvlabError, ValueError):
    """A file does not follow its format; ``path``, ``line`` (1-based) and ``field`` say where."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.reason = message
        where = self.path or ""
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        if field:
            message = f"{field}: {message}" if field not in message else message
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(FormatError):
    """A configuration file or value (clustering prototxt, TAO spec, Triton config) is invalid."""
