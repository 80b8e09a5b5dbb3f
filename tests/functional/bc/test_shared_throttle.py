"""Several SharedThrottles on one in-memory coordination store, in virtual time: limits, joins, pauses, outages."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from shared.bc.throttle import CoordinationState, SharedThrottle, ThrottleConfig, VersionedState
from testkit.clock import VirtualClock
from tests.fakes.coordination import MemoryCoordinationStore

CONFIG = ThrottleConfig(
    requests=600, window_seconds=20.0, safety_margin=0.05, max_in_flight=5, heartbeat_seconds=5
)
KEY = "app-1"
LATENCY = 0.05


@dataclass
class Traffic:
    """What a BC server would see: request start times per process, and concurrency."""

    clock: VirtualClock
    starts: dict[str, list[float]] = field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0

    async def request(self, throttle: SharedThrottle, name: str) -> None:
        """One request holding its permit for LATENCY seconds."""
        async with throttle.permit():
            self.starts.setdefault(name, []).append(self.clock.time())
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                await self.clock.sleep(LATENCY)
            finally:
                self.in_flight -= 1

    def all_starts(self) -> list[float]:
        """Every start time, sorted."""
        return sorted(time for starts in self.starts.values() for time in starts)

    def max_in_window(self, window: float) -> int:
        """The most requests any sliding window of `window` seconds saw."""
        starts = self.all_starts()
        return max((bisect.bisect_left(starts, t + window) - i for i, t in enumerate(starts)), default=0)

    def count_between(self, start: float, end: float, name: str | None = None) -> int:
        """Requests started in [start, end)."""
        times = self.starts.get(name, []) if name else self.all_starts()
        return sum(1 for t in times if start <= t < end)


def spawn(
    traffic: Traffic, throttle: SharedThrottle, name: str, workers: int = 6
) -> list[asyncio.Task[None]]:
    """Busy workers sending through `throttle` until cancelled."""

    async def work() -> None:
        while True:
            await traffic.request(throttle, name)

    return [asyncio.create_task(work()) for _ in range(workers)]


async def stop(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel worker tasks and wait for them."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_one_process_uses_the_whole_budget_and_no_more() -> None:
    """Alone, a process paces at rate*(1-margin): close to it, and never over BC's limit in any window."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    traffic = Traffic(clock)
    throttle = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="a")
    tasks = spawn(traffic, throttle, "a")
    start = clock.time()
    await clock.run_until(start + 60)
    await stop(tasks)
    await throttle.close()
    sent = traffic.count_between(start, start + 60)
    assert sent >= 0.98 * CONFIG.rate * 60
    assert traffic.max_in_window(CONFIG.window_seconds) <= CONFIG.requests
    assert traffic.peak_in_flight <= CONFIG.max_in_flight
    assert store.transactions / sent < 0.01  # alone: one blind compare-and-swap per heartbeat


async def test_three_processes_never_exceed_bcs_limits() -> None:
    """Three busy processes together stay within the window and five in flight, and still use the budget."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    traffic = Traffic(clock)
    throttles = [SharedThrottle(store, KEY, CONFIG, clock=clock, member_id=name) for name in "abc"]
    tasks = [task for throttle in throttles for task in spawn(traffic, throttle, throttle.member_id)]
    start = clock.time()
    await clock.run_until(start + 90)
    await stop(tasks)
    for throttle in throttles:
        await throttle.close()
    assert traffic.max_in_window(CONFIG.window_seconds) <= CONFIG.requests
    assert traffic.peak_in_flight <= CONFIG.max_in_flight
    steady = traffic.count_between(start + 30, start + 90)
    assert steady >= 0.97 * CONFIG.rate * 60
    assert {name: traffic.count_between(start + 30, start + 90, name) > 0.3 * steady for name in "abc"} == {
        "a": True,
        "b": True,
        "c": True,
    }
    assert store.transactions / len(traffic.all_starts()) < 0.05


async def test_newcomer_waits_for_the_join_delay_while_seniors_shrink() -> None:
    """A process joining a busy identity sends nothing before its join delay; the senior gives up slots first."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    traffic = Traffic(clock)
    senior = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="a")
    tasks = spawn(traffic, senior, "a")
    await clock.advance(10)
    joined_at = clock.time()
    newcomer = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="b")
    tasks += spawn(traffic, newcomer, "b")
    await clock.advance(CONFIG.heartbeat_seconds + 0.5)
    assert senior.share().slots == 3  # already drained to its future share
    await clock.advance(30)
    await stop(tasks)
    first_b = min(traffic.starts["b"])
    assert first_b >= joined_at + CONFIG.join_delay_seconds
    assert traffic.peak_in_flight <= CONFIG.max_in_flight
    assert traffic.max_in_window(CONFIG.window_seconds) <= CONFIG.requests
    await senior.close()
    await newcomer.close()


