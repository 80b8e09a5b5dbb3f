"""`python -m bench feed-priority`: the jobs' BC throughput while the change feed expands 1,500 changes, vs without.

A simulation of one process's SharedThrottle in virtual time (testkit.clock.VirtualClock: seconds of BC time in
milliseconds of CPU), with BC's real limits (6,000 requests per 5 minutes, 5 in flight, the deployment's 3 %
margin) and a BC answer time of LATENCY_SECONDS. What it measures is the throttle's policy, not the HTTP stack:

- jobs: a burst of JOB_REQUESTS requests sent by JOB_DELIVERIES concurrent deliveries (host.json's batchSize 16 +
  newBatchThreshold 8 = 24 per instance), each request a permit held for the answer time;
- the feed: 1,500 changes, each its own notification item (the worst case: nothing coalesced, no `collection`),
  i.e. 1,500 GETs from FEED_READERS concurrent expansions.

Burst: jobs alone, and with the feed at low priority (`permit(low=True)`, what ships): the jobs' requests per
second and the time their burst took, and when the feed's reads were done. Steady: jobs arriving at three
quarters of the budget, alone, with the feed at low priority, and with the feed on normal permits (what the low
priority prevents): how long a job's request waits for its permit (p50, p95), and when the feed was done.

Two processes: on Flex Consumption the feed's functions run on instances of their own (per-function scaling), so
the feed's reads come from a feed-only process beside the jobs process, on one coordination row. The feed-only
process starts first (the demo's order) and floods FEED_CHANGES reads; the jobs' burst starts FEED_HEAD_START
seconds later: jobs alone, beside the feed as a feed-only member (what ships: the reserve, plan.py), and beside the
feed as an equal member (before: modelled by one normal permit in the feed process, which makes it a normal member
whose low permits then use its whole equal share). The jobs' first request, their requests per second, and when
the feed was done.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass, field, replace
from typing import Any

from shared.bc.errors import StaleCoordinationStateError
from shared.bc.throttle import CoordinationState, SharedThrottle, ThrottleConfig, VersionedState
from testkit.clock import VirtualClock

CONFIG = ThrottleConfig(requests=6000, window_seconds=300.0, safety_margin=0.03, max_in_flight=5)
LATENCY_SECONDS = 0.15
JOB_REQUESTS = 3000
JOB_DELIVERIES = 24
FEED_CHANGES = 1500
FEED_READERS = 4  # the low priority lets one read in flight at a time: more readers only wait
# The contrast run (the feed on normal permits) expands fewer changes: jobs then queue up by the hundred and the
# virtual clock's cost grows with every waiter; 150 changes already show what the low priority prevents.
NORMAL_FEED_CHANGES = 150
STEADY_SECONDS = 120.0  # the steady runs last at least this long (virtual)
STEADY_JOB_RATE = 15.0  # requests per second: three quarters of BC's 20
FEED_HEAD_START = 5.0  # seconds the feed-only process runs before the jobs' burst (it joined first)


class _MemoryStore:
    """The coordination row in memory, shared by the processes of one run."""

    def __init__(self) -> None:
        self._row: VersionedState | None = None
        self._version = 0

    @property
    def transactions(self) -> int:
        """Calls made (not counted here)."""
        return 0

    async def read(self, key: str) -> VersionedState | None:
        del key
        return self._row

    async def write(self, key: str, state: CoordinationState, etag: str | None) -> str:
        del key
        if (self._row.etag if self._row else None) != etag:
            raise StaleCoordinationStateError("changed")
        self._version += 1
        self._row = VersionedState(replace(state), f"v{self._version}")
        return self._row.etag

    async def close(self) -> None:
        """Nothing to release."""


@dataclass
class _Run:
    clock: VirtualClock
    store: _MemoryStore
    throttle: SharedThrottle
    job_waits: list[float] = field(default_factory=list)
    jobs_done: float | None = None
    feed_done: float | None = None

    async def request(self, low: bool) -> None:
        asked = self.clock.time()
        async with self.throttle.permit(low=low):
            if not low:
                self.job_waits.append(self.clock.time() - asked)
            await self.clock.sleep(LATENCY_SECONDS)


def _new_run(beside: _Run | None = None, member_id: str = "bench") -> _Run:
    """A process's throttle on a new row, or on the row and clock of the process `beside`."""
    clock = beside.clock if beside is not None else VirtualClock()
    store = beside.store if beside is not None else _MemoryStore()
    return _Run(clock, store, SharedThrottle(store, "bench", CONFIG, clock=clock, member_id=member_id))


async def _drain(run: _Run, count: int, workers: int, low: bool) -> float:
    """`count` requests from `workers` concurrent tasks; the virtual time when the last one ended."""
    left = [count]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await run.request(low)

    start = run.clock.time()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return run.clock.time() - start


