"""The local tools' `--help`: every option says what it does and shows its default (issue 20, point 10)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from demo.steps import parse_args as demo_arguments
from devhost.__main__ import _arguments as devhost_arguments
from devhost.help_format import DefaultsHelp
from localworld.dev import _arguments as dev_arguments
from sandbox.__main__ import parse_args as sandbox_arguments
from soak.__main__ import _arguments as soak_arguments

TOOLS: dict[str, Callable[[list[str]], object]] = {
    "devhost": devhost_arguments,
    "localworld.dev": dev_arguments,
    "demo": demo_arguments,
    "soak": soak_arguments,
    "sandbox": sandbox_arguments,
}


def _parser(
    arguments: Callable[[list[str]], object], monkeypatch: pytest.MonkeyPatch
) -> argparse.ArgumentParser:
    """The parser a tool builds, caught as it parses."""
    built: list[argparse.ArgumentParser] = []

    def catch(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        built.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(SystemExit):
        arguments([])
    return built[0]


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_option_of_the_local_tools_has_help_and_shows_its_default(
    tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No bare option in --help; a default is shown by the formatter or, when None, said in the help."""
    parser = _parser(TOOLS[tool], monkeypatch)
    options = [action for action in parser._actions if action.option_strings and action.dest != "help"]
    assert [action.dest for action in options if not action.help] == []
    if tool != "sandbox":  # the sandbox's own formatter is the model DefaultsHelp copies
        assert parser.formatter_class is DefaultsHelp
    help_text = parser.format_help()
    shown = [a for a in options if a.default not in (None, False) and not a.required]
    assert [a.dest for a in shown if f"(default: {a.default})" not in " ".join(help_text.split())] == []
