"""The throttle's coordination row on real Table Storage (Azurite): compare-and-swap, joins, outages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from azure.data.tables.aio import TableClient

from localworld.azurite import AzuriteEndpoints
from localworld.ports import free_port
from shared.azure_clients import table_client
from shared.bc.errors import StaleCoordinationStateError, ThrottleStorageError
from shared.bc.throttle import CoordinationState, Member, SharedThrottle, ThrottleConfig
from shared.bc.throttle.table_store import TableCoordinationStore, partition_key_for
from shared.settings import StorageSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(azurite: AzuriteEndpoints, unique_name: str) -> AsyncIterator[TableCoordinationStore]:
    """A store on a fresh table of the session's Azurite, built from settings as the app builds it."""
    table_store = TableCoordinationStore.from_settings(storage_settings(azurite), table_name=unique_name)
    yield table_store
    await table_store.close()


def storage_settings(azurite: AzuriteEndpoints, connection_string: str | None = None) -> StorageSettings:
    """The storage group of the settings, pointing at Azurite (or at `connection_string`)."""
    return StorageSettings.model_validate({"JobsStorage": connection_string or azurite.connection_string})


async def test_default_table_name_follows_the_prefix(azurite: AzuriteEndpoints) -> None:
    """Without a table name the store uses `{BC_TABLE_PREFIX}throttle`, created on first use."""
    prefix = f"t{free_port()}"
    settings = StorageSettings.model_validate(
        {"JobsStorage": azurite.connection_string, "BC_TABLE_PREFIX": prefix}
    )
    store = TableCoordinationStore.from_settings(settings)
    try:
        await store.write(partition_key_for("app-1"), CoordinationState(), None)
    finally:
        await store.close()
    async with TableClient.from_connection_string(
        azurite.connection_string, table_name=f"{prefix}throttle"
    ) as raw:
        assert [entity["RowKey"] async for entity in raw.list_entities()] == ["coordination"]


async def test_missing_row_reads_as_none(store: TableCoordinationStore) -> None:
    """Before anyone joined, the identity has no row."""
    assert await store.read(partition_key_for("app-1")) is None


async def test_written_state_reads_back_with_its_etag(store: TableCoordinationStore) -> None:
    """A created row comes back member for member, with the ETag the write returned."""
    key = partition_key_for("app/1#?")
    state = CoordinationState((Member("a", 1.5, 31.5), Member("b", 16.0, 46.0)), paused_until=12.25)
    etag = await store.write(key, state, None)
    read = await store.read(key)
    assert read is not None
    assert read.state == state
    assert read.etag == etag


async def test_stale_etag_is_refused(store: TableCoordinationStore) -> None:
    """A replace with an ETag someone else already superseded loses the race."""
    key = partition_key_for("app-1")
    first = await store.write(key, CoordinationState(), None)
    await store.write(key, CoordinationState(paused_until=5.0), first)
    with pytest.raises(StaleCoordinationStateError):
        await store.write(key, CoordinationState(paused_until=9.0), first)


async def test_second_create_loses_the_race(store: TableCoordinationStore) -> None:
    """Two processes creating the row at once: the second is told to re-read."""
    key = partition_key_for("app-1")
    await store.write(key, CoordinationState(), None)
    with pytest.raises(StaleCoordinationStateError):
        await store.write(key, CoordinationState(), None)


async def test_each_call_counts_one_transaction(store: TableCoordinationStore) -> None:
    """Table creation once, then one transaction per read or write."""
    key = partition_key_for("app-1")
    etag = await store.write(key, CoordinationState(), None)
    await store.read(key)
    await store.write(key, CoordinationState(), etag)
    assert store.transactions == 1 + 3


async def test_unreachable_storage_is_a_throttle_storage_error(azurite: AzuriteEndpoints) -> None:
    """A dead endpoint surfaces as ThrottleStorageError, which the throttle turns into its fallback share."""
    dead = azurite.connection_string.replace(str(azurite.table_port), str(free_port()))
    store = TableCoordinationStore(
        table_client(storage_settings(azurite, dead), "tdead", retry_total=0, connection_timeout=2)
    )
    try:
        with pytest.raises(ThrottleStorageError):
            await store.read(partition_key_for("app-1"))
    finally:
        await store.close()


async def test_two_throttles_share_one_row(store: TableCoordinationStore) -> None:
    """The second process to join waits its join delay, and both split the slots once it is in."""
    config = ThrottleConfig(
        requests=600, window_seconds=20, safety_margin=0.05, max_in_flight=5, heartbeat_seconds=5
    )
    key = partition_key_for("app-1")
    first = SharedThrottle(store, key, config, member_id="a")
    second = SharedThrottle(store, key, config, member_id="b")
    try:
        await first.heartbeat()
        await second.heartbeat()
        await first.heartbeat()
        assert first.share().slots == 3
        assert second.share().slots == 0  # not admitted yet
        assert second.share().fallback is False
        assert first.share().rate == pytest.approx(config.rate)  # alone until the second is admitted
        read = await store.read(key)
        assert read is not None
        joined = {member.id: member for member in read.state.members}
        assert joined["b"].active_from - joined["a"].active_from >= config.join_delay_seconds - 1
    finally:
        await first.close()
        await second.close()
    read = await store.read(key)
    assert read is not None
    assert read.state.members == ()


async def test_undecodable_row_is_a_throttle_storage_error(
    azurite: AzuriteEndpoints, unique_name: str
) -> None:
    """A row someone corrupted reads as a storage failure (fallback), not as a crash of the heartbeat."""
    store = TableCoordinationStore.from_settings(storage_settings(azurite), table_name=unique_name)
    key = partition_key_for("app-1")
    await store.write(key, CoordinationState(), None)
    async with TableClient.from_connection_string(azurite.connection_string, table_name=unique_name) as raw:
        await raw.upsert_entity({"PartitionKey": key, "RowKey": "coordination", "Members": "{not json"})
    try:
        with pytest.raises(ThrottleStorageError):
            await store.read(key)
    finally:
        await store.close()


async def test_feed_only_members_read_back_as_such(store: TableCoordinationStore) -> None:
    """Member.low survives the row: the feed-only members are listed apart from the member list."""
    key = partition_key_for("app-1")
    state = CoordinationState((Member("jobs", 1.0, 31.0), Member("feed", 2.0, 32.0, low=True)))
    await store.write(key, state, None)
    read = await store.read(key)
    assert read is not None
    assert read.state == state


async def test_a_row_of_the_previous_release_holds_normal_members(
    azurite: AzuriteEndpoints, store: TableCoordinationStore, unique_name: str
) -> None:
    """A row without the "Low" list (written before feed-only members existed) reads as normal members only."""
    key = partition_key_for("app-1")
    assert await store.read(key) is None  # creates the table
    async with TableClient.from_connection_string(azurite.connection_string, table_name=unique_name) as raw:
        await raw.create_entity(
            {"PartitionKey": key, "RowKey": "coordination", "Members": '[["a",1.0,31.0]]', "PausedUntil": 0.0}
        )
    read = await store.read(key)
    assert read is not None
    assert read.state.members == (Member("a", 1.0, 31.0),)
