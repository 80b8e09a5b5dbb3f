"""PerLoop: one service set per running event loop, built once, closed when its key changes or on request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from shared.per_loop import PerLoop


@dataclass
class Services:
    key: str
    closed: bool = False

    async def aclose(self) -> None:
        self.closed = True


class Builder:
    """Builds Services, yielding to the loop first so concurrent first calls really overlap."""

    def __init__(self) -> None:
        self.built: list[Services] = []

    async def __call__(self, key: str) -> Services:
        await asyncio.sleep(0)
        services = Services(key)
        self.built.append(services)
        return services


async def test_concurrent_first_calls_build_one_set() -> None:
    """Two callers racing on a fresh loop share what the one build made."""
    build = Builder()
    per_loop = PerLoop(build)
    first, second = await asyncio.gather(per_loop.get("a"), per_loop.get("a"))
    assert first is second
    assert len(build.built) == 1


async def test_a_different_key_closes_the_old_set_before_building_the_new_one() -> None:
    """Changed settings: the old clients are closed, the new set is kept for the new key."""
    build = Builder()
    per_loop = PerLoop(build)
    old = await per_loop.get("a")
    new = await per_loop.get("b")
    assert (old.closed, new.closed, new.key) == (True, False, "b")
    assert await per_loop.get("b") is new


async def test_close_closes_and_forgets_the_running_loops_set() -> None:
    """The shutdown hook: closed once, and the next call builds afresh."""
    build = Builder()
    per_loop = PerLoop(build)
    old = await per_loop.get("a")
    await per_loop.close()
    await per_loop.close()  # nothing left: no error
    assert old.closed
    assert await per_loop.get("a") is not old


def test_each_event_loop_gets_its_own_set() -> None:
    """aio clients are bound to their loop: a second loop builds its own."""
    build = Builder()
    per_loop = PerLoop(build)
    first = asyncio.run(per_loop.get("a"))
    second = asyncio.run(per_loop.get("a"))
    assert first is not second
    assert not first.closed  # another loop's set is not this loop's to close


async def test_a_built_set_is_returned_while_another_caller_holds_the_build_lock() -> None:
    """Once built, a call with the same key answers at once: it does not queue behind a rebuild's lock."""
    build = Builder()
    per_loop = PerLoop(build)
    first = await per_loop.get("a")
    lock = per_loop._building[asyncio.get_running_loop()]
    async with lock:
        assert await asyncio.wait_for(per_loop.get("a"), timeout=5) is first
    assert len(build.built) == 1