async def test_leaving_process_hands_its_share_over() -> None:
    """When one of two processes closes, the other is back to the whole budget after its next heartbeat."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    a = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="a")
    b = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="b")
    await a.heartbeat()
    await b.heartbeat()
    await clock.advance(CONFIG.join_delay_seconds + 1)
    await a.heartbeat()
    assert a.share().slots == 3
    await b.close()
    await a.heartbeat()
    assert a.share().slots == 5
    assert a.share().rate == pytest.approx(CONFIG.rate)


async def test_crashed_process_share_is_reclaimed_after_its_lease() -> None:
    """A process that vanishes without leaving still holds its share until its lease runs out, then not."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    a = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="a")
    crashed = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="b")
    await a.heartbeat()
    await crashed.heartbeat()  # and never again
    await clock.advance(CONFIG.lease_seconds - 1)
    await a.heartbeat()
    assert a.share().slots == 3
    await clock.advance(2)
    await a.heartbeat()
    assert a.share().slots == 5


async def test_retry_after_pauses_every_process() -> None:
    """A Retry-After seen by one process stops it at once and the others within one heartbeat; all resume after."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    traffic = Traffic(clock)
    a = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="a")
    b = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="b")
    tasks = spawn(traffic, a, "a") + spawn(traffic, b, "b")
    await clock.advance(CONFIG.join_delay_seconds + 5)
    paused_at = clock.time()
    await a.pause(15.0)
    await clock.advance(30)
    await stop(tasks)
    resume = paused_at + 15.0
    assert traffic.count_between(paused_at + 0.1, resume, "a") == 0
    assert traffic.count_between(paused_at + CONFIG.heartbeat_seconds + 0.1, resume, "b") == 0
    assert traffic.count_between(resume, resume + 5) > 0
    await a.close()
    await b.close()


async def test_storage_outage_falls_back_to_a_conservative_share_and_recovers() -> None:
    """With the row unreachable, a process keeps going on one slot and rate/4, and returns to normal after."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    traffic = Traffic(clock)
    throttle = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="a")
    tasks = spawn(traffic, throttle, "a")
    await clock.advance(5)
    store.outage = True
    await clock.advance(CONFIG.stale_after_seconds + 1)
    outage_share = throttle.share()
    degraded_from = clock.time()
    traffic.peak_in_flight = 0
    await clock.advance(20)
    during = traffic.count_between(degraded_from, degraded_from + 20)
    peak_during = traffic.peak_in_flight
    store.outage = False
    await clock.advance(CONFIG.heartbeat_seconds)
    await stop(tasks)
    assert outage_share.fallback
    assert outage_share.slots == 1
    assert outage_share.rate == pytest.approx(CONFIG.rate / 4)
    assert peak_during == 1
    assert 0.9 * CONFIG.rate / 4 * 20 <= during <= CONFIG.rate / 4 * 20 + CONFIG.burst
    assert not throttle.share().fallback
    await throttle.close()


