"""The change log on Azurite: one log row and one queue message per entity version, read back with a cursor."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from azure.data.tables.aio import TableClient
from azure.storage.queue.aio import QueueClient

from bcjobs.changes import ChangeEvent
from shared.changes import log as log_module
from shared.changes.log import INDEX, LOG, TableChangeFeed, partition_key
from shared.clock import SystemClock
from testkit.changes import change_event
from tests.fakes.change_contract import conforming
from tests.fakes.counting import Counting

pytestmark = pytest.mark.integration


@pytest.fixture
async def clients(
    azurite_connection_string: str, unique_name: str
) -> AsyncIterator[tuple[TableClient, QueueClient]]:
    table = TableClient.from_connection_string(azurite_connection_string, unique_name)
    queue = QueueClient.from_connection_string(azurite_connection_string, unique_name)
    yield table, queue
    await table.delete_table()
    await queue.delete_queue()
    await table.close()
    await queue.close()


@pytest.fixture
async def feed(clients: tuple[TableClient, QueueClient]) -> TableChangeFeed:
    table, queue = clients
    built = TableChangeFeed(table, queue, SystemClock(), settle=timedelta(0))
    await built.ensure()
    return built


async def queued(queue: QueueClient) -> list[ChangeEvent]:
    found = [message async for message in queue.receive_messages(max_messages=32)]
    texts = [base64.b64decode(message.content) for message in found]
    return [ChangeEvent.model_validate(conforming(text) and json.loads(text)) for text in texts]


async def rows(table: TableClient, prefix: str) -> list[dict[str, object]]:
    query = "RowKey ge @low and RowKey lt @high"
    found = table.query_entities(query, parameters={"low": prefix, "high": prefix[:-1] + "\x7f"})
    return [dict(row) async for row in found]


async def test_publishing_a_version_twice_logs_and_queues_it_once(
    feed: TableChangeFeed, clients: tuple[TableClient, QueueClient]
) -> None:
    """The second publish of the same id (a repeated notification, the reconciliation) is counted as seen."""
    table, queue = clients
    event = change_event("c0a8e2b1-0000-0000-0000-000000000001")
    first = await feed.publish([event])
    second = await feed.publish([event])
    assert (first.new, first.seen, second.new, second.seen) == (1, 0, 0, 1)
    assert len(await rows(table, LOG)) == 1
    assert [e.id for e in await queued(queue)] == [event.id]


async def test_a_reader_follows_the_log_with_its_cursor(feed: TableChangeFeed) -> None:
    """Pages come oldest first; the next cursor starts after the last event read, so nothing repeats."""
    events = [change_event(f"c0a8e2b1-0000-0000-0000-00000000000{n}") for n in range(5)]
    await feed.publish(events)
    first = await feed.read("contoso", "customers", None, 3)
    rest = await feed.read("contoso", "customers", first.next, 3)
    assert [e.id for e in first.changes + rest.changes] == [e.id for e in events]
    again = await feed.read("contoso", "customers", rest.next, 3)
    assert again.changes == ()


async def test_a_logged_event_whose_send_was_lost_is_sent_by_the_next_publish(
    feed: TableChangeFeed, clients: tuple[TableClient, QueueClient]
) -> None:
    """A crash between the log write and the send leaves the index unsent: the next publish sends the same id."""
    table, queue = clients
    event = change_event("c0a8e2b1-0000-0000-0000-00000000000a")
    await feed.publish([event])
    await queued(queue)  # taken off, then the index is set back as if the send had never happened
    pk = partition_key("contoso", "customers")
    await table.update_entity({"PartitionKey": pk, "RowKey": INDEX + event.id, "Sent": False}, mode="merge")
    again = await feed.publish([event])
    assert (again.new, again.seen) == (0, 1)
    assert [e.id for e in await queued(queue)] == [event.id]
    assert len(await rows(table, LOG)) == 1


async def test_storage_calls_per_change_stay_low_for_one_and_for_a_collection(
    clients: tuple[TableClient, QueueClient],
) -> None:
    """One new event: 4 calls; 280 (a collection's expansion): about 1.2 each; 280 seen again: under 0.1 each."""
    counts: Counter[str] = Counter()
    table, queue = clients
    feed = TableChangeFeed(Counting(table, counts), Counting(queue, counts), SystemClock())  # type: ignore[arg-type]
    await feed.ensure()
    await feed.publish([change_event("c0a8e2b1-0000-0000-0000-00000000ffff")])
    single = sum(counts.values())
    counts.clear()
    many = [change_event(f"c0a8e2b1-0000-0000-0000-{n:012d}") for n in range(280)]
    assert (await feed.publish(many)).new == 280
    collection = sum(counts.values()) / 280
    counts.clear()
    assert (await feed.publish(many)).seen == 280
    seen = sum(counts.values()) / 280
    print(f"storage calls per change: single {single}, collection {collection:.2f}, seen {seen:.2f}")
    assert single == 4
    assert collection < 1.25
    assert seen < 0.1


class RacedOnce:
    """A table client that lets another publisher log `racer` just before this one's first transaction."""

    def __init__(self, inner: TableClient, other: TableChangeFeed, racer: ChangeEvent) -> None:
        self._inner = inner
        self._other = other
        self._racer: ChangeEvent | None = racer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def submit_transaction(self, operations: Any) -> Any:
        if self._racer is not None:
            racer, self._racer = self._racer, None
            await self._other.publish([racer])
        return await self._inner.submit_transaction(operations)


async def test_a_racing_publisher_of_one_version_leaves_one_row_and_the_others_still_go_out(
    feed: TableChangeFeed, clients: tuple[TableClient, QueueClient]
) -> None:
    """Between this publish's index query and its transaction another logs b: a and c are new, b is seen, and
    each of the three is logged and queued once."""
    table, queue = clients
    a, b, c = (change_event(f"c0a8e2b1-0000-0000-0000-00000000000{n}") for n in range(3))
    raced = TableChangeFeed(RacedOnce(table, feed, b), queue, SystemClock())  # type: ignore[arg-type]
    published = await raced.publish([a, b, c])
    assert (published.new, published.seen) == (2, 1)
    assert sorted(e.id for e in await queued(queue)) == sorted(e.id for e in (a, b, c))
    assert len(await rows(table, LOG)) == 3


async def test_a_page_of_large_events_is_cut_by_size_and_the_cursor_reads_on(
    feed: TableChangeFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three events of ~30 KB under a 50 KB page: two pages, every event once."""
    monkeypatch.setattr(log_module, "MAX_PAGE_BYTES", 50_000)
    events = [
        change_event(f"c0a8e2b1-0000-0000-0000-00000000000{n}", entity={"notes": "x" * 30_000})
        for n in range(3)
    ]
    await feed.publish(events)
    first = await feed.read("contoso", "customers", None, 100)
    rest = await feed.read("contoso", "customers", first.next, 100)
    assert (len(first.changes), len(rest.changes)) == (2, 1)
    assert [e.id for e in first.changes + rest.changes] == [e.id for e in events]
