"""A connection's identity pool in one process: which identity a job runs on, and which identities are out.

BC's limits are per identity and environment, and Microsoft's answer to more throughput is to spread the work over
several identities "in a round-robin fashion" (learn.microsoft.com/dynamics365/business-central/dev-itpro/
administration/operational-limits-online, FAQ; reference bc-webhooks-connections-identities.md, (c) C2). So a job
is assigned ONE identity when it starts and keeps it for all its requests (a batch, an ETag read-then-write, a
reconciliation): the one whose throttle share in this process has the most left (SharedThrottle.spare: free slots,
then the wait for its pace), round-robin among equals. The deliveries this process already assigned to an identity
count against it too, so jobs that start together (before any of them asked the throttle) spread as well. An
identity this process has not joined yet (or left on idle) shows its throttle's fallback share, one slot: light
load stays on the identities already in use here (joining beside other processes costs the join delay, 1.5
heartbeats + 1 s) and spills over to the others as those fill.

Health (C2, point 6): an identity whose credentials were refused or whose consent was revoked is *out*: no new job
is assigned to it, the others carry on. The pool learns it two ways: its own jobs (a run refused for authorization
calls `leave`) and the identity's health record (shared/auth/health.py, read through its TokenManager's status at
most every HEALTH_TTL_SECONDS, so another instance's or the timer's finding reaches this one). It rejoins when its
record is healthy again and, if a job here saw it refused, its token manager has got a token since (an admin's
check, the hourly timer that refreshes every identity of a pool, shared/auth/scheduled.py, or the pool's own
probe: while out, each health reading first asks its manager for that same due refresh, `refresh_if_due`, under
the identity's lease and admin-needed backoff, so it comes back where no timer runs, e.g. a tool's process). With every identity out,
the primary one is returned: the job fails for authorization and parks as it did before pools
(`waiting_for_authorization`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from shared import telemetry
from shared.auth import ConnectionStatus
from shared.auth.models import NEEDS_ADMIN
from shared.clock import Clock
from shared.errors import IntegrationError
from shared.jobs.fairness import Backlog
from shared.jobs.lanes import Lane, PoolExit

logger = logging.getLogger(__name__)

# How old an identity's health may be before a choice reads it again: an identity refused elsewhere (another
# instance, the refresh timer) leaves this process's choices within this long, and one fixed rejoins as fast.
HEALTH_TTL_SECONDS = 30.0
# Waits for the pace closer than this count as equal (round-robin decides): they differ by less than a request.
_WAIT_RESOLUTION_SECONDS = 0.01


class Headroom(Protocol):
    """What an identity's shared throttle has left in this process (SharedThrottle)."""

    def spare(self) -> tuple[int, float]:
        """Free slots (negative: more asked than held) and seconds until the next request may start."""
        ...


StatusRead = Callable[[], Awaitable[ConnectionStatus]]
# TokenManager.refresh_if_due: a refresh when the token is due, under the identity's lease and admin-needed backoff.
Probe = Callable[[], Awaitable[object]]


async def _no_probe() -> None:
    return None


@dataclass
class _Seat:
    """One identity of the pool as this process sees it."""

    lane: Lane
    headroom: Headroom
    status: StatusRead
    probe: Probe = _no_probe
    running: int = 0  # deliveries assigned to it here and not finished
    out: bool = False
    refused_at: datetime | None = None  # a job here was refused on it (rejoin needs a newer token)
    checked_at: float = -math.inf


@dataclass(frozen=True, slots=True)
class PoolMember:
    """What the pool needs of one identity: its lane, its throttle's headroom, its health, and (`probe`) how to get
    it a token again while it is out (no job asks it for one then; the timer's due refresh, from this process)."""

    lane: Lane
    headroom: Headroom
    status: StatusRead
    probe: Probe = _no_probe


