"""Retention on Azurite: the sweep deletes the change log's and the id index's rows older than the retention and
the echoes past their Expires, in transactions of at most 100 per partition, at most `limit` rows a run; what is
younger stays readable and deduped."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from azure.data.tables.aio import TableClient
from azure.storage.queue.aio import QueueClient

from shared.changes.echoes import MemoryWatches, TableEchoJournal
from shared.changes.log import TableChangeFeed
from shared.changes.retention import Retention
from shared.changes.watch import Watch
from shared.clock import SystemClock
from shared.jobs.journal import Written
from testkit.changes import change_event
from testkit.clock import ShiftedClock
from tests.fakes.counting import Counting

pytestmark = pytest.mark.integration
WEEK = timedelta(days=7)


@dataclass
class Tables:
    changes: TableClient
    echoes: TableClient
    queue: QueueClient

    def feed(self, ago: timedelta) -> TableChangeFeed:
        return TableChangeFeed(self.changes, self.queue, ShiftedClock(-ago), settle=timedelta(0))

    def journal(self, ago: timedelta) -> TableEchoJournal:
        watches = MemoryWatches(
            {"contoso": [Watch(connection="contoso", name="crm", entity_set="customers")]}
        )
        return TableEchoJournal(self.echoes, watches, ShiftedClock(-ago))

    async def keys(self, table: TableClient) -> list[str]:
        return sorted([str(row["RowKey"])[:2] async for row in table.list_entities(select=["RowKey"])])


@pytest.fixture
async def tables(azurite_connection_string: str, unique_name: str) -> AsyncIterator[Tables]:
    parts = Tables(
        TableClient.from_connection_string(azurite_connection_string, unique_name + "changes"),
        TableClient.from_connection_string(azurite_connection_string, unique_name + "echoes"),
        QueueClient.from_connection_string(azurite_connection_string, unique_name),
    )
    await parts.feed(timedelta(0)).ensure()
    await parts.journal(timedelta(0)).ensure()
    yield parts
    for table in (parts.changes, parts.echoes):
        await table.delete_table()
        await table.close()
    await parts.queue.delete_queue()
    await parts.queue.close()


def _ids(count: int, start: int = 0) -> list[str]:
    return [f"c0a8e2b1-0000-0000-0000-{n:012d}" for n in range(start, start + count)]


async def test_rows_older_than_the_retention_go_and_younger_ones_stay_readable(tables: Tables) -> None:
    old = [change_event(i) for i in _ids(3)]
    young = [change_event(i) for i in _ids(2, 100)]
    await tables.feed(timedelta(days=8)).publish(old)
    await tables.feed(timedelta(days=1)).publish(young)
    run = await Retention(tables.changes, tables.echoes, SystemClock(), WEEK).sweep_changes()
    assert (run.deleted, run.failures, run.limited) == (6, (), False)
    assert await tables.keys(tables.changes) == ["c~", "c~", "i~", "i~"]
    page = await tables.feed(timedelta(0)).read("contoso", "customers", None, 10)
    assert [event.id for event in page.changes] == [event.id for event in young]
    again = await tables.feed(timedelta(0)).publish([*old[:1], *young])
    assert (again.new, again.seen) == (1, 2)  # past the retention: published once more (the documented rule)


async def test_echoes_past_their_expiry_go(tables: Tables) -> None:
    await tables.journal(timedelta(days=3)).record(
        [Written("contoso", "customers", _ids(1)[0], "v1", "job-1")]
    )
    await tables.journal(timedelta(0)).record([Written("contoso", "customers", _ids(1)[0], "v2", "job-2")])
    run = await Retention(tables.changes, tables.echoes, SystemClock(), WEEK).sweep_echoes()
    assert (run.table, run.deleted, run.failures) == ("echoes", 1, ())
    assert len(await tables.keys(tables.echoes)) == 1


async def test_deletes_go_in_transactions_of_100_per_partition_and_stop_at_the_limit(tables: Tables) -> None:
    rows: list[dict[str, Any]] = [
        {
            "PartitionKey": f"contoso~set{n % 2}",
            "RowKey": f"row{n:04d}",
            "Expires": SystemClock().now() - WEEK,
        }
        for n in range(260)
    ]
    for pk in ("contoso~set0", "contoso~set1"):
        ours = [row for row in rows if row["PartitionKey"] == pk]
        for start in range(0, len(ours), 100):
            await tables.echoes.submit_transaction([("create", row) for row in ours[start : start + 100]])
    counts: Counter[str] = Counter()
    echoes: Any = Counting(tables.echoes, counts)
    first = await Retention(tables.changes, echoes, SystemClock(), WEEK, limit=250).sweep_echoes()
    assert (first.deleted, first.limited, counts["submit_transaction"]) == (250, True, 4)  # 100+25 per set
    second = await Retention(tables.changes, echoes, SystemClock(), WEEK, limit=250).sweep_echoes()
    assert (second.deleted, second.limited) == (10, False)
    assert await tables.keys(tables.echoes) == []
