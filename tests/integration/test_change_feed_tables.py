"""The change feed's Table stores on Azurite (real SDK): watches, subscription rows, watermarks and known ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from azure.data.tables.aio import TableClient

from shared.changes.storage_errors import ChangeStorageError
from shared.changes.subscriptions import SubscriptionRecord, SubscriptionUsage, TableSubscriptionStore
from shared.changes.watch import Watch
from shared.changes.watches import TableWatchStore
from shared.changes.watermarks import TableWatermarkStore, Watermark

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


@pytest.fixture
async def table(azurite_connection_string: str, unique_name: str) -> AsyncIterator[TableClient]:
    client = TableClient.from_connection_string(azurite_connection_string, unique_name)
    yield client
    await client.delete_table()
    await client.close()


async def test_watches_round_trip_per_connection(table: TableClient) -> None:
    store = TableWatchStore(table)
    await store.ensure()
    watch = Watch(
        connection="contoso", name="orders", entity_set="salesOrders", company_id=UUID(int=7),
        include_data=True, select=("number", "status"),
    )  # fmt: skip
    await store.put(watch)
    await store.put(Watch(connection="fabrikam", name="orders", entity_set="items"))

    assert await store.watches("contoso") == [watch]
    assert await store.delete("contoso", "orders") is True
    assert await store.delete("contoso", "orders") is False
    assert await store.watches("contoso") == []


async def test_subscription_rows_round_trip_and_are_found_by_id(table: TableClient) -> None:
    store = TableSubscriptionStore(table)
    await store.ensure()
    record = SubscriptionRecord(
        "contoso", "0123456789abcdef0123456789abcdef", "customers", UUID(int=1), "customers",
        f"/api/v2.0/companies({UUID(int=1)})/customers", NOW + timedelta(days=3), 'W/"JzE7Jw=="', NOW,
    )  # fmt: skip
    await store.put(record)

    usage = SubscriptionUsage("contoso", 1, 5, 200, NOW)
    await store.note_usage(usage)

    assert await store.find("contoso", record.subscription_id) == record
    assert await store.find("fabrikam", record.subscription_id) is None
    assert await store.all("contoso") == [record]
    assert await store.everything() == ([record], [usage])
    await store.delete("contoso", record.subscription_id)
    await store.delete("contoso", record.subscription_id)  # gone already: nothing
    assert await store.all("contoso") == []


async def test_watermarks_and_known_ids_round_trip_across_transactions(table: TableClient) -> None:
    store = TableWatermarkStore(table)
    await store.ensure()
    mark = Watermark("contoso", "customers", NOW, NOW - timedelta(hours=1), NOW)
    ids = [str(UUID(int=index)) for index in range(250)]  # more than one 100-row transaction

    await store.put(mark)
    await store.add_ids("contoso", "customers", ids)
    await store.add_ids("contoso", "customers", ids[:10])  # again: upserts
    await store.remove_ids("contoso", "customers", ids[:5])

    assert await store.mark("contoso", "customers") == mark
    assert await store.known_ids("contoso", "customers") == set(ids[5:])
    assert await store.known_ids("contoso", "items") == set()
    await store.forget("contoso", "customers")
    assert await store.mark("contoso", "customers") is None
    assert await store.known_ids("contoso", "customers") == set()


async def test_storage_failure_names_the_table_and_the_fix(azurite_connection_string: str) -> None:
    broken = TableClient.from_connection_string(
        azurite_connection_string.replace("127.0.0.1", "127.0.0.2").replace("localhost", "127.0.0.2"), "nowhere",
        retry_total=0, connection_timeout=1,
    )  # fmt: skip
    try:
        with pytest.raises(ChangeStorageError, match="BC_TABLE_PREFIX"):
            await TableWatchStore(broken).watches("contoso")
    finally:
        await broken.close()


async def test_the_status_page_reads_no_subscriptions_before_the_table_exists(table: TableClient) -> None:
    await table.create_table()
    await table.delete_table()
    assert await TableSubscriptionStore(table).everything() == ([], [])
