"""TokenCache: memory first, the store when the cached set is too old, newest generation wins on save."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.auth.cache import TokenCache
from shared.auth.errors import StaleTokenSetError, TokenStoreUnavailableError
from shared.auth.leases import LeaseKeeper
from shared.auth.models import Grant, Lease, TokenSet, first_token_set
from shared.tokens import AuthMode
from testkit.auth_stores import MemoryRecordStore, MemoryTokenStore
from testkit.clock import ManualClock

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def token_set(generation: int, refresh_token: str, *, obtained_at: datetime = NOW) -> TokenSet:
    grant = Grant(f"at-{generation}", timedelta(hours=1), (), refresh_token)
    return first_token_set("default", AuthMode.DELEGATED, grant, obtained_at, generation)


def cache_on(store: MemoryTokenStore, clock: ManualClock | None = None) -> TokenCache:
    return TokenCache(store, "default", clock or ManualClock(NOW))


async def test_stale_writer_is_refused_and_the_newer_set_stays() -> None:
    """Generation 3 stored; writing generation 2 raises StaleTokenSetError and leaves 3."""
    store = MemoryTokenStore()
    await cache_on(store).save(token_set(3, "rt-3"))

    with pytest.raises(StaleTokenSetError):
        await cache_on(store).save(token_set(2, "rt-2"))

    assert store.peek("default") == token_set(3, "rt-3")


async def test_equal_generation_with_different_content_is_refused() -> None:
    """Two refreshers producing the same generation: the second one does not overwrite the first."""
    store = MemoryTokenStore()
    await cache_on(store).save(token_set(4, "rt-a"))
    with pytest.raises(StaleTokenSetError):
        await cache_on(store).save(token_set(4, "rt-b"))
    assert store.peek("default") == token_set(4, "rt-a")


async def test_unchanged_set_is_not_written_again() -> None:
    """Saving the stored set again performs no write."""
    store = MemoryTokenStore()
    cache = cache_on(store)
    await cache.save(token_set(1, "rt-1"))
    await cache.save(token_set(1, "rt-1"))
    assert store.writes == 1


async def test_a_saved_set_is_served_from_memory_without_reading_the_store() -> None:
    """After save(), valid_for() answers from memory and newest(max_age=) does not read the store."""
    store = MemoryTokenStore()
    cache = cache_on(store)
    await cache.save(token_set(1, "rt-1"))
    reads = store.reads

    assert cache.valid_for(timedelta(minutes=5)) == token_set(1, "rt-1")
    assert await cache.newest(max_age=timedelta(minutes=5)) == token_set(1, "rt-1")
    assert store.reads == reads


async def test_a_set_too_old_for_the_caller_sends_the_read_to_the_store() -> None:
    """valid_for() is None once the cached set no longer outlives min_validity; newest() then adopts the store's."""
    clock = ManualClock(NOW)
    store = MemoryTokenStore()
    cache = cache_on(store, clock)
    await cache.save(token_set(1, "rt-1"))
    await store.write(token_set(2, "rt-2", obtained_at=NOW + timedelta(minutes=50)))  # another process
    clock.advance(timedelta(minutes=56))

    assert cache.valid_for(timedelta(minutes=5)) is None
    assert await cache.newest(max_age=timedelta(minutes=5)) == token_set(
        2, "rt-2", obtained_at=NOW + timedelta(minutes=50)
    )


async def test_an_older_stored_set_never_replaces_a_newer_cached_one() -> None:
    """A store read returning an older generation leaves the newer cached set in place."""
    store = MemoryTokenStore()
    cache = cache_on(store)
    await store.write(token_set(1, "rt-1"))
    cache.adopt(token_set(2, "rt-2"))  # refreshed here, its write failed

    assert await cache.newest() == token_set(2, "rt-2")
    assert not cache.is_stored(token_set(2, "rt-2"))
    assert cache.is_stored(token_set(1, "rt-1"))


async def test_an_unreadable_store_raises_and_keeps_the_cached_set() -> None:
    """newest() raises TokenStoreUnavailableError; the cached set stays available as `cached`."""
    store = MemoryTokenStore()
    cache = cache_on(store)
    await cache.save(token_set(1, "rt-1"))
    store.outage = True

    with pytest.raises(TokenStoreUnavailableError):
        await cache.newest()
    assert cache.cached == token_set(1, "rt-1")


def test_unexpired_skips_the_rejected_token_and_expired_sets() -> None:
    """unexpired() never offers the access token BC rejected, nor one past its expiry."""
    clock = ManualClock(NOW)
    cache = cache_on(MemoryTokenStore(), clock)
    cache.adopt(token_set(1, "rt-1"))

    assert cache.unexpired() == token_set(1, "rt-1")
    assert cache.unexpired(besides="at-1") is None
    clock.advance(timedelta(hours=1))
    assert cache.unexpired() is None


def cache_with_board(store: MemoryTokenStore, board: LeaseKeeper) -> TokenCache:
    return TokenCache(store, "default", ManualClock(NOW), board=board)


async def test_with_a_board_the_store_is_read_only_when_the_board_names_a_newer_generation() -> None:
    """The lease row's generation tells a reader whether Key Vault holds anything newer than its cache."""
    store, board = MemoryTokenStore(), LeaseKeeper(MemoryRecordStore[Lease](), ManualClock(NOW))
    assert await board.try_acquire("default", "a", timedelta(minutes=1)) is not None
    writer, reader = cache_with_board(store, board), cache_with_board(store, board)
    await writer.save(token_set(1, "rt-1"))
    assert await reader.newest() == token_set(1, "rt-1")
    reads = store.reads

    assert await reader.newest() == token_set(1, "rt-1")  # board: 1, cached: 1
    await writer.save(token_set(2, "rt-2"))
    assert await reader.newest() == token_set(2, "rt-2")  # board: 2, cached: 1
    assert store.reads - reads == 1


async def test_with_a_board_an_older_or_equal_generation_is_refused_without_a_store_read() -> None:
    """Newest wins by the board's CAS: an equal or older generation writes nothing and reads nothing."""
    store, board = MemoryTokenStore(), LeaseKeeper(MemoryRecordStore[Lease](), ManualClock(NOW))
    assert await board.try_acquire("default", "a", timedelta(minutes=1)) is not None
    await cache_with_board(store, board).save(token_set(3, "rt-3"))
    reads = store.reads

    for stale in (token_set(3, "rt-other"), token_set(2, "rt-2")):
        with pytest.raises(StaleTokenSetError):
            await cache_with_board(store, board).save(stale)

    assert store.peek("default") == token_set(3, "rt-3")
    assert store.reads == reads


async def test_with_a_board_an_unreadable_board_sends_the_reader_to_the_store() -> None:
    """Table Storage down: the cache cannot tell, so it reads Key Vault (which may still answer)."""
    store, table = MemoryTokenStore(), MemoryRecordStore[Lease]()
    board = LeaseKeeper(table, ManualClock(NOW))
    assert await board.try_acquire("default", "a", timedelta(minutes=1)) is not None
    writer, reader = cache_with_board(store, board), cache_with_board(store, board)
    await writer.save(token_set(1, "rt-1"))
    await reader.newest()
    table.fail_every_call = True
    reads = store.reads

    assert await reader.newest() == token_set(1, "rt-1")
    assert store.reads - reads == 1
