"""Controllable clocks behind shared.clock.Clock, for tests and simulations: nothing waits for real time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

from shared.clock import SystemClock

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


class _FakeTime:
    """Time held as epoch seconds (the throttle's unit), shown as a UTC datetime too; records every sleep."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start.timestamp()
        self.slept: list[float] = []

    def now(self) -> datetime:
        """The fake time as a UTC datetime."""
        return datetime.fromtimestamp(self._now, UTC)

    def time(self) -> float:
        """The fake time in epoch seconds."""
        return self._now


class ManualClock(_FakeTime):
    """Moves only when told to, or when someone sleeps: sleep() jumps time forward at once and yields."""

    def advance(self, delta: timedelta) -> None:
        """Move time forward by `delta`."""
        self._now += delta.total_seconds()

    def move_to(self, when: datetime) -> None:
        """Set the time to `when` (a simulation's tick)."""
        self._now = when.timestamp()

    async def sleep(self, seconds: float) -> None:
        """Record the wait, jump past it and let other tasks run."""
        self.slept.append(seconds)
        self._now += max(0.0, seconds)
        await asyncio.sleep(0)


class VirtualClock(_FakeTime):
    """Virtual time: sleep() parks the caller until `advance`/`run_until` moves time past its wake-up."""

    def __init__(self, start: datetime = START) -> None:
        super().__init__(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._serial = itertools.count()

    async def sleep(self, seconds: float) -> None:
        """Park until virtual time reaches now + seconds."""
        self.slept.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._serial), future))
        await future

    async def run_until(self, deadline: float) -> None:
        """Let every task run, waking sleepers in time order, until virtual time reaches `deadline` (epoch s)."""
        while True:
            await _settle()
            if not self._sleepers or self._sleepers[0][0] > deadline:
                break
            when, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, when)
            if not future.done():
                future.set_result(None)
        self._now = max(self._now, deadline)
        await _settle()

    async def advance(self, seconds: float) -> None:
        """run_until(time() + seconds)."""
        await self.run_until(self._now + seconds)


class ShiftedClock(SystemClock):
    """The wall clock shifted by a settable offset: lets a test jump past a real token's expiry or into the past."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        """Wall time plus the offset."""
        return super().now() + self.offset

    def time(self) -> float:
        """Wall epoch seconds plus the offset."""
        return super().time() + self.offset.total_seconds()


async def _settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)
