"""The lease row's stored generation: one Key Vault read per token lifetime per process, and no older token set
ever overwrites a newer one (two or three managers on shared in-memory stores, interleaved)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from shared.auth.models import Grant
from shared.auth.timing import LEASE_TTL
from tests.functional.auth.fakes import FakeEntra, World


class GatedEntra(FakeEntra):
    """Holds the first refresh until `release` is set (a slow Entra answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.held = asyncio.Event()
        self._first = True

    async def redeem_refresh_token(self, refresh_token: str) -> Grant:
        if self._first:
            self._first = False
            self.held.set()
            await self.release.wait()
        return await super().redeem_refresh_token(refresh_token)


async def test_three_processes_read_the_store_at_most_once_per_lifetime_each() -> None:
    """Five lifetimes, three processes due at once: one refresh each time, two store reads (the two processes
    that did not refresh pick its set up), the same token everywhere."""
    world = World()
    await world.sign_in(world.manager())
    managers = [world.manager() for _ in range(3)]
    await asyncio.gather(*(m.token() for m in managers))
    reads = world.tokens.reads

    for _ in range(5):
        world.clock.advance(timedelta(minutes=56))
        tokens = await asyncio.gather(*(m.token() for m in managers))
        assert len({t.value for t in tokens}) == 1

    assert world.entra.calls["refresh_token"] == 5
    assert world.tokens.reads - reads <= 5 * 2


async def test_a_holder_whose_lease_expired_during_its_refresh_writes_nothing() -> None:
    """A is slow at Entra past the lease TTL; B takes the lease, refreshes and saves; A's set never overwrites
    B's, and A's next read picks B's set up."""
    entra = GatedEntra()
    world = World(entra=entra)
    await world.sign_in(world.manager())
    slow, fast = world.manager(), world.manager()
    await slow.token()
    await fast.token()
    slow_refresh = asyncio.ensure_future(slow.refresh_now(min_age=timedelta(0)))
    await entra.held.wait()
    world.clock.advance(LEASE_TTL + timedelta(seconds=1))

    newer = await fast.refresh_now(min_age=timedelta(0))
    entra.release.set()
    await slow_refresh

    stored = world.tokens.peek("default")
    assert stored is not None
    assert stored.access_token == newer.value
    world.clock.advance(timedelta(minutes=56))
    assert (await slow.token()).value != newer.value  # due again: a refresh from B's set, saved
    stored = world.tokens.peek("default")
    assert stored is not None
    assert stored.generation > 2


async def test_after_a_claimed_write_failed_the_next_refresh_numbers_above_it() -> None:
    """A claims a generation but Key Vault refuses the write (A serves it from memory); B's refresh takes a
    generation above the claimed one, saves it, and A adopts B's set on its next store read."""
    world = World()
    await world.sign_in(world.manager())
    first, second = world.manager(), world.manager()
    await first.token()
    await second.token()
    world.tokens.writes_fail = True
    in_memory = await first.refresh_now(min_age=timedelta(0))
    world.tokens.writes_fail = False

    saved = await second.refresh_now(min_age=timedelta(0))

    stored = world.tokens.peek("default")
    assert stored is not None
    assert stored.access_token == saved.value
    assert stored.generation == 3
    world.clock.advance(timedelta(minutes=56))
    assert (await first.token()).value != in_memory.value
