"""What the demo's steps share: the context they hand on and the error a failing step raises."""

from __future__ import annotations

import subprocess
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from devhost.azurite import AzuriteEndpoints
from devhost.errors import DevHostError


class DemoError(DevHostError):
    """A demo step failed; the message says what was expected and what happened."""


@dataclass
class DemoContext:
    """What the steps hand on to each other."""

    cleanup: ExitStack
    azurite: AzuriteEndpoints | None = None
    base_url: str = ""
    function_key: str = field(default="", repr=False)
    devhost: subprocess.Popen[str] | None = None
    devhost_log: Path | None = None
    sandbox_env: dict[str, str] = field(default_factory=dict, repr=False)
    # The app settings devhost runs function_app.py with (the demo's own worker step uses the same).
    app_environment: dict[str, str] = field(default_factory=dict, repr=False)
