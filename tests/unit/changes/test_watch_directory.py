"""A connection's watches: kept per connection, read through a cache of bounded staleness."""

from __future__ import annotations

from datetime import timedelta

from shared.changes.watch import Watch
from shared.changes.watches import STALENESS_SECONDS, CachedWatches, MemoryWatchStore
from testkit.clock import ManualClock


def watch(name: str, connection: str = "contoso", entity_set: str = "customers") -> Watch:
    return Watch(connection=connection, name=name, entity_set=entity_set)


async def test_watches_are_listed_per_connection_by_name() -> None:
    store = MemoryWatchStore()
    for item in (watch("b"), watch("a"), watch("a", connection="fabrikam")):
        await store.put(item)
    directory = CachedWatches(store, ManualClock())

    assert [w.name for w in await directory.watches("contoso")] == ["a", "b"]
    assert [w.connection for w in await directory.watches("fabrikam")] == ["fabrikam"]


async def test_a_cached_read_serves_until_it_is_stale() -> None:
    store, clock = MemoryWatchStore(), ManualClock()
    directory = CachedWatches(store, clock)
    await directory.watches("contoso")
    await store.put(watch("late"))  # another process's write

    assert await directory.watches("contoso") == []
    clock.advance(timedelta(seconds=STALENESS_SECONDS))
    assert [w.name for w in await directory.watches("contoso")] == ["late"]
    assert store.reads == 2


async def test_this_process_sees_its_own_put_and_delete_at_once() -> None:
    directory = CachedWatches(MemoryWatchStore(), ManualClock())
    await directory.watches("contoso")

    await directory.put(watch("orders", entity_set="salesOrders"))
    assert [w.entity_set for w in await directory.watches("contoso")] == ["salesOrders"]
    assert await directory.delete("contoso", "orders") is True
    assert await directory.watches("contoso") == []
    assert await directory.delete("contoso", "orders") is False