async def _burst(feed: str | None) -> dict[str, Any]:
    """Jobs' burst, with the feed at `feed` priority ("low", "normal") or without it (None)."""
    run = _new_run()
    tasks = [asyncio.create_task(_drain(run, JOB_REQUESTS, JOB_DELIVERIES, low=False))]
    if feed is not None:
        tasks.append(asyncio.create_task(_drain(run, FEED_CHANGES, FEED_READERS, low=feed == "low")))
    while not all(task.done() for task in tasks):
        await run.clock.advance(1.0)
    await run.throttle.close()
    jobs_seconds = tasks[0].result()
    figures: dict[str, Any] = {
        "jobs_seconds": round(jobs_seconds, 1),
        "jobs_requests_per_second": round(JOB_REQUESTS / jobs_seconds, 2),
        "job_wait_p95_ms": round(1000 * statistics.quantiles(run.job_waits, n=20)[-1], 1),
    }
    if feed is not None:
        figures["feed_done_seconds"] = round(tasks[1].result(), 1)
    return figures


async def _steady(feed: str | None) -> dict[str, Any]:
    """Jobs arriving at STEADY_JOB_RATE while the feed expands 1,500 changes at `feed` priority (or no feed, for
    as long as the low-priority feed took): how long jobs wait for a permit, and when the feed is done."""
    run = _new_run()
    jobs: list[asyncio.Task[None]] = []

    async def arrivals() -> None:
        while True:
            jobs.append(asyncio.create_task(run.request(low=False)))
            await run.clock.sleep(1.0 / STEADY_JOB_RATE)

    source = asyncio.create_task(arrivals())
    reads = {None: 0, "low": FEED_CHANGES, "normal": NORMAL_FEED_CHANGES}[feed]
    feed_task = asyncio.create_task(_drain(run, reads, FEED_READERS, low=feed == "low"))
    end = run.clock.time() + STEADY_SECONDS
    while not feed_task.done() or run.clock.time() < end:
        await run.clock.advance(1.0)
    source.cancel()
    while not all(job.done() for job in jobs):  # the jobs asked so far finish on the virtual clock
        await run.clock.advance(1.0)
    await asyncio.gather(source, *jobs, return_exceptions=True)
    await run.throttle.close()
    figures: dict[str, Any] = {
        "job_wait_p50_ms": round(1000 * statistics.median(run.job_waits), 1),
        "job_wait_p95_ms": round(1000 * statistics.quantiles(run.job_waits, n=20)[-1], 1),
    }
    if feed is not None:
        figures |= {"feed_changes": reads, "feed_done_seconds": round(feed_task.result(), 1)}
    return figures


async def _two_processes(feed: str | None) -> dict[str, Any]:
    """The jobs' burst in one process while a feed-only process (joined first) floods: `feed` "reserve" (ships),
    "equal" (before), or None (jobs alone)."""
    run = _new_run()
    feed_run = _new_run(beside=run, member_id="feed")
    feed_task: asyncio.Task[float] | None = None
    if feed is not None:
        if feed == "equal":
            await _with_clock(run.clock, feed_run.request(low=False))  # a normal member from now on
        feed_task = asyncio.create_task(_drain(feed_run, FEED_CHANGES, FEED_READERS, low=True))
        await run.clock.advance(FEED_HEAD_START)
    jobs_task = asyncio.create_task(_drain(run, JOB_REQUESTS, JOB_DELIVERIES, low=False))
    while not jobs_task.done() or (feed_task is not None and not feed_task.done()):
        await run.clock.advance(1.0)
    await run.throttle.close()
    await feed_run.throttle.close()
    jobs_seconds = jobs_task.result()
    figures: dict[str, Any] = {
        "jobs_first_request_wait_s": round(run.job_waits[0], 1),
        "jobs_seconds": round(jobs_seconds, 1),
        "jobs_requests_per_second": round(JOB_REQUESTS / jobs_seconds, 2),
    }
    if feed_task is not None:
        figures["feed_done_seconds"] = round(feed_task.result() + (1.0 if feed == "equal" else 0.0), 1)
    return figures


async def _with_clock(clock: VirtualClock, work: Any) -> None:
    """Run `work` while moving the virtual clock."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await clock.advance(0.5)
    await task


async def _all() -> dict[str, Any]:
    return {
        "bc_limits": {"requests_per_5_min": CONFIG.requests, "in_flight": CONFIG.max_in_flight},
        "latency_ms": LATENCY_SECONDS * 1000,
        "burst": {
            "job_requests": JOB_REQUESTS,
            "feed_changes": FEED_CHANGES,
            "jobs_alone": await _burst(None),
            "with_feed_low_priority": await _burst("low"),
        },
        "steady": {
            "job_requests_per_second": STEADY_JOB_RATE,
            "jobs_alone": await _steady(None),
            "with_feed_low_priority": await _steady("low"),
            "with_feed_normal_priority": await _steady("normal"),
        },
        "two_processes": {
            "job_requests": JOB_REQUESTS,
            "feed_changes": FEED_CHANGES,
            "feed_head_start_seconds": FEED_HEAD_START,
            "jobs_alone": await _two_processes(None),
            "beside_feed_only_process_reserve": await _two_processes("reserve"),
            "beside_feed_only_process_equal_member_before": await _two_processes("equal"),
        },
    }


def run() -> dict[str, Any]:
    """Every figure of this bench (virtual time: a few seconds of CPU)."""
    return asyncio.run(_all())
