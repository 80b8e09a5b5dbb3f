"""The sandbox's per-identity limiter, driven by the sandbox clock (no sleeping)."""

from __future__ import annotations

import asyncio

import pytest

from sandbox.bc.errors import BcError
from sandbox.bc.limits import Limiter, LimitSettings
from sandbox.clock import SandboxClock

LIMITS = LimitSettings(
    rate_limit=3,
    window_seconds=10,
    max_in_flight=2,
    max_queue=1,
    queue_timeout_seconds=5,
    retry_after_on_429=True,
)


def test_window_refuses_beyond_the_limit_and_slides() -> None:
    """Three requests pass, the fourth is 429 with Retry-After, and after the window they pass again."""
    clock = SandboxClock()
    limiter = Limiter(clock)
    for _ in range(3):
        limiter.charge("app", 1, LIMITS)
    with pytest.raises(BcError) as refused:
        limiter.charge("app", 1, LIMITS)
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "10"
    limiter.charge("someone-else", 1, LIMITS)
    clock.advance(10)
    limiter.charge("app", 1, LIMITS)
    assert limiter.state("app").peak_window == 3


async def test_slots_queue_then_refuse() -> None:
    """Two run, one waits and gets the slot on release, a fourth is refused with 429."""
    limiter = Limiter(SandboxClock())
    await limiter.acquire("app", LIMITS)
    await limiter.acquire("app", LIMITS)
    queued = asyncio.create_task(limiter.acquire("app", LIMITS))
    await asyncio.sleep(0)
    with pytest.raises(BcError) as refused:
        await limiter.acquire("app", LIMITS)
    assert refused.value.status == 429
    assert not queued.done()
    limiter.release("app")
    await queued
    assert limiter.state("app").in_flight == 2
    assert limiter.state("app").peak_queued == 1
