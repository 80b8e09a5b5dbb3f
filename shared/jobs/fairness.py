"""Fairness on one queue: a budget with more deliveries than it can serve soon sends the surplus back to the queue.

Every connection's jobs share `bc-jobs` and each worker's invocations (host.json: the host fetches up to batchSize
messages, and fetches again only once its invocations in flight drop to newBatchThreshold;
learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue#host-json). A delivery waiting for its
budget's permits holds one of those invocations, so with thousands of one connection's jobs queued every
invocation would wait for that budget while another connection's jobs wait behind them in the queue, for as long as
the flood lasts (bench `fairness`).

So each process counts, per budget, the deliveries it runs (its *backlog*). Once that count reaches what the
process's share of the budget serves in HORIZON_SECONDS (at least its slots, at most ROOM_CAP), a further
delivery of that budget goes back to the queue, using no attempt, for a delay that places it behind the ones
already sent back: a virtual schedule at the share's rate (or the rate the process actually served, when a busy
CPU made that less), so the budget's jobs come back about when it can take them (a little early: one that finds
the backlog still full is sent back again, one that came late would leave the budget idle). The invocations then
turn over in moments, the host keeps fetching, and the queue's visible messages get through to the other
connections' jobs.

A connection with several identities (an identity pool, shared/jobs/pool.py) is one backlog: its jobs go to
whichever identity has budget left, so what the process serves of that connection is the sum of its identities'
shares (`pooled_share`), and a surplus beyond that goes back to the queue as for one identity. The backlog is keyed
by the pool's budget keys together (`pool_key`): connections with the same pool share it, as connections sharing an
identity shared one before pools.

Only while the registry holds more than one budget (`contended`): with one, every message in the queue is the
same budget's, so sending some back gains nothing and costs storage calls; a single-connection deployment runs
exactly as before.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from shared.bc.throttle import Share
from shared.clock import Clock

# What the backlog may hold: the share's work for HORIZON_SECONDS (at least its slots), so that by Little's law
# the deliveries admitted (claim, permit, BC, record: ~0.1-0.5 s each on a loaded 2-core box) keep the share busy;
# but never more than ROOM_CAP, host.json's newBatchThreshold: the host fetches again only once its invocations in
# flight drop to that, so a budget holding more deliveries per process would gate every fetch at its own pace.
HORIZON_SECONDS = 1.0
ROOM_CAP = 8
# A job sent back reappears this long before the schedule says its budget can take it (see the docstring).
LEAD_SECONDS = 1.0
# A delay never shorter than this (a job sent back for less would only be fetched and sent back again) ...
MIN_DELAY_SECONDS = 1.0
# ... nor longer than this: the schedule assumes the share's current rate, which can change.
MAX_DELAY_SECONDS = 900.0
# The schedule's pace: the share's rate, or what this process served of the budget over the last
# RATE_WINDOW_SECONDS when that was less (a CPU too busy to keep up: jobs sent back at the share's rate would
# come back faster than they are served and be sent back again, churn that slows it further), never under
# PACE_FLOOR of the share's rate (a slow spell must not talk the schedule down to nothing).
# The served rate is taken PACE_PROBE higher: jobs come back only as fast as they were served, so the served rate
# could never grow again once the CPU has room.
RATE_WINDOW_SECONDS = 10.0
PACE_FLOOR = 0.5
PACE_PROBE = 1.25
_JITTER = 0.1  # up to +10 %: messages sent back together do not all reappear in one instant


class Backlog(Protocol):
    """One budget's deliveries in this process: whether the next one should go back to the queue, and for how long."""

    async def deferral(self) -> float | None:
        """Seconds to send the next delivery back for, or None: run it here (then inside `running()`)."""
        ...

    def running(self) -> AbstractContextManager[None]:
        """Counts a delivery run here while it lasts."""
        ...


class NoBacklog:
    """Never sends a delivery back (tests, tools, OneLane)."""

    async def deferral(self) -> float | None:
        return None

    @contextmanager
    def running(self) -> Iterator[None]:
        yield


NO_BACKLOG = NoBacklog()


class BudgetBacklog:
    """Backlog of one budget in one process, sized by the process's share of that budget (SharedThrottle.share)."""

    def __init__(
        self,
        share: Callable[[], Share],
        contended: Callable[[], Awaitable[bool]],
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._share = share
        self._contended = contended
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - spread only
        self.size = 0  # deliveries of this budget running in this process
        self._tail = 0.0  # clock.time() at which the last delivery sent back can be served, by the schedule
        self._ended: deque[float] = deque()  # clock.time() of each delivery that ended, the last RATE_WINDOW

    def room(self, share: Share) -> int:
        """How many deliveries the backlog may hold at this share."""
        return min(ROOM_CAP, max(share.slots, math.ceil(share.rate * HORIZON_SECONDS)))

    async def deferral(self) -> float | None:
        share = self._share()
        # No rate: a junior or a newcomer in its join delay, which the slot hold (JobPolicy) already bounds.
        if share.rate <= 0 or self.size < self.room(share) or not await self._contended():
            return None
        now = self._clock.time()
        interval = 1.0 / self._pace(share, now)
        drained = now + (self.size - self.room(share) / 2) * interval  # the backlog half served
        self._tail = max(self._tail, drained) + interval
        delay = (self._tail - now - LEAD_SECONDS) * (1.0 + _JITTER * self._rng.random())
        return min(MAX_DELAY_SECONDS, max(MIN_DELAY_SECONDS, delay))

    def _pace(self, share: Share, now: float) -> float:
        """Deliveries per second the schedule assumes (RATE_WINDOW_SECONDS, PACE_FLOOR)."""
        while self._ended and self._ended[0] < now - RATE_WINDOW_SECONDS:
            self._ended.popleft()
        served = len(self._ended) / RATE_WINDOW_SECONDS
        return max(share.rate * PACE_FLOOR, min(share.rate, served * PACE_PROBE))

    @contextmanager
    def running(self) -> Iterator[None]:
        self.size += 1
        try:
            yield
        finally:
            self.size -= 1
            self._ended.append(self._clock.time())
            if len(self._ended) > 10_000:  # bounded even if nobody asks for a deferral for a long time
                self._ended.popleft()


def pooled_share(shares: Sequence[Callable[[], Share]]) -> Callable[[], Share]:
    """The share of a pool of identities in this process: the sum of its identities' rates and slots (one identity:
    its own share, unchanged)."""
    if len(shares) == 1:
        return shares[0]

    def share() -> Share:
        parts = [part() for part in shares]
        return Share(
            rate=sum(part.rate for part in parts),
            slots=sum(part.slots for part in parts),
            members=max(part.members for part in parts),
            fallback=any(part.fallback for part in parts),
        )

    return share


def pool_key(budget_keys: Sequence[str]) -> str:
    """The backlog's key of a pool: its budget keys together (one identity: its budget key, as before pools)."""
    return "+".join(sorted(set(budget_keys)))