async def test_first_requests_wait_for_the_first_heartbeat_outcome() -> None:
    """Until the row has been read once, nothing is sent (not even on a guess)."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    throttle = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="a")
    async with throttle.permit():
        read = await store.read(KEY)
    assert read is not None
    assert [member.id for member in read.state.members] == ["a"]
    await throttle.close()


class InterleavingStore(MemoryCoordinationStore):
    """Yields to the event loop inside read, so two joins really race."""

    async def read(self, key: str) -> VersionedState | None:
        """Read, then let other tasks run before returning."""
        result = await super().read(key)
        await asyncio.sleep(0)
        return result


async def test_simultaneous_joins_admit_only_one_at_once() -> None:
    """Two processes joining at the same instant: the compare-and-swap makes exactly one wait its join delay."""
    clock, store = VirtualClock(), InterleavingStore()
    a = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="a")
    b = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="b")
    await asyncio.gather(a.heartbeat(), b.heartbeat())
    read = await store.read(KEY)
    assert read is not None
    delays = sorted(member.active_from - clock.time() for member in read.state.members)
    assert delays == [0, pytest.approx(CONFIG.join_delay_seconds)]


def test_empty_state_has_no_live_members() -> None:
    """A fresh row lists nobody."""
    assert CoordinationState().live(0.0) == ()


class BrokenStore(MemoryCoordinationStore):
    """A store whose reads fail with an error no one planned for."""

    async def read(self, key: str) -> VersionedState | None:
        """Fail unexpectedly."""
        raise RuntimeError("bug in a storage layer")


async def test_unexpected_heartbeat_failure_never_blocks_requests(caplog: pytest.LogCaptureFixture) -> None:
    """If the first heartbeat dies of a surprise error, requests still flow on the fallback share (and it is logged)."""
    clock = VirtualClock()
    throttle = SharedThrottle(BrokenStore(), KEY, CONFIG, clock=clock, member_id="a")
    async with throttle.permit():
        share = throttle.share()
    await clock.advance(0)  # let the loop's done-callback run
    assert share.fallback
    assert share.slots == 1
    assert "heartbeat stopped" in caplog.text
    await throttle.close()


async def test_a_member_has_no_slot_inside_its_join_delay_and_one_once_admitted() -> None:
    """has_slot: a newcomer holds no slot until every member has seen it; a lone senior holds them all."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    senior = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="a")
    newcomer = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="b")
    await senior.heartbeat()
    await newcomer.heartbeat()
    assert senior.has_slot()
    assert not newcomer.has_slot()
    await clock.advance(CONFIG.join_delay_seconds + 0.1)
    await newcomer.heartbeat()
    assert newcomer.has_slot()
    await senior.close()
    await newcomer.close()


async def _sixth_member_waiting_without_a_slot(
    clock: VirtualClock, traffic: Traffic, throttles: Sequence[SharedThrottle]
) -> tuple[list[asyncio.Task[None]], asyncio.Task[None]]:
    """Five busy members holding every slot, and a sixth whose request waits for one (it has none)."""
    tasks = [task for throttle in throttles[:5] for task in spawn(traffic, throttle, throttle.member_id, 1)]
    await clock.advance(1)
    sixth = throttles[5]
    waiting = asyncio.create_task(traffic.request(sixth, sixth.member_id))
    await clock.advance(CONFIG.join_delay_seconds + CONFIG.heartbeat_seconds)
    assert sixth.share().slots == 0
    assert not waiting.done()
    return tasks, waiting


async def test_member_without_a_slot_sends_on_the_fallback_share_during_an_outage() -> None:
    """A sixth process (no slot among five) is not stuck when storage fails: once its view is stale it sends."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    traffic = Traffic(clock)
    throttles = [SharedThrottle(store, KEY, CONFIG, clock=clock, member_id=f"m{n}") for n in range(6)]
    tasks, waiting = await _sixth_member_waiting_without_a_slot(clock, traffic, throttles)
    store.outage = True
    outage_at = clock.time()
    await clock.advance(CONFIG.stale_after_seconds + 1)
    await stop([*tasks, waiting])
    assert throttles[5].share().fallback
    assert traffic.starts.get("m5"), "the sixth member never got a slot"
    assert min(traffic.starts["m5"]) <= outage_at + CONFIG.stale_after_seconds + LATENCY
    for throttle in throttles:
        await throttle.close()


class DyingStore:
    """Delegates to a shared store until `die` is set; then every call fails with an unplanned error."""

    def __init__(self, inner: MemoryCoordinationStore) -> None:
        self._inner = inner
        self.die = False

    @property
    def transactions(self) -> int:
        """The shared store's count."""
        return self._inner.transactions

    async def read(self, key: str) -> VersionedState | None:
        """Read through, unless dead."""
        if self.die:
            raise RuntimeError("bug in a storage layer")
        return await self._inner.read(key)

    async def write(self, key: str, state: CoordinationState, etag: str | None) -> str:
        """Write through, unless dead."""
        if self.die:
            raise RuntimeError("bug in a storage layer")
        return await self._inner.write(key, state, etag)

    async def close(self) -> None:
        """Nothing to release."""


