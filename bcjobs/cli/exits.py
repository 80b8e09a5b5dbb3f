"""The CLI's exit codes and the one way a command ends with an error."""

from __future__ import annotations

from enum import IntEnum
from typing import NoReturn

import typer
from rich.text import Text

from bcjobs.cli.render import err


class ExitCode(IntEnum):
    """What the process tells its caller (documented in bcjobs/README.md)."""

    OK = 0
    INCOMPLETE = 1
    USAGE = 2
    STORAGE = 3
    NOT_FOUND = 4
    TIMEOUT = 5
    INTERRUPTED = 130


def fail(code: ExitCode, message: str) -> NoReturn:
    """End the command with `code`, `message` on stderr."""
    err.print(Text(f"bcjobs: {message}", style="red"))
    raise typer.Exit(int(code))
