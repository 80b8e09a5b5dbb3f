"""Binding expressions of the %SETTING% kind, resolved from app settings the way the host does at indexing."""

from __future__ import annotations

import re
from collections.abc import Mapping

from devhost.errors import ConfigError

# The host replaces every %NAME% in a binding's string attributes (schedule, queueName, tableName, ...).
_SETTING_REFERENCE = re.compile(r"%([^%\s]+)%")


def resolve_settings(text: str, settings: Mapping[str, str]) -> str:
    """Return text with each %NAME% replaced by the setting NAME; an unset NAME raises ConfigError."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = settings.get(name)
        if value is None or value == "":
            raise ConfigError(f"'%{name}%' does not resolve to a value (app setting {name} is not set)")
        return value

    return _SETTING_REFERENCE.sub(substitute, text)
