"""Pending sign-ins: one use, 10 minutes, tombstones purged."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.auth.errors import SignInStateExpiredError, SignInStateReplayedError, SignInStateUnknownError
from shared.auth.models import PendingSignIn, SignInStart
from shared.auth.sign_in import PendingSignIns
from testkit.auth_stores import MemoryRecordStore
from testkit.clock import ManualClock


def book() -> tuple[PendingSignIns, MemoryRecordStore[PendingSignIn], ManualClock]:
    clock = ManualClock()
    store = MemoryRecordStore[PendingSignIn]()
    return PendingSignIns(store, clock), store, clock


async def test_a_state_is_consumed_once_and_the_flow_is_wiped() -> None:
    """The first consume returns the flow; the stored tombstone has no flow; a second consume is a replay."""
    logins, store, _ = book()
    await logins.remember(SignInStart("https://entra/authorize", "s1", '{"code_verifier": "v"}'))

    pending = await logins.consume("s1")

    assert pending.flow == '{"code_verifier": "v"}'
    tombstone = await store.get("s1")
    assert tombstone is not None
    assert tombstone.value.flow == ""
    assert tombstone.value.consumed_at is not None
    with pytest.raises(SignInStateReplayedError):
        await logins.consume("s1")


async def test_state_older_than_ten_minutes_is_expired() -> None:
    """Ten minutes after the start the state is refused."""
    logins, _, clock = book()
    await logins.remember(SignInStart("u", "s1", "{}"))
    clock.advance(timedelta(minutes=10))
    with pytest.raises(SignInStateExpiredError):
        await logins.consume("s1")


async def test_concurrent_consumers_cannot_both_win() -> None:
    """If the row changed between read and consume (a racing callback), the loser gets a replay error."""
    logins, store, _ = book()
    await logins.remember(SignInStart("u", "s1", "{}"))
    entry = await store.get("s1")
    assert entry is not None
    await store.replace("s1", entry.value, entry.etag)  # another callback touched it first

    original_get = store.get

    async def stale_get(key: str):
        return entry if key == "s1" else await original_get(key)

    store.get = stale_get  # type: ignore[method-assign]
    with pytest.raises(SignInStateReplayedError):
        await logins.consume("s1")


async def test_purge_deletes_expired_pending_entries_at_once_and_tombstones_after_an_hour() -> None:
    """An expired sign-in holding its flow goes at once; a tombstone stays an hour past expiry; unexpired stays."""
    logins, store, clock = book()
    await logins.remember(SignInStart("u", "abandoned", '{"code_verifier": "v"}'))
    await logins.remember(SignInStart("u", "used", "{}"))
    await logins.consume("used")
    clock.advance(timedelta(minutes=11))
    await logins.remember(SignInStart("u", "fresh", "{}"))

    assert await logins.purge() == 1
    assert await store.get("abandoned") is None
    assert await store.get("fresh") is not None
    with pytest.raises(SignInStateReplayedError):
        await logins.consume("used")
    clock.advance(timedelta(hours=1))
    assert await logins.purge() == 2
    assert await store.scan() == []


async def test_purge_deletes_only_long_expired_entries() -> None:
    """Entries expired over an hour ago go; recent ones stay."""
    logins, store, clock = book()
    await logins.remember(SignInStart("u", "old", "{}"))
    clock.advance(timedelta(hours=2))
    await logins.remember(SignInStart("u", "new", "{}"))

    assert await logins.purge() == 1
    assert await store.get("old") is None
    with pytest.raises(SignInStateUnknownError):
        await logins.consume("old")
    assert await store.get("new") is not None
