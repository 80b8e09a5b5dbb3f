"""Storage connections for triggers and output bindings, and the async SDK clients devhost shares between them.

A binding's `connection` names an app setting holding a connection string; the host also tries the
`AzureWebJobs<name>` form, and an empty name means AzureWebJobsStorage. Identity-based connections
(`<name>__queueServiceUri` + managed identity) are not supported locally.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from azure.core.exceptions import ResourceExistsError
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from devhost.errors import ConfigError

DEFAULT_CONNECTION = "AzureWebJobsStorage"
# azure-storage-queue 12.18.1 sends x-ms-version 2026-10-06, which Azurite 3.35 rejects unless started with
# --skipApiVersionCheck (github.com/Azure/Azurite, README "API Version Compatible Strategy"); pinning the newest version Azurite knows lets devhost also
# talk to an Azurite someone started by hand. Azure itself accepts this version too.
QUEUE_API_VERSION = "2025-11-05"


def connection_string(connection: str | None, settings: Mapping[str, str]) -> str:
    """The connection string a binding's `connection` refers to; ConfigError if it is unset."""
    name = connection or DEFAULT_CONNECTION
    for key in (f"AzureWebJobs{name}", name):
        value = settings.get(key)
        if value:
            return value
    if any(key.startswith(f"{name}__") for key in settings):
        raise ConfigError(
            f"connection {name!r} is identity-based ({name}__...); devhost needs a connection string in {name}"
        )
    raise ConfigError(f"connection setting {name!r} is not set")


class StorageClients:
    """One queue/table service client per connection string; queues and tables created on first use."""

    def __init__(self) -> None:
        self._queue_services: dict[str, QueueServiceClient] = {}
        self._table_services: dict[str, TableServiceClient] = {}
        self._created: set[tuple[str, str, str]] = set()

    async def queue(self, connection: str, name: str) -> QueueClient:
        """A client for the queue, which exists once this returns (the host creates trigger/output queues)."""
        service = self._queue_services.get(connection)
        if service is None:
            service = QueueServiceClient.from_connection_string(connection, api_version=QUEUE_API_VERSION)
            self._queue_services[connection] = service
        client = service.get_queue_client(name)
        if ("queue", connection, name) not in self._created:
            with contextlib.suppress(ResourceExistsError):
                await client.create_queue()
            self._created.add(("queue", connection, name))
        return client

    async def table(self, connection: str, name: str) -> TableClient:
        """A client for the table, which exists once this returns."""
        service = self._table_services.get(connection)
        if service is None:
            service = TableServiceClient.from_connection_string(connection)
            self._table_services[connection] = service
        client = service.get_table_client(name)
        if ("table", connection, name) not in self._created:
            with contextlib.suppress(ResourceExistsError):
                await client.create_table()
            self._created.add(("table", connection, name))
        return client

    async def close(self) -> None:
        """Close every client (their aiohttp sessions)."""
        for queue_service in self._queue_services.values():
            await queue_service.close()
        for table_service in self._table_services.values():
            await table_service.close()
        self._queue_services.clear()
        self._table_services.clear()
