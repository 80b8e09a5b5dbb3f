"""Time as a seam: the real clock in production, a controllable one in tests (so no test sleeps)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the time and waits."""

    def now(self) -> datetime:
        """The current UTC time."""
        ...

    async def sleep(self, delay: timedelta) -> None:
        """Wait for `delay`."""
        ...


class SystemClock:
    """The wall clock and asyncio.sleep."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    async def sleep(self, delay: timedelta) -> None:
        """Wait for `delay` on the event loop."""
        await asyncio.sleep(max(0.0, delay.total_seconds()))
