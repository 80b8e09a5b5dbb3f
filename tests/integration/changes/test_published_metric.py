"""bc.changes.published on Azurite: each version counted once, by its origin, when it is first published."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from azure.data.tables.aio import TableClient
from azure.storage.queue.aio import QueueClient

from bcjobs.changes import ChangeOrigin
from shared.changes.log import TableChangeFeed
from testkit.changes import change_event
from testkit.clock import ManualClock
from tests.fakes.telemetry import capture

pytestmark = pytest.mark.integration


@pytest.fixture
async def feed(azurite_connection_string: str, unique_name: str) -> AsyncIterator[TableChangeFeed]:
    table = TableClient.from_connection_string(azurite_connection_string, unique_name + "changes")
    queue = QueueClient.from_connection_string(azurite_connection_string, unique_name)
    log = TableChangeFeed(table, queue, ManualClock(), settle=timedelta(0))
    await log.ensure()
    yield log
    await table.delete_table()
    await queue.delete_queue()
    await table.close()
    await queue.close()


async def test_published_events_are_counted_by_origin_once(feed: TableChangeFeed) -> None:
    webhook = [change_event(f"c0a8e2b1-0000-0000-0000-00000000000{n}") for n in range(3)]
    healed = change_event("c0a8e2b1-0000-0000-0000-000000000009", origin=ChangeOrigin.RECONCILIATION)
    with capture(ManualClock()) as captured:
        await feed.publish([*webhook, healed])
        await feed.publish(webhook)  # seen: not counted again
        assert captured.total("bc.changes.published", origin="webhook", connection="contoso") == 3
        assert captured.total("bc.changes.published", origin="reconciliation") == 1
