"""Refresh now (POST /api/auth/refresh) coalesces: concurrent callers share one refresh, a recent one is reused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.auth import TokenRefreshFailedError
from shared.auth.timing import REFRESH_MIN_AGE
from tests.functional.auth.fakes import World


@pytest.fixture
def world() -> World:
    return World()


async def test_twenty_concurrent_refreshes_make_one_entra_call_and_one_write(world: World) -> None:
    """20 callers at once share one refresh: one Entra call, one Key Vault write, one token for all."""
    manager = world.manager()
    await world.sign_in(manager)
    writes = world.tokens.writes

    tokens = await asyncio.gather(*(manager.refresh_now() for _ in range(20)))

    assert world.entra.calls["refresh_token"] == 1
    assert world.tokens.writes == writes + 1
    assert len({token.value for token in tokens}) == 1


async def test_rapid_refreshes_reuse_a_refresh_more_recent_than_the_minimum_age(world: World) -> None:
    """A refresh 10 s after the last one returns it; once the minimum age passed, Entra is called again."""
    manager = world.manager()
    await world.sign_in(manager)
    first = await manager.refresh_now()
    world.clock.advance(timedelta(seconds=10))
    reads = world.tokens.reads

    again = await manager.refresh_now()

    assert again.value == first.value
    assert world.entra.calls["refresh_token"] == 1
    assert world.tokens.reads == reads  # served from memory: the burst does not read Key Vault either
    world.clock.advance(REFRESH_MIN_AGE)
    assert (await manager.refresh_now()).value != first.value
    assert world.entra.calls["refresh_token"] == 2


async def test_a_recent_refresh_by_another_process_is_returned_without_calling_entra(world: World) -> None:
    """Process B's refresh-now right after process A's refresh picks up A's stored set."""
    a, b = world.manager(), world.manager()
    await world.sign_in(a)
    await b.token()
    refreshed = await a.refresh_now()
    world.clock.advance(timedelta(seconds=5))

    assert (await b.refresh_now()).value == refreshed.value
    assert world.entra.calls["refresh_token"] == 1


async def test_refresh_right_after_sign_in_still_redeems_the_refresh_token(world: World) -> None:
    """A sign-in's set is not a refresh: refresh-now after it rotates the refresh token (generation 2)."""
    manager = world.manager()
    await world.sign_in(manager)

    await manager.refresh_now()

    stored = world.tokens.peek("default")
    assert stored is not None
    assert stored.generation == 2
    assert world.entra.calls["refresh_token"] == 1


async def test_concurrent_callers_share_a_failure_too(world: World) -> None:
    """Entra failing the shared refresh fails every waiting caller with that error, after one call."""
    manager = world.manager()
    await world.sign_in(manager)
    world.entra.fail_next = [TokenRefreshFailedError("Entra unreachable or failing (OSError)")]

    outcomes = await asyncio.gather(*(manager.refresh_now() for _ in range(20)), return_exceptions=True)

    assert world.entra.calls["refresh_token"] == 1
    assert all(isinstance(outcome, TokenRefreshFailedError) for outcome in outcomes)


async def test_a_cancelled_caller_does_not_cancel_the_shared_refresh(world: World) -> None:
    """One impatient caller giving up leaves the refresh running for the others."""
    manager = world.manager()
    await world.sign_in(manager)
    impatient = asyncio.create_task(manager.refresh_now())
    patient = asyncio.create_task(manager.refresh_now())
    await asyncio.sleep(0)
    impatient.cancel()

    token = await patient

    assert impatient.cancelled()
    assert world.tokens.peek("default").access_token == token.value  # type: ignore[union-attr]
    assert world.entra.calls["refresh_token"] == 1


async def test_a_refresh_whose_write_failed_is_not_reused(world: World) -> None:
    """A recent set that only lives in memory (Key Vault refused the write) is refreshed again, and saved."""
    manager = world.manager()
    await world.sign_in(manager)
    world.tokens.writes_fail = True
    await manager.refresh_now()
    world.tokens.writes_fail = False

    await manager.refresh_now()

    stored = world.tokens.peek("default")
    assert stored is not None
    assert stored.generation == 3
