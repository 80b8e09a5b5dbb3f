"""The status page's and the telemetry timer's sources on Azure Storage and the token lifecycle.

Queue readings: `get_queue_properties` (approximate count; bc-jobs includes delayed retries, which are invisible)
and one peek for the oldest visible message's insertion time. Job rows: one filtered query on `UpdatedAt`
selecting only the columns the page shows (a scan: the jobs table is keyed by job id, so the page reads at most
JOB_ROW_LIMIT rows of the last day). Throttle: one point read of the coordination row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from bcjobs import JOBS_QUEUE, POISON_QUEUE
from bcjobs.changes import NOTIFICATIONS_QUEUE
from bcjobs.rows import JOB_ROW
from shared.auth import ConnectionStatus, auth_services
from shared.azure_clients import queue_client, table_client
from shared.bc.factory import budget_key, throttle_config_from_settings
from shared.bc.throttle.table_store import TableCoordinationStore, partition_key_for
from shared.connections import Connection
from shared.connections.compose import registry_services
from shared.ops.snapshot import QueueReading, Sources, ThrottleRow, ThrottleUsage
from shared.settings import Settings

# bc-notifications: its oldest message is the oldest unexpanded BC notification (issue 22, point 7).
QUEUES = (JOBS_QUEUE, POISON_QUEUE, NOTIFICATIONS_QUEUE, f"{NOTIFICATIONS_QUEUE}-poison")
_COLUMNS = [
    "PartitionKey",
    "State",
    "Operation",
    "CreatedAt",
    "UpdatedAt",
    "FinishedAt",
    "Attempts",
    "Error",
    "Connection",
]


class ManagerConnection:
    """A connection's status from the process's TokenManager (None: the settings' connection)."""

    def __init__(self, settings: Settings, connection: Connection | None = None) -> None:
        self._settings = settings
        self._connection = connection

    async def status(self) -> ConnectionStatus:
        """TokenManager.status() (cache first, Key Vault when the cached token is close to expiry)."""
        services = await auth_services(self._settings)
        if self._connection is None:
            return await services.manager.status()
        return await services.for_connection(self._connection).manager.status()


async def registered_connections(settings: Settings) -> list[ManagerConnection]:
    """A status source for each enabled registered connection (the settings' one is not among them)."""
    connections = await (await registry_services(settings)).registry.all()
    return [ManagerConnection(settings, c) for c in connections if c.enabled and not c.from_settings]


class TableJobRows:
    """Rows of `{prefix}jobs` updated since a moment."""

    def __init__(self, settings: Settings, closers: list[Callable[[], Awaitable[None]]]) -> None:
        self._settings = settings
        self._closers = closers

    async def updated_since(self, since: datetime, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` rows (the page's columns only) and whether there were more."""
        owned = table_client(self._settings.storage, f"{self._settings.storage.table_prefix}jobs")
        self._closers.append(owned.close)
        rows: list[dict[str, Any]] = []
        try:
            async for entity in owned.client.query_entities(
                # job rows only: the job's audit rows share its partition (shared/jobs/audit.py)
                "RowKey eq @row and UpdatedAt ge @since",
                parameters={"row": JOB_ROW, "since": since},
                select=_COLUMNS,
                results_per_page=1000,
            ):
                if len(rows) == limit:
                    return rows, True
                rows.append(dict(entity))
        except ResourceNotFoundError:  # no job has arrived yet: the table does not exist
            return [], False
        return rows, False


class StorageQueues:
    """Queue readings from the queue service."""

    def __init__(self, settings: Settings, closers: list[Callable[[], Awaitable[None]]]) -> None:
        self._settings = settings
        self._closers = closers

    async def reading(self, name: str, now: datetime) -> QueueReading:
        """Depth and oldest visible message's age (a missing queue reads as empty)."""
        owned = queue_client(self._settings.storage, name)
        self._closers.append(owned.close)
        queue = owned.client
        try:
            properties = await queue.get_queue_properties()
            peeked = await queue.peek_messages(max_messages=1)
        except ResourceNotFoundError:
            return QueueReading(name, 0, None)
        oldest = peeked[0].inserted_on if peeked else None
        age = (now - oldest).total_seconds() if oldest is not None else None
        return QueueReading(name, int(properties.approximate_message_count or 0), age)


@dataclass
class CoordinationThrottle:
    """The throttle's coordination row and its limits, from the settings."""

    settings: Settings
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    store: TableCoordinationStore | None = None

    async def row(self, now: datetime, key: str | None = None) -> ThrottleRow | None:
        """Live members and the shared pause of budget `key` (None: the settings' connection's); None when no
        process has used that budget yet. One store (one HTTP session) serves every row of the page."""
        if self.store is None:
            self.store = TableCoordinationStore.from_settings(self.settings.storage)
            self.closers.append(self.store.close)
        read = await self.store.read(partition_key_for(key or budget_key(self.settings)))
        if read is None:
            return None
        paused = read.state.paused_until
        until = datetime.fromtimestamp(paused, UTC) if paused > now.timestamp() else None
        return ThrottleRow(len(read.state.live(now.timestamp())), until)

    def usage(self, row: ThrottleRow | None, sent_here: int, throttled_here: int) -> ThrottleUsage:
        """The configured limits with the row's figures."""
        config = throttle_config_from_settings(self.settings)
        return ThrottleUsage(
            requests=config.requests,
            window_seconds=config.window_seconds,
            safety_margin=config.safety_margin,
            max_in_flight=config.max_in_flight,
            members=row.members if row is not None else None,
            paused_until=row.paused_until if row is not None else None,
            sent_here=sent_here,
            throttled_here=throttled_here,
        )


class RegistryDirectory:
    """ConnectionDirectory: the registry's connections, their token managers' status and their budget rows."""

    def __init__(self, settings: Settings, throttle: CoordinationThrottle) -> None:
        self._settings = settings
        self._throttle = throttle
        self._rows: dict[str, asyncio.Task[ThrottleRow | None]] = {}  # budget key -> its one read of the page

    async def connections(self) -> list[Connection]:
        """Every connection, the settings' first (one query of the registry table)."""
        return await (await registry_services(self._settings)).registry.all()

    async def status(self, connection: Connection) -> ConnectionStatus:
        """The connection's TokenManager.status() (built on first use, then its cache)."""
        auth = await auth_services(self._settings)
        return await auth.for_connection(connection).manager.status()

    async def throttle_row(self, connection: Connection, now: datetime) -> ThrottleRow | None:
        """The row of the connection's budget, read once per page for every connection of the same budget key."""
        key = connection.budget_key
        if key not in self._rows:
            self._rows[key] = asyncio.ensure_future(self._throttle.row(now, key))
        return await asyncio.shield(self._rows[key])


class AzureSources:
    """The page's sources for one request; `aclose()` closes every client they opened."""

    def __init__(self, settings: Settings, queue_names: Sequence[str] = QUEUES) -> None:
        self._closers: list[Callable[[], Awaitable[None]]] = []
        throttle = CoordinationThrottle(settings, self._closers)
        self.sources = Sources(
            connection=ManagerConnection(settings),
            jobs=TableJobRows(settings, self._closers),
            queues=StorageQueues(settings, self._closers),
            throttle=throttle,
            queue_names=queue_names,
        )
        self.directory = RegistryDirectory(settings, throttle)

    async def aclose(self) -> None:
        """Close the clients (in reverse order of opening)."""
        async with AsyncExitStack() as stack:
            for close in self._closers:
                stack.push_async_callback(close)
        self._closers.clear()
