"""Time as a seam: wall-clock seconds and waiting, real in production and virtual in tests (no test sleeps)."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Tells the time (epoch seconds, comparable across processes) and waits."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (returns at once for zero or less)."""
        ...


class SystemClock:
    """time.time() and asyncio.sleep: instances' clocks are NTP-synced, and the throttle's grace covers skew."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Wait on the event loop."""
        await asyncio.sleep(max(0.0, seconds))
