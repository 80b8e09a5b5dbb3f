"""Table Storage records on Azurite with the real aio SDK: auto-created table, ETag CAS, lease, sign-ins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables.aio import TableClient

from shared.auth.errors import SignInStateReplayedError
from shared.auth.leases import LeaseKeeper
from shared.auth.models import ConnectionRecord, Health, Lease, SignInStart
from shared.auth.sign_in import PendingSignIns
from shared.auth.tables import LeaseCodec, RecordCodec, SignInCodec, TableRecordStore
from shared.clock import SystemClock

pytestmark = pytest.mark.integration


@pytest.fixture
async def table(azurite_connection_string: str, unique_name: str) -> AsyncIterator[TableClient]:
    client = TableClient.from_connection_string(azurite_connection_string, unique_name)
    try:
        yield client
    finally:
        await client.delete_table()
        await client.close()


async def test_missing_table_reads_empty_and_is_created_by_the_first_write(table: TableClient) -> None:
    """get on a table that does not exist yet is None; create makes the table and the row."""
    store = TableRecordStore(table, "state-default", RecordCodec())
    assert await store.get("default") is None
    assert await store.scan() == []

    created = await store.create(
        "default", ConnectionRecord("default", Health.DEGRADED, consecutive_failures=2)
    )

    assert created is not None
    read = await store.get("default")
    assert read is not None
    assert read.value == ConnectionRecord("default", Health.DEGRADED, consecutive_failures=2)
    assert read.etag == created.etag


async def test_stale_etag_is_refused_for_replace_and_delete(table: TableClient) -> None:
    """A replace or delete guarded by an outdated ETag changes nothing."""
    store = TableRecordStore(table, "state-default", RecordCodec())
    first = await store.create("default", ConnectionRecord("default"))
    assert first is not None
    second = await store.replace("default", ConnectionRecord("default", Health.DEGRADED), first.etag)
    assert second is not None

    assert await store.replace("default", ConnectionRecord("default", Health.OK), first.etag) is None
    assert not await store.delete("default", first.etag)
    assert await store.create("default", ConnectionRecord("default")) is None
    current = await store.get("default")
    assert current is not None
    assert current.value.health is Health.DEGRADED


async def test_lease_on_azurite_has_one_holder_and_frees_on_release(table: TableClient) -> None:
    """Two holders race for the lease: one wins; after release the other gets it."""
    leases = LeaseKeeper(TableRecordStore[Lease](table, "lease-default", LeaseCodec()), SystemClock())
    first = await leases.try_acquire("default", "a", timedelta(seconds=60))
    assert first is not None
    assert await leases.try_acquire("default", "b", timedelta(seconds=60)) is None
    assert await leases.renew(first, timedelta(seconds=60)) is not None

    await leases.release(first)

    assert await leases.try_acquire("default", "b", timedelta(seconds=60)) is not None


async def test_sign_in_state_is_consumed_once_on_azurite(table: TableClient) -> None:
    """The first consume returns the flow; the second is a replay; the stored row no longer holds the flow."""
    store = TableRecordStore(table, "login-default", SignInCodec())
    logins = PendingSignIns(store, SystemClock())
    await logins.remember(SignInStart("https://entra/authorize", "state-abc", '{"code_verifier": "v"}'))

    assert (await logins.consume("state-abc")).flow == '{"code_verifier": "v"}'
    with pytest.raises(SignInStateReplayedError):
        await logins.consume("state-abc")
    row = await table.get_entity("login-default", "state-abc")
    assert row["flow"] == ""
    assert datetime.fromisoformat(row["consumed_at"]) <= datetime.now(UTC)
