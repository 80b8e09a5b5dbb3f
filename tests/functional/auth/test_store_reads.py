"""Key Vault reads stay rare: callers queued behind a refresh take its token, an unreachable store is not retried
by every caller."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.functional.auth.fakes import World


async def test_callers_queued_behind_a_refresh_take_its_token_without_reading_the_store() -> None:
    """20 concurrent callers of a process whose token is due: one refresh and no store read at all (the lease
    row names no generation newer than the cached one; newest-wins is the lease row's CAS), none per caller."""
    world = World()
    await world.sign_in(world.manager())
    manager = world.manager()
    await manager.token()
    world.clock.advance(timedelta(minutes=56))
    reads_before = world.tokens.reads

    tokens = await asyncio.gather(*(manager.token() for _ in range(20)))

    assert len({token.value for token in tokens}) == 1
    assert world.entra.calls["refresh_token"] == 1
    assert world.tokens.reads - reads_before == 0


async def test_an_unreachable_store_is_tried_once_per_backoff_while_the_cached_token_serves() -> None:
    """Store down, cached token due but valid, another process stored a newer set: the first caller's read
    fails, the next callers get the cached token without a read until the backoff ends, then one caller tries
    again."""
    world = World()
    await world.sign_in(world.manager())
    manager = world.manager()
    cached = await manager.token()
    world.clock.advance(timedelta(minutes=1))
    await world.manager().refresh_now(min_age=timedelta(0))  # the lease row now names a newer generation
    world.clock.advance(timedelta(minutes=55))
    world.tokens.outage = True
    attempts_before = world.tokens.read_attempts

    served = [await manager.token() for _ in range(10)]
    world.clock.advance(timedelta(seconds=6))  # past the first backoff (5 s, jitter 10 %)
    served.append(await manager.token())

    assert {token.value for token in served} == {cached.value}
    assert world.tokens.read_attempts - attempts_before == 2
    assert world.entra.calls["refresh_token"] == 1  # the other process's
