"""`--since`: a duration ago (`90s`, `15m`, `2h`, `7d`, `1w`) or an ISO-8601 date-time."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import typer

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> datetime:
    """`90s`, `15m`, `2h`, `7d`, `1w` ago, or an ISO-8601 date-time (UTC when it has no offset)."""
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        return now() - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("a duration such as 30m, 2h, 7d, or an ISO-8601 date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def since_option(value: str | None) -> datetime | None:
    """The `--since` value as a date-time (None when not given); a usage error when it is neither form."""
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not {exc}", param_hint="--since") from None
