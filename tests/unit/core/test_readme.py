"""The README's commands exist: every `make` target, `python -m` module, `bcjobs` command and repo file its shell
blocks name (the first screen is a newcomer's path; a renamed target or module must not break it silently)."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import typer.main

from bcjobs.cli import app

ROOT = Path(__file__).resolve().parents[3]


def readme_commands() -> list[list[str]]:
    """Each command of the README's ```sh blocks (comments, continuations and `;` chains taken apart)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    lines = " ".join(block.replace("\\\n", " ") for block in blocks).replace("\n", " ; ")
    commands = [shlex.split(part.split("#", 1)[0]) for part in re.split(r" ; |;", lines)]
    return [command for command in commands if command]


def _program(command: list[str]) -> list[str]:
    """The command without its leading VAR=value assignments."""
    while command and re.fullmatch(r"\w+=.*", command[0]):
        command = command[1:]
    return command


def test_the_readme_shows_commands_at_all() -> None:
    programs = {_program(command)[0] for command in readme_commands() if _program(command)}
    assert {"make", "bcjobs"} <= programs


def test_every_make_target_the_readme_shows_is_in_the_makefile() -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(encoding="utf-8"), flags=re.M))
    shown = {c[1] for c in map(_program, readme_commands()) if c[:1] == ["make"] and len(c) > 1}
    assert shown
    assert shown <= targets


def test_every_python_module_the_readme_runs_exists() -> None:
    modules = {c[c.index("-m") + 1] for c in map(_program, readme_commands()) if "-m" in c}
    assert modules
    assert [name for name in modules if importlib.util.find_spec(name) is None] == []


def test_every_bcjobs_command_the_readme_shows_is_a_command_of_the_cli() -> None:
    commands = set(typer.main.get_group(app).commands)
    shown = {c[1] for c in map(_program, readme_commands()) if c[:1] == ["bcjobs"] and len(c) > 1}
    assert shown
    assert shown <= commands


def test_every_repo_file_the_readme_commands_name_exists() -> None:
    named = {
        argument.removeprefix("@")
        for command in readme_commands()
        for argument in command
        if re.match(r"@?(examples|infra|docs|bcjobs|schemas)/|local\.settings\.json\.example$", argument)
    }
    assert named
    assert [name for name in named if not (ROOT / name).exists()] == []
