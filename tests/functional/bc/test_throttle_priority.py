"""The change feed's low permits on a SharedThrottle, in virtual time: spare capacity only, never the jobs'."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shared.bc.throttle import LowPriority, SharedThrottle, ThrottleConfig
from testkit.clock import VirtualClock
from tests.fakes.coordination import MemoryCoordinationStore

CONFIG = ThrottleConfig(
    requests=600, window_seconds=20.0, safety_margin=0.05, max_in_flight=5, heartbeat_seconds=5
)
LATENCY = 0.05


@dataclass
class Counts:
    """Requests started per priority, and how many low ones were in flight at most."""

    clock: VirtualClock
    started: dict[str, int] = field(default_factory=lambda: {"job": 0, "feed": 0})
    low_in_flight: int = 0
    peak_low: int = 0

    async def job(self, throttle: SharedThrottle) -> None:
        async with throttle.permit():
            self.started["job"] += 1
            await self.clock.sleep(LATENCY)

    async def feed(self, throttle: SharedThrottle) -> None:
        async with LowPriority(throttle).permit():
            self.started["feed"] += 1
            self.low_in_flight += 1
            self.peak_low = max(self.peak_low, self.low_in_flight)
            try:
                await self.clock.sleep(LATENCY)
            finally:
                self.low_in_flight -= 1


def _busy(count: int, request: Callable[[], Awaitable[None]]) -> list[asyncio.Task[None]]:
    async def loop() -> None:
        while True:
            await request()

    return [asyncio.create_task(loop()) for _ in range(count)]


async def _run(clock: VirtualClock, tasks: list[asyncio.Task[None]], seconds: float) -> None:
    await clock.run_until(clock.time() + seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _setup() -> tuple[VirtualClock, SharedThrottle, Counts]:
    clock = VirtualClock()
    throttle = SharedThrottle(MemoryCoordinationStore(), "app-1", CONFIG, clock=clock, member_id="a")
    return clock, throttle, Counts(clock)


async def test_jobs_keep_their_throughput_while_the_feed_floods() -> None:
    """Jobs that use the whole budget alone send as many requests with five feed readers beside them."""
    clock, throttle, counts = _setup()
    await _run(clock, _busy(8, lambda: counts.job(throttle)), 10)
    alone = counts.started["job"]
    await throttle.close()
    clock, throttle, counts = _setup()
    await _run(clock, _busy(8, lambda: counts.job(throttle)) + _busy(5, lambda: counts.feed(throttle)), 10)
    assert counts.started["job"] >= 0.97 * alone
    await throttle.close()


async def test_the_feed_takes_the_budget_jobs_leave_unused_with_one_slot() -> None:
    """In a process that runs jobs, the feed still reads while they are idle, one request at a time."""
    clock, throttle, counts = _setup()
    await asyncio.gather(
        counts.job(throttle), clock.advance(1)
    )  # a jobs process: the feed uses its spare share
    await _run(clock, _busy(20, lambda: counts.feed(throttle)), 10)
    assert counts.started["feed"] >= 0.9 * 10 / LATENCY
    assert counts.peak_low == 1
    await throttle.close()


async def test_a_feed_only_process_reads_at_the_reserve_one_request_at_a_time() -> None:
    """A process that asks only low permits is a feed-only member: 10 % of the rate, one slot, even alone."""
    clock, throttle, counts = _setup()
    await _run(clock, _busy(20, lambda: counts.feed(throttle)), 10)
    assert 0.9 * CONFIG.reserve_rate * 10 <= counts.started["feed"] <= CONFIG.reserve_rate * 10 + CONFIG.burst
    assert counts.peak_low == 1
    await throttle.close()


async def test_a_waiting_job_goes_before_a_feed_read_that_asked_first() -> None:
    """With every slot busy, a job asking after a feed read gets the next free slot."""
    clock, throttle, _ = _setup()
    order: list[str] = []
    holders = [asyncio.Event() for _ in range(CONFIG.max_in_flight)]

    async def hold(release: asyncio.Event) -> None:
        async with throttle.permit():
            await release.wait()

    async def ask(name: str, low: bool) -> None:
        async with throttle.permit(low=low):
            order.append(name)

    busy = [asyncio.create_task(hold(event)) for event in holders]
    await clock.advance(1)
    asked = [asyncio.create_task(ask("feed", True))]
    await clock.advance(1)
    asked.append(asyncio.create_task(ask("job", False)))
    await clock.advance(1)
    holders[0].set()
    await clock.advance(1)
    assert order[:1] == ["job"]
    for event in holders:
        event.set()
    await clock.advance(1)
    await asyncio.gather(*busy, *asked)
    assert order == ["job", "feed"]
    await throttle.close()
