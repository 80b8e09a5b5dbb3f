"""SharedThrottle: what every BC request of one process passes, for one identity, coordinated with every other process.

Words: the identity's *budget* is BC's limits (requests per window, requests in flight); a *slot* is one of BC's
in-flight places; this process's *share* is its part of the budget (a rate and a number of slots: `share()`,
plan.py); a *permit* lets one request go: one of the share's slots, held for the request and taken at the
share's *pace* (GCRA at its rate).

Per permit: wait while paused (a Retry-After seen by any instance) or not yet admitted, take one of this
process's slots, then wait for its pace. In the background a
heartbeat renews this process's membership in the coordination row every `heartbeat_seconds` and reads the
others' (see plan.py for why the budget is divided this way and why it is safe).

A request waiting for a slot wakes on every event that can change the share (a heartbeat, failed or not, the
heartbeat loop ending, a slot given back, close) and also at the next moment the share changes by time alone
(the view going stale, a member's admission or lease end), so no outage or dead loop can leave it waiting.

Membership follows demand: a process joins on its first request or `await_slot`, and leaves the row once nothing
has used its throttle for `idle_leave_seconds`, so the slots of an instance with no work go to instances that
have some (with more instances than BC's 5 slots, the juniors hold their deliveries in `await_slot` until then;
docs/architecture.md, "More instances than BC slots").

Priority (issue 22, point 6: the change feed never starves the jobs): `permit(low=True)` is the feed's. A low
permit is granted only while no normal permit of this process is waiting (for a slot or its pace), and at most one
low permit holds a slot at a time, so the feed's reads use at most one of the share's slots and only spare ones.
A normal permit asked while a low one waits for its pace overtakes it (the low one waits again). Waiting is
by event, like the rest: a normal permit that stops waiting wakes the low ones.

A process that has asked only low permits (the feed's own functions, on instances of their own under per-function
scaling) joins as a *feed-only member* and shares the budget's reserve with the other such members, never an
equal share (plan.py); its first normal permit or `await_slot` converts it to a normal member at once (a join of
the normal pool), and it stays one until it leaves the row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable

from shared import telemetry
from shared.bc.errors import StaleCoordinationStateError, ThrottleStorageError
from shared.bc.throttle.coordination import CoordinationState, CoordinationStore, VersionedState
from shared.bc.throttle.plan import (
    Share,
    ThrottleConfig,
    fallback_share,
    has_juniors,
    joined,
    next_in_line,
    share_of,
)
from shared.clock import Clock, SystemClock

logger = logging.getLogger(__name__)

_CAS_TRIES = 8
# After losing a compare-and-swap, wait up to this many seconds times the try number (random) before reading
# again: twenty instances starting together otherwise keep colliding, and a member whose first heartbeat fails
# sends on the fallback share (bench instances: 5 x 429 at the start of a 20-process run without it).
_CAS_BACKOFF_SECONDS = 0.05

# A state transition applied inside a compare-and-swap: (state as read, now) -> state to write.
_Change = Callable[[CoordinationState, float], CoordinationState]


class SharedThrottle:
    """Keeps one identity's requests under BC's rate and concurrency limits across processes."""

    _task: asyncio.Task[None] | None  # the heartbeat loop, while it runs
    _timer: tuple[float, asyncio.Task[None]] | None = None  # `_wake_at`'s: when it signals, its task

    def __init__(
        self,
        store: CoordinationStore,
        key: str,
        config: ThrottleConfig,
        *,
        clock: Clock | None = None,
        member_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._store, self._key, self._config = store, key, config
        self._clock = clock or SystemClock()
        self.member_id = member_id or uuid.uuid4().hex
        self._rng = rng or random.Random()  # noqa: S311 -- heartbeat jitter, not security
        self._view: VersionedState | None = None
        self._last_success: float | None = None
        self._last_known_members, self._in_flight = 1, 0
        self._changed = asyncio.Event()  # replaced (after being set) on every change a waiter may care about
        # One compare-and-swap at a time (so the view kept is the newest); one permit taking the pace at a time.
        self._cas_lock, self._pace_lock = asyncio.Lock(), asyncio.Lock()
        self._tat = 0.0  # GCRA theoretical arrival time of the next paced start
        self._local_pause, self._published_pause, self._watched_at = 0.0, 0.0, float("-inf")
        self._in_fallback, self._last_failed, self._task = False, False, None
        self._ready, self._closed = asyncio.Event(), False
        # Callers in permit() or await_slot() (while any, the member never leaves on idle); last time one ended.
        self._users, self._last_busy, self._leaving = 0, self._clock.time(), False
        # Normal permits asked, not yet through their pace; low permits holding a slot; a conversion under way.
        self._normal_waiting, self._low_in_flight, self._converting = 0, 0, False
        # Only low permits asked since joining (None: none asked).
        self._low_only: bool | None = None

    # ----- public surface ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def permit(self, *, low: bool = False) -> AsyncIterator[None]:
        """Hold a permit for the duration of a request: one of this process's slots, taken at its pace.

        `low`: the change feed's priority, granted only when no normal permit waits (module docstring).
        """
        asked, waiting = self._clock.time(), not low
        self._users += 1
        self._normal_waiting += 1 if waiting else 0
        self._low_only = low and self._low_only is not False
        try:
            await self._start()
            await (self._take_low() if low else self._normal_slot())
            try:
                if not low:
                    await self._take_pace()
                    waiting = self._stop_waiting()
                telemetry.throttle_waited(self._clock.time() - asked)
                yield
            finally:
                await self._give_slot(low)
        finally:
            if waiting:
                self._stop_waiting()
            self._user_done()

    async def await_slot(self, within: float) -> bool:
        """Whether this process holds a slot now or is given one within `within` seconds (it joins first).

        It wakes on the heartbeat that shows a senior left, or on admission. Only the pool's first junior (the
        next to get a slot) also re-reads the row every `watch_seconds` while it waits, so a slot a senior gives
        back is used within that, not up to a heartbeat later; the other juniors make no storage call.
        """
        deadline = self._clock.time() + within
        self._users += 1
        self._low_only = False
        try:
            await self._start()
            await self._convert_if_low()
            while not self.has_slot():
                remaining = deadline - self._clock.time()
                if remaining <= 0:
                    return False
                watching = self._next_in_line()
                limit = min(remaining, self._config.watch_seconds) if watching else remaining
                await self._wait_for_change(limit=limit)
                if watching and not self.has_slot():
                    await self._watch()
            return True
        finally:
            self._user_done()

    async def pause(self, seconds: float) -> None:
        """Stop every instance from sending for `seconds` (BC's Retry-After); written to the row at once."""
        until = self._clock.time() + seconds
        self._local_pause = max(self._local_pause, until)
        if until <= max(self._published_pause, self._shared_pause()) + 0.5:
            return
        self._published_pause = until
        try:
            await self._publish_pause(until)
        except ThrottleStorageError as exc:
            logger.warning("could not share a BC pause of %.1fs: %s", seconds, exc)

    def has_slot(self) -> bool:
        """Whether this process's share holds at least one slot right now (no storage call, no wait).

        A member can hold none while its view is fresh: inside its join delay (it sends only once every member
        has seen it and shrunk its share, plan.py), or as a junior while more processes are live than BC has
        in-flight slots (its deliveries wait in `await_slot` until a senior leaves). The fallback share always
        holds one slot.
        """
        return self.share().slots > 0

    def share(self) -> Share:
        """This process's share right now (the fallback share when its view is too old)."""
        now = self._clock.time()
        if self._view is None or self._last_success is None:
            return fallback_share(self._last_known_members, self._config, low=self._joins_low())
        if now - self._last_success > self._config.stale_after_seconds:
            return fallback_share(self._last_known_members, self._config, low=self._joins_low())
        return share_of(self._view.state, self.member_id, now, self._config)

    @property
    def paused_until(self) -> float:
        """Epoch seconds until which no request starts (0 when not paused)."""
        return max(self._local_pause, self._shared_pause())

    async def heartbeat(self) -> None:
        """Renew membership and refresh the view once (the background loop calls this; tests may too)."""
        try:
            await self._cas(self._renewed)
        except ThrottleStorageError as exc:
            self._note_failure(exc)
        else:
            self._note_success()
        finally:
            self._signal_change()

    async def close(self) -> None:
        """Stop the heartbeat and leave the row, so the others take over this share at once."""
        self._closed = True
        self._signal_change()
        if self._timer is not None:
            self._timer[1].cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)  # its failure was logged already
        if self._view is not None:
            with contextlib.suppress(ThrottleStorageError):
                await self._cas(self._without_me)

    def _next_in_line(self) -> bool:
        if self._view is None or self.share().fallback:
            return False
        return next_in_line(self._view.state, self.member_id, self._clock.time(), self._config)

    async def _watch(self) -> None:
        """Refresh the view with one read (no write: the heartbeat renews the lease). A newer row can only move
        a slot here after a senior left or its lease ran out, a growth every other view already allows (plan
        docstring); the view's age for the fallback still counts from the last heartbeat."""
        now = self._clock.time()
        if now - self._watched_at < self._config.watch_seconds:
            return  # every holding delivery wakes here: one read per watch interval for them all
        self._watched_at = now
        async with self._cas_lock:
            with contextlib.suppress(ThrottleStorageError):  # the next heartbeat tries again
                current = await self._store.read(self._key)
                if self._newer_with_me(current):
                    self._view = current
                    self._signal_change()

    def _newer_with_me(self, current: VersionedState | None) -> bool:
        if current is None or (self._view is not None and current.etag == self._view.etag):
            return False
        return any(member.id == self.member_id for member in current.state.members)

    # ----- feed-only members ----------------------------------------------------------------------------

    def _joins_low(self) -> bool:
        """Whether this process (re)joins as a feed-only member: only low permits so far, and BC has a slot to
        reserve for them (with a single slot they join as normal members, as before; plan.ThrottleConfig)."""
        return self._low_only is True and self._config.reserve_slots > 0

    def _listed_low(self) -> bool:
        """Whether the row as last seen lists this process as a feed-only member."""
        members = self._view.state.members if self._view is not None else ()
        return any(member.id == self.member_id and member.low for member in members)

    async def _convert_if_low(self) -> None:
        """A normal permit or hold in a feed-only member: re-join as a normal member now (one heartbeat), not at
        the next heartbeat; concurrent callers use the current share meanwhile. A failure retries next beat."""
        if self._listed_low() and not self._converting:
            self._converting = True
            try:
                await self.heartbeat()
            finally:
                self._converting = False
            logger.info("BC throttle: a job's request in a feed-only member, re-joined as a normal member")

    async def _normal_slot(self) -> None:
        await self._convert_if_low()
        await self._take_slot()

    # ----- slots and pacing -----------------------------------------------------------------------------

    def _stop_waiting(self) -> bool:
        """A normal permit no longer waits: wake the low ones that yielded to it. False: not waiting now."""
        self._normal_waiting -= 1
        self._signal_change()
        return False

    def _low_may_go(self) -> bool:
        return self._normal_waiting == 0 and self._low_in_flight == 0

    async def _take_low(self) -> None:
        """A slot and the pace for a low permit; a normal permit asked meanwhile goes first (the slot is given
        back rather than held idle while the low one would wait behind it)."""
        while True:
            await self._take_slot(low=True)
            if await self._take_pace(low=True):
                return
            await self._give_slot(low=True)

    async def _take_slot(self, low: bool = False) -> None:
        while True:
            await self._wait_until_admitted()
            # No await between the check and the increment: atomic on the event loop.
            if self._in_flight < self.share().slots and (not low or self._low_may_go()):
                self._in_flight += 1
                self._low_in_flight += 1 if low else 0
                return
            if self._blocked_until() <= self._clock.time():
                await self._wait_for_change()

    async def _give_slot(self, low: bool = False) -> None:
        self._in_flight -= 1
        self._low_in_flight -= 1 if low else 0
        self._signal_change()

    def _signal_change(self) -> None:
        """Wake every waiter (callable from sync code such as the loop's done-callback)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_for_change(self, limit: float | None = None) -> None:
        """Until something signals a change, the share may change by time alone, or `limit` s passed.

        Without `limit` (a permit waiting for a slot: up to a batch's deliveries at once, each woken by every
        slot given back) the waiter awaits the event alone and one timer shared by all signals the share's timed
        change (`_wake_at`): two tasks per waiter and wake-up cost a third of a job's throttle CPU (issue 24)."""
        at = self._next_timed_change()
        if limit is None:
            changed = self._changed
            if at is not None:
                self._wake_at(at)
            await changed.wait()
            return
        limit = min(limit, at - self._clock.time()) if at is not None else limit
        waits = {asyncio.create_task(self._changed.wait()), asyncio.create_task(self._clock.sleep(limit))}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def _wake_at(self, at: float) -> None:
        """Signal a change at `at` (one timer for every waiter: an earlier one replaces a later one)."""
        if self._timer is not None and not self._timer[1].done() and self._timer[0] <= at:
            return
        if self._timer is not None:
            self._timer[1].cancel()
        self._timer = (at, asyncio.create_task(self._signal_at(at)))

    async def _signal_at(self, at: float) -> None:
        await self._clock.sleep(at - self._clock.time())
        self._signal_change()

    def _next_timed_change(self) -> float | None:
        """The next time this member's share changes without any heartbeat (None: only events change it)."""
        if self._view is None or self._last_success is None:
            return None  # already on the fallback share
        now = self._clock.time()
        moments = [self._last_success + self._config.stale_after_seconds]
        for member in self._view.state.members:
            moments += [member.active_from, member.lease_until]
        later = [moment for moment in moments if moment > now]
        return min(later) if later else None

    async def _take_pace(self, low: bool = False) -> bool:
        """Wait for the share's pace; a low permit gives up (False) as soon as a normal one waits."""
        async with self._pace_lock:
            while True:
                await self._wait_until_admitted()
                if low and self._normal_waiting:
                    return False
                now = self._clock.time()
                share = self.share()
                if share.rate <= 0:
                    # Only while a view change is pending (e.g. demoted to a junior without slots).
                    await self._clock.sleep(self._config.heartbeat_seconds / 4)
                    continue
                interval = 1.0 / share.rate
                tat = max(self._tat, now)
                earliest = tat - (self._config.burst - 1) * interval
                if earliest <= now:
                    self._tat = tat + interval
                    return True
                await self._clock.sleep(earliest - now)

    async def _wait_until_admitted(self) -> None:
        while (blocked := self._blocked_until()) > (now := self._clock.time()):
            await self._clock.sleep(blocked - now)

    def _blocked_until(self) -> float:
        """Until when nothing may start: a pause, or this member's own admission time when it joined late."""
        until = self.paused_until
        if self._view is not None and not self.share().fallback:
            for member in self._view.state.members:
                if member.id == self.member_id:
                    until = max(until, member.active_from)
        return until

    def _shared_pause(self) -> float:
        return self._view.state.paused_until if self._view is not None else 0.0

    # ----- heartbeat ----------------------------------------------------------------------------------

    async def _start(self) -> None:
        """Start the heartbeat on first use; every caller waits for the first heartbeat's outcome."""
        while self._leaving:  # a member on its way out rejoins afresh once it has left
            await self._wait_for_change()
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._loop(), name=f"bc-throttle-{self.member_id[:8]}")
            self._task.add_done_callback(self._loop_ended)
        await self._ready.wait()

    async def _loop(self) -> None:
        try:
            await self.heartbeat()
        finally:
            self._ready.set()  # even if the first heartbeat blew up: callers then run on the fallback share
        while True:
            interval = self._config.heartbeat_seconds
            delay = (interval / 4 if self._last_failed else interval) * self._rng.uniform(0.9, 1.0)
            await self._clock.sleep(delay)
            if self._idle():
                await self._leave()
                return
            await self.heartbeat()

    def _idle(self) -> bool:
        """Unused long enough to leave: one heartbeat when the row holds juniors (members join only when they have
        work, so those are waiting for a slot), else idle_leave_seconds."""
        now = self._clock.time()
        juniors = self._view is not None and has_juniors(self._view.state, now, self._config)
        patience = self._config.heartbeat_seconds if juniors else self._config.idle_leave_seconds
        return self._users == 0 and now - self._last_busy >= patience

    def _user_done(self) -> None:
        self._users -= 1
        self._last_busy = self._clock.time()

    async def _leave(self) -> None:
        """Give this member's share back (its slots go to the next junior in line at its next watch, the others at
        their next heartbeat) and forget it."""
        idle_for = self._clock.time() - self._last_busy
        self._leaving = True
        try:
            with contextlib.suppress(ThrottleStorageError):  # its lease runs out in the row anyway
                await self._cas(self._without_me)
        finally:
            self._view, self._last_success, self._task = None, None, None
            self._low_only = None  # it rejoins as whichever kind of permit it is asked first
            self._ready = asyncio.Event()
            self._leaving = False
            self._signal_change()
        logger.info("BC throttle: idle for %.0fs, left the coordination row", idle_for)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        """A heartbeat loop that died of an unexpected error leaves the view to go stale (fallback share)."""
        if task is self._task:  # not a loop that ended by leaving: a newer one may be starting
            self._ready.set()
        self._signal_change()
        if not task.cancelled() and task.exception() is not None:
            logger.error("BC throttle heartbeat stopped; using the fallback share", exc_info=task.exception())

    def _renewed(self, state: CoordinationState, now: float) -> CoordinationState:
        live = [member for member in state.live(now) if member.id != self.member_id]
        me = joined(state, self.member_id, self._joins_low(), now, self._config)
        paused = max(state.paused_until, self._local_pause)
        return CoordinationState((*live, me), paused if paused > now else 0.0)

    def _without_me(self, state: CoordinationState, now: float) -> CoordinationState:
        others = tuple(member for member in state.live(now) if member.id != self.member_id)
        return CoordinationState(others, state.paused_until if state.paused_until > now else 0.0)

    async def _publish_pause(self, until: float) -> None:
        def paused(state: CoordinationState, now: float) -> CoordinationState:
            return CoordinationState(state.live(now), max(state.paused_until, until))

        await self._cas(paused)

    async def _cas(self, change: _Change) -> None:
        """Read (unless this member was alone last time: then try its cached ETag), change, compare-and-swap."""
        async with self._cas_lock:
            await self._cas_unlocked(change)

    async def _cas_unlocked(self, change: _Change) -> None:
        current = self._view if self._alone() else None
        for try_number in range(_CAS_TRIES):
            if current is None:
                current = await self._store.read(self._key)
            now = self._clock.time()
            state = change(current.state if current else CoordinationState(), now)
            try:
                etag = await self._store.write(self._key, state, current.etag if current else None)
            except StaleCoordinationStateError:
                current = None
                if (
                    try_number
                ):  # the first retry re-reads at once (a cached ETag gone stale is the common case)
                    await self._clock.sleep(self._rng.uniform(0, _CAS_BACKOFF_SECONDS * try_number))
                continue
            self._view = VersionedState(state, etag)
            return
        raise ThrottleStorageError(f"the coordination row kept changing ({_CAS_TRIES} tries)")

    def _alone(self) -> bool:
        if self._view is None:
            return False
        return all(member.id == self.member_id for member in self._view.state.members)

    def _note_success(self) -> None:
        self._last_failed = False
        self._last_success = self._clock.time()
        if self._view is not None:
            self._last_known_members = max(1, len(self._view.state.live(self._last_success)))
        if self._in_fallback:
            self._in_fallback = False
            logger.info("BC throttle coordination restored (%d members)", self._last_known_members)

    def _note_failure(self, exc: ThrottleStorageError) -> None:
        self._last_failed = True
        if self._in_fallback or not self.share().fallback:
            logger.info("BC throttle heartbeat failed, view still fresh: %s", exc)
            return
        self._in_fallback = True
        logger.warning(
            "BC throttle coordination unavailable, using a conservative local share (rate/%d, 1 slot): %s",
            max(self._config.fallback_instances, self._last_known_members),
            exc,
        )

    def spare(self) -> tuple[int, float]:
        """What this process's share has left right now (no storage call, no wait): its slots not held or asked
        for by a normal permit (negative: that many more are asked than it has), and the seconds until its pace
        or a pause lets the next request start. An identity pool sends a job to the identity with the most."""
        now = self._clock.time()
        share = self.share()
        free = share.slots - self._in_flight - self._normal_waiting
        if share.rate <= 0:
            return free, max(self._config.heartbeat_seconds, self._blocked_until() - now)
        earliest = max(self._tat, now) - (self._config.burst - 1) / share.rate
        return free, max(0.0, earliest - now, self._blocked_until() - now)
