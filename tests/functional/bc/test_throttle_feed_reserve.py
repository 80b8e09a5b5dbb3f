"""Feed-only processes on a shared throttle, in virtual time: a small fixed reserve, never a jobs process's share.

On Flex Consumption the change feed's functions run on instances of their own (per-function scaling), so their
processes ask only low permits; these tests put such a process beside a jobs process on one coordination row.
"""

from __future__ import annotations

import asyncio

from shared.bc.throttle import LowPriority, SharedThrottle, ThrottleConfig
from testkit.clock import VirtualClock
from tests.fakes.coordination import MemoryCoordinationStore
from tests.functional.bc.test_shared_throttle import KEY, LATENCY, Traffic, spawn, stop

CONFIG = ThrottleConfig(
    requests=600, window_seconds=20.0, safety_margin=0.05, max_in_flight=5, heartbeat_seconds=5
)


def _feed(traffic: Traffic, throttle: SharedThrottle, readers: int = 4) -> list[asyncio.Task[None]]:
    """Busy feed readers on low permits (what the feed's BC client is given), counted as "feed"."""

    async def read() -> None:
        while True:
            async with LowPriority(throttle).permit():
                traffic.starts.setdefault("feed", []).append(traffic.clock.time())
                traffic.in_flight += 1
                traffic.peak_in_flight = max(traffic.peak_in_flight, traffic.in_flight)
                try:
                    await traffic.clock.sleep(LATENCY)
                finally:
                    traffic.in_flight -= 1

    return [asyncio.create_task(read()) for _ in range(readers)]


def _pair(clock: VirtualClock) -> tuple[MemoryCoordinationStore, SharedThrottle, SharedThrottle]:
    store = MemoryCoordinationStore()
    feed = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="feed")
    jobs = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="jobs")
    return store, feed, jobs


async def test_a_jobs_process_joining_after_a_feed_only_process_starts_at_once() -> None:
    """No join delay for jobs behind the feed: the reserve does not change when a jobs process joins."""
    clock = VirtualClock()
    traffic = Traffic(clock)
    _, feed, jobs = _pair(clock)
    tasks = _feed(traffic, feed)
    await clock.advance(10)
    joined_at = clock.time()
    tasks += spawn(traffic, jobs, "jobs")
    await clock.advance(1)
    await stop(tasks)
    assert min(traffic.starts["jobs"]) < joined_at + 0.5
    await feed.close()
    await jobs.close()


async def test_a_feed_only_newcomer_waits_while_the_jobs_process_shrinks() -> None:
    """A feed-only process joining a busy jobs process sends nothing before its join delay."""
    clock = VirtualClock()
    traffic = Traffic(clock)
    _, feed, jobs = _pair(clock)
    tasks = spawn(traffic, jobs, "jobs")
    await clock.advance(10)
    joined_at = clock.time()
    tasks += _feed(traffic, feed)
    await clock.advance(30)
    await stop(tasks)
    assert min(traffic.starts["feed"]) >= joined_at + CONFIG.join_delay_seconds
    assert traffic.peak_in_flight <= CONFIG.max_in_flight
    assert traffic.max_in_window(CONFIG.window_seconds) <= CONFIG.requests
    await feed.close()
    await jobs.close()


async def test_jobs_keep_the_budget_but_the_reserve_beside_a_feed_flood() -> None:
    """Beside a flooding feed-only process the jobs send at 90 % of the rate and the feed at 10 %, within limits."""
    clock = VirtualClock()
    traffic = Traffic(clock)
    _, feed, jobs = _pair(clock)
    tasks = _feed(traffic, feed) + spawn(traffic, jobs, "jobs", 8)
    start = clock.time()
    await clock.run_until(start + 60)
    await stop(tasks)
    steady = (start + 20, start + 60)
    assert traffic.count_between(*steady, "jobs") >= 0.97 * (CONFIG.rate - CONFIG.reserve_rate) * 40
    assert traffic.count_between(*steady, "feed") <= CONFIG.reserve_rate * 40 + CONFIG.burst
    assert traffic.peak_in_flight <= CONFIG.max_in_flight
    assert traffic.max_in_window(CONFIG.window_seconds) <= CONFIG.requests
    await feed.close()
    await jobs.close()


async def test_a_feed_only_process_asked_a_job_permit_becomes_a_normal_member() -> None:
    """Its first normal permit re-joins it as a normal member at once: alone, with the whole budget."""
    clock = VirtualClock()
    store = MemoryCoordinationStore()
    throttle = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="p")

    async def ask(low: bool) -> None:
        async with throttle.permit(low=low):
            pass

    await asyncio.gather(ask(low=True), clock.advance(1))
    assert throttle.share().slots == 1
    before = await store.read(KEY)
    assert before is not None
    assert [member.low for member in before.state.members] == [True]
    await asyncio.gather(ask(low=False), clock.advance(1))
    row = await store.read(KEY)
    assert row is not None
    assert [member.low for member in row.state.members] == [False]
    assert throttle.share().slots == CONFIG.max_in_flight
    await throttle.close()


async def test_a_converting_member_waits_its_join_delay_beside_a_jobs_process() -> None:
    """The conversion is a join of the normal pool: with another jobs process live it waits like a newcomer."""
    clock = VirtualClock()
    traffic = Traffic(clock)
    _, feed, jobs = _pair(clock)
    tasks = spawn(traffic, jobs, "jobs") + _feed(traffic, feed)
    await clock.advance(30)
    converted_at = clock.time()
    tasks += spawn(traffic, feed, "converted", 2)
    await clock.advance(30)
    await stop(tasks)
    assert min(traffic.starts["converted"]) >= converted_at + CONFIG.join_delay_seconds
    assert traffic.peak_in_flight <= CONFIG.max_in_flight
    assert traffic.max_in_window(CONFIG.window_seconds) <= CONFIG.requests
    await feed.close()
    await jobs.close()


async def test_an_idle_feed_only_process_gives_the_reserve_back() -> None:
    """Once the feed went quiet for idle_leave_seconds, the jobs process is back to the whole budget."""
    clock = VirtualClock()
    traffic = Traffic(clock)
    _, feed, jobs = _pair(clock)
    readers = _feed(traffic, feed, 1)
    tasks = spawn(traffic, jobs, "jobs")
    await clock.advance(30)
    assert jobs.share().slots == CONFIG.max_in_flight - 1
    await stop(readers)
    await clock.advance(CONFIG.idle_leave_seconds + 2 * CONFIG.heartbeat_seconds)
    assert jobs.share().slots == CONFIG.max_in_flight
    await stop(tasks)
    await feed.close()
    await jobs.close()


async def test_a_feed_only_process_holding_a_delivery_becomes_a_normal_member() -> None:
    """await_slot is the jobs' hold: it converts the process too, so the job is not held on the reserve."""
    clock = VirtualClock()
    traffic = Traffic(clock)
    _, feed, jobs = _pair(clock)
    tasks = _feed(traffic, feed, 1)
    await clock.advance(5)
    assert feed.share().slots == 1
    held = asyncio.create_task(feed.await_slot(60))
    await clock.advance(1)
    assert held.done()
    assert held.result()
    assert feed.share().slots == CONFIG.max_in_flight
    await stop(tasks)
    await feed.close()
    await jobs.close()
