"""BC's per-identity limits: a sliding window of requests and 5 in flight with 95 queued
(learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/operational-limits-online).

Beyond the window or the queue: 429 Application_TooManyRequests ("Too many requests reached. Actual (n). Maximum
(m)." observed, not documented); a request that waits in the queue past the (scaled) 8 minutes gets 503.
Everything here runs on the server's event loop.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field

from sandbox.bc.errors import BcError
from sandbox.clock import SandboxClock


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """The limits in force (a knob may replace them at run time)."""

    rate_limit: int
    window_seconds: float  # already divided by the time scale
    max_in_flight: int
    max_queue: int
    queue_timeout_seconds: float
    retry_after_on_429: bool


@dataclass(slots=True)
class IdentityState:
    """One identity's window, slots and queue, and its peaks."""

    window: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    peak_in_flight: int = 0
    peak_window: int = 0
    peak_queued: int = 0


def too_many(actual: int, maximum: int, retry_after: int | None) -> BcError:
    """BC's 429 (no CorrelationId in the observed body)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return BcError(
        429,
        "Application_TooManyRequests",
        f"Too many requests reached. Actual ({actual}). Maximum ({maximum}).",
        headers,
        correlation=False,
    )


class Limiter:
    """Admits or refuses requests per identity; `release` hands the slot to the next queued request."""

    def __init__(self, clock: SandboxClock) -> None:
        self._clock = clock
        self.identities: dict[str, IdentityState] = {}

    def state(self, identity: str) -> IdentityState:
        """The identity's state, created on first use."""
        return self.identities.setdefault(identity, IdentityState())

    def charge(self, identity: str, weight: int, limits: LimitSettings) -> None:
        """Count a request in the sliding window, or raise 429 if it would exceed the limit."""
        state = self.state(identity)
        now = self._clock.monotonic()
        horizon = now - limits.window_seconds
        while state.window and state.window[0] <= horizon:
            state.window.popleft()
        if len(state.window) + weight > limits.rate_limit:
            retry_after = None
            if limits.retry_after_on_429:
                oldest = state.window[0] if state.window else now
                retry_after = max(1, math.ceil(oldest + limits.window_seconds - now))
            raise too_many(len(state.window) + weight, limits.rate_limit, retry_after)
        state.window.extend([now] * weight)
        state.peak_window = max(state.peak_window, len(state.window))

    async def acquire(self, identity: str, limits: LimitSettings) -> None:
        """Take an in-flight slot, waiting in the queue if all are busy; 429 when the queue is full, 503 on timeout."""
        state = self.state(identity)
        if state.in_flight < limits.max_in_flight and not state.waiters:
            self._occupy(state)
            return
        if len(state.waiters) >= limits.max_queue:
            self.refund(identity, 1)  # refused at the door: it does not use up the window
            connections = state.in_flight + len(state.waiters) + 1
            raise too_many(
                connections, limits.max_in_flight + limits.max_queue, 1 if limits.retry_after_on_429 else None
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiters.append(waiter)
        state.peak_queued = max(state.peak_queued, len(state.waiters))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), limits.queue_timeout_seconds)
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # the slot arrived just as the timer fired
            waiter.cancel()
            raise BcError(
                503, "ServiceUnavailable", "The request timed out in the queue.", {"Retry-After": "5"}
            ) from None
        finally:
            if waiter in state.waiters:
                state.waiters.remove(waiter)

    def refund(self, identity: str, weight: int) -> None:
        """Take back the newest `weight` window entries (the request was refused, not served)."""
        window = self.state(identity).window
        for _ in range(min(weight, len(window))):
            window.pop()

    def release(self, identity: str) -> None:
        """Free a slot: give it to the oldest waiting request, if any."""
        state = self.state(identity)
        while state.waiters:
            waiter = state.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes over without being freed
                return
        state.in_flight -= 1

    def _occupy(self, state: IdentityState) -> None:
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)

    def clear_windows(self) -> None:
        """Forget windows and peaks (in-flight requests keep their slots)."""
        for state in self.identities.values():
            state.window.clear()
            state.peak_in_flight = state.in_flight
            state.peak_window = 0
            state.peak_queued = 0