async def test_member_without_a_slot_sends_after_its_heartbeat_loop_died() -> None:
    """A sixth process whose heartbeat loop dies of a surprise error falls back to one slot instead of hanging."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    dying = DyingStore(store)
    traffic = Traffic(clock)
    throttles = [SharedThrottle(store, KEY, CONFIG, clock=clock, member_id=f"m{n}") for n in range(5)]
    throttles.append(SharedThrottle(dying, KEY, CONFIG, clock=clock, member_id="m5"))
    tasks, waiting = await _sixth_member_waiting_without_a_slot(clock, traffic, throttles)
    dying.die = True
    died_at = clock.time()
    await clock.advance(CONFIG.stale_after_seconds + CONFIG.heartbeat_seconds)
    await stop([*tasks, waiting])
    assert traffic.starts.get("m5"), "the sixth member never got a slot"
    assert min(traffic.starts["m5"]) <= died_at + CONFIG.stale_after_seconds + CONFIG.heartbeat_seconds
    dying.die = False  # so close() can leave the row
    for throttle in throttles:
        await throttle.close()


async def busy_members(
    store: MemoryCoordinationStore, clock: VirtualClock, traffic: Traffic, count: int
) -> tuple[list[SharedThrottle], list[asyncio.Task[None]]]:
    """`count` members joined one after the other and kept busy (the seniors of a deep queue)."""
    throttles, tasks = [], []
    for index in range(count):
        throttle = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id=f"s{index}")
        throttles.append(throttle)
        tasks += spawn(traffic, throttle, throttle.member_id, workers=2)
        await clock.advance(1)
    await clock.advance(CONFIG.join_delay_seconds + CONFIG.heartbeat_seconds)
    return throttles, tasks


async def test_a_junior_beyond_five_members_holds_without_storage_calls_until_its_bound() -> None:
    """With five busy seniors, a sixth member's await_slot says no after its bound and costs no storage call
    beyond its own heartbeats and, as the first junior, one read per watch interval while it waits."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    traffic = Traffic(clock)
    seniors, tasks = await busy_members(store, clock, traffic, 5)
    junior = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="z")
    waiting = asyncio.create_task(junior.await_slot(within=40))
    await clock.advance(1)
    calls_before = store.transactions
    await clock.run_until(clock.time() + 45)
    assert waiting.done()
    assert waiting.result() is False
    heartbeats = 6 * (45 / CONFIG.heartbeat_seconds + 1)  # six members, each beating every heartbeat_seconds
    watches = 45 / CONFIG.watch_seconds + 1  # the first junior's reads of the row
    assert store.transactions - calls_before <= 2 * heartbeats + watches  # nothing more
    assert "z" not in traffic.starts
    await stop(tasks)
    for throttle in [*seniors, junior]:
        await throttle.close()


async def test_an_idle_member_leaves_and_a_holding_junior_takes_its_slot() -> None:
    """A senior with no work leaves the row after idle_leave_seconds; a junior waiting in await_slot then gets
    a slot and sends, and the five-in-flight limit holds throughout."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    traffic = Traffic(clock)
    seniors, tasks = await busy_members(store, clock, traffic, 5)
    junior = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="z")
    waiting = asyncio.create_task(junior.await_slot(within=120))
    await clock.advance(CONFIG.join_delay_seconds + 1)
    assert not waiting.done()
    await stop(tasks[:2])  # senior s0 runs out of work
    stopped_at = clock.time()
    await clock.run_until(stopped_at + CONFIG.idle_leave_seconds + 3 * CONFIG.heartbeat_seconds)
    assert waiting.done()
    assert waiting.result() is True
    row = await store.read(KEY)
    assert row is not None
    assert "s0" not in {member.id for member in row.state.members}
    junior_tasks = spawn(traffic, junior, "z", workers=2)
    await clock.advance(10)
    assert traffic.count_between(stopped_at, clock.time(), "z") > 0
    assert traffic.peak_in_flight <= CONFIG.max_in_flight
    await stop([*tasks[2:], *junior_tasks])
    for throttle in [*seniors, junior]:
        await throttle.close()


async def test_a_member_in_steady_use_never_leaves_on_idle() -> None:
    """A process sending all along stays in the row however long it runs."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    traffic = Traffic(clock)
    throttle = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="a")
    tasks = spawn(traffic, throttle, "a", workers=1)
    await clock.run_until(clock.time() + 5 * CONFIG.idle_leave_seconds)
    state = await store.read(KEY)
    assert state is not None
    assert [member.id for member in state.state.members] == ["a"]
    await stop(tasks)
    await throttle.close()


