"""Shell command lines: the one quoting rule for every command cvlab prints or writes to a script.

Commands are argument lists (for :func:`subprocess.run`). :func:`shell_join` turns one into a
line to paste into bash: every argument is quoted with :func:`shlex.quote`, except a
:class:`ShellSubstitution` (``$(...)``) that bash must expand, which goes in double quotes.
:class:`Command` holds an argv and gives both forms; :func:`as_shell_script` writes a script.

Example:
    >>> account = ShellSubstitution("$(gcloud config get-value account)")
    >>> shell_join(["kubectl", "create", "clusterrolebinding", "me", "--user", account])
    'kubectl create clusterrolebinding me --user "$(gcloud config get-value account)"'
    >>> command = Command(("detectnet_v2", "train", "-e", "my spec.txt"))
    >>> str(command)
    "detectnet_v2 train -e 'my spec.txt'"
    >>> print(as_shell_script([command, ["echo", "done"]]), end="")
    #!/usr/bin/env bash
    set -euo pipefail
    detectnet_v2 train -e 'my spec.txt'
    echo done
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Command", "ShellSubstitution", "as_shell_script", "shell_join", "shell_quote"]


class ShellSubstitution(str):
    """An argument that the shell must expand (``$(...)``): rendered in double quotes, unescaped."""


def shell_quote(arg: Any) -> str:
    """One argument for bash: :func:`shlex.quote` of ``str(arg)``, or a :class:`ShellSubstitution`
    in double quotes (only its ``"`` escaped, so ``$(...)`` still expands)."""
    if isinstance(arg, ShellSubstitution):
        return '"' + arg.replace('"', '\\"') + '"'
    return shlex.quote(str(arg))


def shell_join(argv: Iterable[Any]) -> str:
    """``argv`` as one bash line (:func:`shlex.join` for plain arguments; paths are ``str()``-ed).

    >>> shell_join(["trtexec", "--onnx=a b.onnx"])
    "trtexec '--onnx=a b.onnx'"
    """
    return " ".join(shell_quote(arg) for arg in argv)


@dataclass(frozen=True)
class Command:
    """A command line: ``argv`` to run with subprocess, ``shell`` to copy into a terminal."""

    argv: tuple[str, ...]

    @property
    def shell(self) -> str:
        return shell_join(self.argv)

    def __str__(self) -> str:
        return self.shell


def as_shell_script(commands: Iterable[Command | Iterable[Any]], *, header: bool = True) -> str:
    """A bash script running ``commands`` (argv lists or :class:`Command`) in order
    (``set -euo pipefail``), one quoted line each."""
    lines = ["#!/usr/bin/env bash", "set -euo pipefail"] if header else []
    lines += [c.shell if isinstance(c, Command) else shell_join(c) for c in commands]
    return "\n".join(lines) + "\n"