@dataclass
class IdentityPool:
    """Chooses the identity of each job of one connection (module docstring)."""

    members: Sequence[PoolMember]
    clock: Clock
    _seats: list[_Seat] = field(init=False)
    _turn: int = field(default=0, init=False)
    _checking: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        if len(self.members) == 1:  # one identity: its lane as it is (a refused job parks, as before pools)
            only = self.members[0]
            self._seats = [_Seat(only.lane, only.headroom, only.status, only.probe)]
            return
        self._seats = []
        for member in self.members:
            seat = _Seat(member.lane, member.headroom, member.status, member.probe)
            seat.lane = replace(
                member.lane, backlog=_Counted(member.lane.backlog, seat), leave_pool=self._leaver(seat)
            )
            self._seats.append(seat)

    @property
    def identities(self) -> list[str]:
        """The pool's identity names, the primary one first."""
        return [seat.lane.identity for seat in self._seats]

    def is_out(self, identity: str) -> bool:
        """Whether the identity is out of the pool (no new job goes to it)."""
        return any(seat.out for seat in self._seats if seat.lane.identity == identity)

    async def choose(self) -> Lane:
        """The lane of the identity a new job runs on (module docstring)."""
        if len(self._seats) == 1:
            return self._seats[0].lane  # one identity: nothing to choose, no health to read
        await self._check_health()
        scores = {index: _score(seat) for index, seat in enumerate(self._seats) if not seat.out}
        if not scores:
            return self._seats[0].lane  # every identity out: the job parks as before pools
        best = max(scores.values())  # each read once: a wait read twice would differ (time passes)
        tied = [index for index, score in scores.items() if score == best]
        chosen = next((index for index in tied if index >= self._turn), tied[0])
        self._turn = chosen + 1
        return self._seats[chosen].lane

    def _leaver(self, seat: _Seat) -> PoolExit:
        async def leave() -> bool:
            """A job on this identity was refused for authorization: it leaves the pool; True when another
            identity is in (the job moves there rather than park)."""
            seat.refused_at = self.clock.now()
            seat.checked_at = self.clock.time()  # the record may not say so yet: no read undoes this at once
            self._mark(seat, out=True, why="a job's request was refused for authorization")
            return any(not other.out for other in self._seats)

        return leave

    async def _check_health(self) -> None:
        """Read the health of the identities whose reading is older than HEALTH_TTL_SECONDS (one reader at once)."""
        if self._checking.locked():
            return  # another choice is reading: this one goes on what is known
        async with self._checking:
            now = self.clock.time()
            stale = [seat for seat in self._seats if now - seat.checked_at >= HEALTH_TTL_SECONDS]
            readings = await asyncio.gather(*(_read(seat) for seat in stale))
            for seat, status in zip(stale, readings, strict=True):
                seat.checked_at = now
                if status is not None:
                    self._apply(seat, status)

    def _apply(self, seat: _Seat, status: ConnectionStatus) -> None:
        if status.health in NEEDS_ADMIN:
            self._mark(seat, out=True, why=f"its health is {status.health.value}")
            return
        refreshed = status.last_refresh_at
        if seat.refused_at is None or (refreshed is not None and refreshed > seat.refused_at):
            seat.refused_at = None
            self._mark(seat, out=False, why="its token manager got a token again")

    def _mark(self, seat: _Seat, *, out: bool, why: str) -> None:
        if seat.out == out:
            return
        seat.out = out
        connection, identity = seat.lane.connection.name, seat.lane.identity
        change, event = ("left", "jobs.identity_left") if out else ("rejoined", "jobs.identity_rejoined")
        telemetry.pool_identity(connection, identity, change)
        level = logging.ERROR if out else logging.INFO
        logger.log(
            level,
            "identity '%s' of connection '%s' %s the pool: %s.%s",
            identity,
            connection,
            change,
            why,
            _LEFT_NEXT_STEP.format(connection=connection) if out else "",
            extra={"event": event, "connection": connection, "identity": identity},
        )


_LEFT_NEXT_STEP = (
    " Its jobs go to the pool's other identities meanwhile; fix its credential or consent (GET /api/auth/status, "
    "POST /api/connections/{connection}/check) and it rejoins once it gets a token again"
)


def _score(seat: _Seat) -> tuple[int, float]:
    """Higher is better: free slots (less the deliveries assigned here beyond those the throttle sees), then the
    shorter wait for the pace (in _WAIT_RESOLUTION_SECONDS steps, so near-equal waits tie)."""
    free, wait = seat.headroom.spare()
    return free - seat.running, -round(wait / _WAIT_RESOLUTION_SECONDS)


async def _read(seat: _Seat) -> ConnectionStatus | None:
    """The identity's status (an identity that is out is probed first: a due refresh may bring it back); None when
    it cannot be read (what is known stays)."""
    try:
        if seat.out:
            await seat.probe()
        return await seat.status()
    except IntegrationError as exc:
        logger.debug("identity health unreadable: %s", exc)
        return None


class _Counted:
    """A lane's backlog that also counts the deliveries of its identity running here (the pool's `running`)."""

    def __init__(self, inner: Backlog, seat: _Seat) -> None:
        self._inner, self._seat = inner, seat

    async def deferral(self) -> float | None:
        return await self._inner.deferral()

    @contextmanager
    def running(self) -> Iterator[None]:
        self._seat.running += 1
        try:
            with self._inner.running():
                yield
        finally:
            self._seat.running -= 1