async def test_a_member_that_left_on_idle_rejoins_on_its_next_request() -> None:
    """After leaving on idle, the next permit joins the row again and its request is sent."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    traffic = Traffic(clock)
    throttle = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="a")
    first = asyncio.create_task(traffic.request(throttle, "a"))
    await clock.run_until(clock.time() + CONFIG.idle_leave_seconds + 2 * CONFIG.heartbeat_seconds)
    assert first.done()
    left = await store.read(KEY)
    assert left is not None
    assert left.state.members == ()
    second = asyncio.create_task(traffic.request(throttle, "a"))
    await clock.advance(1)
    assert second.done()
    again = await store.read(KEY)
    assert again is not None
    assert [member.id for member in again.state.members] == ["a"]
    assert len(traffic.starts["a"]) == 2
    await throttle.close()


async def test_with_juniors_waiting_an_idle_senior_leaves_after_one_heartbeat() -> None:
    """Members join only with work, so juniors in the row are waiting: an idle senior then leaves well before
    idle_leave_seconds and the junior is sending within two heartbeats and a join of it."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    traffic = Traffic(clock)
    seniors, tasks = await busy_members(store, clock, traffic, 5)
    junior = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="z")
    waiting = asyncio.create_task(junior.await_slot(within=120))
    await clock.advance(CONFIG.join_delay_seconds + 1)
    await stop(tasks[:2])  # senior s0 runs out of work
    stopped_at = clock.time()
    await clock.run_until(stopped_at + 3 * CONFIG.heartbeat_seconds + 1)
    assert 3 * CONFIG.heartbeat_seconds + 1 < CONFIG.idle_leave_seconds + CONFIG.heartbeat_seconds
    assert waiting.done()
    assert waiting.result() is True
    await stop(tasks[2:])
    for throttle in [*seniors, junior]:
        await throttle.close()


async def test_the_first_junior_takes_a_slot_given_back_within_a_watch_interval() -> None:
    """A senior leaving the row hands its slot over at once: the holding junior (next in line) re-reads the row
    every watch_seconds, so it is not left idle until the junior's own next heartbeat (issue 24, point 7)."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    traffic = Traffic(clock)
    seniors, tasks = await busy_members(store, clock, traffic, 5)
    junior = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="z")
    waiting = asyncio.create_task(junior.await_slot(within=120))
    await clock.advance(CONFIG.join_delay_seconds + CONFIG.heartbeat_seconds)
    assert not waiting.done()
    await stop(tasks[:2])
    await seniors[0].close()  # leaves the row now
    await clock.advance(CONFIG.watch_seconds + 0.1)
    assert waiting.done()
    assert waiting.result() is True
    assert CONFIG.watch_seconds + 0.1 < CONFIG.heartbeat_seconds * 0.9  # sooner than any heartbeat of its own
    await stop(tasks[2:])
    for throttle in [*seniors[1:], junior]:
        await throttle.close()


async def test_spare_counts_the_slots_held_or_asked_and_the_wait_for_the_pace() -> None:
    """spare(): an idle share has all its slots and no wait; permits held or waiting take slots; a spent burst
    makes the next start wait for the pace (what an identity pool compares)."""
    clock, store = VirtualClock(), MemoryCoordinationStore()
    throttle = SharedThrottle(store, KEY, CONFIG, clock=clock, member_id="a")
    await throttle.heartbeat()
    assert throttle.spare() == (CONFIG.max_in_flight, 0.0)
    traffic = Traffic(clock)
    tasks = spawn(traffic, throttle, "a", workers=CONFIG.max_in_flight + 2)
    await clock.advance(0.01)
    free, wait = throttle.spare()
    assert free < 0  # all five slots held or asked, and two more asked
    assert 0.0 < wait <= CONFIG.burst / CONFIG.rate
    await stop(tasks)
    await throttle.close()
