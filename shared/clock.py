"""Time as a seam for every package: the real clock in production, a controllable one in tests (no test sleeps)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Tells the time (as a UTC datetime or as epoch seconds, comparable across processes) and waits."""

    def now(self) -> datetime:
        """The current UTC time."""
        ...

    def time(self) -> float:
        """Seconds since the epoch: the same instant as now()."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (returns at once for zero or less)."""
        ...


class SystemClock:
    """The wall clock and asyncio.sleep: instances' clocks are NTP-synced, and callers' grace periods cover skew."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Wait on the event loop."""
        await asyncio.sleep(max(0.0, seconds))


def iso_utc(moment: datetime | None) -> str | None:
    """`moment` as ISO-8601 text in UTC, e.g. "2026-01-05T08:00:00+00:00" (how stored records hold times); None
    stays None."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def parse_iso_utc(value: object) -> datetime | None:
    """ISO-8601 text (as iso_utc writes it, or with any offset) as a UTC datetime; None and "" are None."""
    return None if value is None or value == "" else datetime.fromisoformat(str(value)).astimezone(UTC)
