"""App settings for the local run: an optional env file (the sandbox's), then local.settings.json Values, then the
process environment (each overriding the one before; the environment wins, as under Core Tools).

devhost is the host, so it is the one place that reads and sets os.environ. The app gets its settings as the
environment of its worker processes (worker_environment): the Python worker's environment-reload request
replaces os.environ with the app settings (azure-functions-python-worker dispatcher.py,
_handle__function_environment_reload_request: os.environ.clear(), then the settings). `python -m devhost`
also exports them to its own process (EnvironmentOverlay) before it imports the app to read its functions,
since the app may read settings at import time (e.g. a %SETTING% schedule that exists only when set).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from devhost.errors import ConfigError


def _read(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def local_http_port(path: Path) -> int | None:
    """Host.LocalHttpPort of a local.settings.json (Core Tools' port setting), if there is one."""
    if not path.exists():
        return None
    host = _read(path).get("Host")
    port = host.get("LocalHttpPort") if isinstance(host, dict) else None
    return int(port) if port is not None else None


def read_local_settings(path: Path) -> dict[str, str]:
    """The Values of a local.settings.json (Core Tools' format); a missing file gives no values."""
    if not path.exists():
        return {}
    data = _read(path)
    if data.get("IsEncrypted"):
        raise ConfigError(f"{path} is encrypted (IsEncrypted=true); devhost reads plain Values only")
    values = data.get("Values", {})
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: Values must be an object")
    bad = sorted(key for key, value in values.items() if not isinstance(value, str))
    if bad:
        # Core Tools refuses non-string values too: app settings are strings.
        raise ConfigError(f"{path}: Values must be strings; not: {', '.join(bad)}")
    return dict(values)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (the sandbox's env file, `make sandbox` writes .local/sandbox.env) as settings."""
    if not path.exists():
        raise ConfigError(f"{path} not found: start the sandbox first (`make sandbox` writes it)")
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs if not key.lstrip().startswith("#")}


def process_environment() -> dict[str, str]:
    """A copy of the process environment."""
    return dict(os.environ)


def merge_settings(file_values: Mapping[str, str], environment: Mapping[str, str]) -> dict[str, str]:
    """File values overridden by the environment, as Core Tools does."""
    return {**file_values, **environment}


# What a process needs to run at all, kept from devhost's own environment beside the settings: the search path
# for programs, the home and temp folders, locale and time zone. On Azure these come with the platform's
# environment, which the worker's reload request carries along with the app settings.
_PROCESS_BASICS = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")


def worker_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """A worker process's environment: the process basics devhost has, then the app settings."""
    basics = {name: os.environ[name] for name in _PROCESS_BASICS if name in os.environ}
    return {**basics, **settings}


class EnvironmentOverlay:
    """Sets settings as environment variables for the process and puts the previous values back on restore."""

    def __init__(self, settings: Mapping[str, str]) -> None:
        self._settings = dict(settings)
        self._previous: dict[str, str | None] = {}

    def apply(self) -> None:
        """Export every setting whose value differs from the current environment."""
        for name, value in self._settings.items():
            current = os.environ.get(name)
            if current != value:
                self._previous.setdefault(name, current)
                os.environ[name] = value

    def restore(self) -> None:
        """Undo apply(): remove added variables and restore overwritten ones."""
        for name, value in self._previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._previous.clear()
