"""The `--help` screens without Typer's noise: no `<bool>` beside a flag, no `{file}` braces in the usage line.

A flag takes no value, so its type label only misleads (`--json <bool>` reads as `--json true`); the usage line
shows an argument as its metavar (`FILE...`, `JOB_ID`), as most command-line tools do.
"""

from __future__ import annotations

from typer._click import Context, Parameter  # Typer's own copy of click, the one its commands use
from typer.core import TyperCommand, TyperGroup, TyperOption


def _plain(params: list[Parameter]) -> list[Parameter]:
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class PlainGroup(TyperGroup):
    """The app's group: flags (`--help`) without a type label."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _plain(super().get_params(ctx))


class PlainCommand(TyperCommand):
    """A command: flags without a type label, arguments in the usage line without braces."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _plain(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return [piece.replace("{", "").replace("}", "") for piece in super().collect_usage_pieces(ctx)]
