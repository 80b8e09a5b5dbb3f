"""The change feed's integration fixtures: function_app.py on devhost (the auth tier's `app_host`, with its own
table prefix on Azurite and the sandbox), and a publisher writing into that app's change log."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import pytest
from azure.data.tables.aio import TableClient
from azure.storage.queue.aio import QueueClient

from bcjobs.changes import CHANGES_QUEUE, ChangeEvent
from shared.changes.feed import Published
from shared.changes.log import TableChangeFeed, changes_table_name
from testkit.clock import ShiftedClock
from tests.integration.auth.conftest import AppHost, app_host, audit, auth_env  # noqa: F401 - fixtures

__all__ = ["AppHost", "Publisher"]


@dataclass
class Publisher:
    """Publishes into the app's change log as the expansion does; by default a minute in the past (past the
    read's settle time, so a reader sees the events at once)."""

    connection_string: str
    prefix: str
    connection: str  # the app's own (BC_CONNECTION_NAME): the API refuses a connection it does not know

    def publish(self, events: Sequence[ChangeEvent], ago: timedelta = timedelta(minutes=1)) -> Published:
        return asyncio.run(self._publish(events, ago))

    async def _publish(self, events: Sequence[ChangeEvent], ago: timedelta) -> Published:
        table_name = changes_table_name(self.prefix)
        async with (
            TableClient.from_connection_string(self.connection_string, table_name) as table,
            QueueClient.from_connection_string(self.connection_string, CHANGES_QUEUE) as queue,
        ):
            feed = TableChangeFeed(table, queue, ShiftedClock(-ago))
            await feed.ensure()
            return await feed.publish(events)


@pytest.fixture
def publisher(auth_env: dict[str, str]) -> Publisher:  # noqa: F811 - the imported fixture
    """A publisher into the app host's change log."""
    return Publisher(auth_env["JobsStorage"], auth_env["BC_TABLE_PREFIX"], auth_env["BC_CONNECTION_NAME"])
