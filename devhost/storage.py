"""Storage connections for triggers and output bindings, and the async SDK clients devhost shares between them.

A binding's `connection` is resolved as the host does (MicrosoftDocs azure-docs,
includes/functions-storage-queue-connections.md, "Connections"; articles/azure-functions/functions-reference.md,
"Common properties for identity-based connections"):

- a setting named exactly `AzureWebJobs<name>` or `<name>` holds a connection string (an exact match wins over
  prefixed settings); an empty name means AzureWebJobsStorage;
- otherwise settings under the prefix `<name>__` define an identity-based connection: `__queueServiceUri` (alias
  `__serviceUri`, the queueServiceUri form winning) for queues, `__tableServiceUri` for tables; with
  `__credential=managedidentity` the token comes from the managed identity (`__clientId` names a user-assigned one;
  without it the system-assigned identity is used), so devhost builds azure-identity's ManagedIdentityCredential,
  which reads App Service's IDENTITY_ENDPOINT/IDENTITY_HEADER (the sandbox serves them locally). Without
  `__credential` the host uses the developer's credentials (local development), here DefaultAzureCredential.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from devhost.errors import ConfigError

DEFAULT_CONNECTION = "AzureWebJobsStorage"
# azure-storage-queue 12.18.1 sends x-ms-version 2026-10-06, which Azurite 3.35 rejects unless started with
# --skipApiVersionCheck (github.com/Azure/Azurite, README "API Version Compatible Strategy"); pinning the newest version Azurite knows lets devhost also
# talk to an Azurite someone started by hand. Azure itself accepts this version too.
QUEUE_API_VERSION = "2025-11-05"
Service = Literal["queue", "table"]


@dataclass(frozen=True, slots=True)
class StorageConnection:
    """How to reach one binding's storage: a connection string, or service URIs with a token credential."""

    name: str
    connection_string: str | None = field(default=None, repr=False)  # holds the account key
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    managed_identity: bool = False  # __credential=managedidentity; False: DefaultAzureCredential (local dev)
    client_id: str | None = None

    def service_uri(self, service: Service) -> str:
        """The queue or table service URI of an identity-based connection."""
        uri = self.queue_service_uri if service == "queue" else self.table_service_uri
        if uri is None:
            raise ConfigError(f"connection {self.name!r} has no {self.name}__{service}ServiceUri")
        return uri

    def credential(self) -> AsyncTokenCredential:
        """A new token credential for an identity-based connection (the caller closes it)."""
        if self.managed_identity:
            return ManagedIdentityCredential(client_id=self.client_id)
        return DefaultAzureCredential()


def storage_connection(
    connection: str | None, settings: Mapping[str, str], service: Service
) -> StorageConnection:
    """The connection a binding's `connection` refers to, for a queue or table binding; ConfigError if unset."""
    name = connection or DEFAULT_CONNECTION
    for key in (f"AzureWebJobs{name}", name):
        value = settings.get(key)
        if value:
            return StorageConnection(name, connection_string=value)
    prefix = f"{name}__"
    if not any(key.startswith(prefix) for key in settings):
        raise ConfigError(f"connection setting {name!r} is not set")
    credential = settings.get(f"{prefix}credential", "").lower()
    if credential not in ("", "managedidentity"):
        raise ConfigError(f"{prefix}credential is {credential!r}; devhost supports managedidentity or unset")
    found = StorageConnection(
        name,
        queue_service_uri=settings.get(f"{prefix}queueServiceUri") or settings.get(f"{prefix}serviceUri"),
        table_service_uri=settings.get(f"{prefix}tableServiceUri"),
        managed_identity=credential == "managedidentity",
        client_id=settings.get(f"{prefix}clientId") or None,
    )
    found.service_uri(service)  # the host fails the same binding when its service URI is missing
    return found


class StorageClients:
    """One queue/table service client per connection; queues and tables created on first use."""

    def __init__(self) -> None:
        self._queue_services: dict[StorageConnection, QueueServiceClient] = {}
        self._table_services: dict[StorageConnection, TableServiceClient] = {}
        self._credentials: list[AsyncTokenCredential] = []
        self._created: set[tuple[str, StorageConnection, str]] = set()

    def _queue_service(self, connection: StorageConnection) -> QueueServiceClient:
        service = self._queue_services.get(connection)
        if service is None:
            if connection.connection_string:
                service = QueueServiceClient.from_connection_string(
                    connection.connection_string, api_version=QUEUE_API_VERSION
                )
            else:
                service = QueueServiceClient(
                    connection.service_uri("queue"),
                    self._credential(connection),
                    api_version=QUEUE_API_VERSION,
                )
            self._queue_services[connection] = service
        return service

    def _table_service(self, connection: StorageConnection) -> TableServiceClient:
        service = self._table_services.get(connection)
        if service is None:
            if connection.connection_string:
                service = TableServiceClient.from_connection_string(connection.connection_string)
            else:
                service = TableServiceClient(
                    connection.service_uri("table"), credential=self._credential(connection)
                )
            self._table_services[connection] = service
        return service

    def _credential(self, connection: StorageConnection) -> AsyncTokenCredential:
        credential = connection.credential()
        self._credentials.append(credential)
        return credential

    async def queue(self, connection: StorageConnection, name: str, **options: Any) -> QueueClient:
        """A client for the queue, which exists once this returns (the host creates trigger/output queues);
        options go to create_queue (e.g. retry_total=0 for one attempt)."""
        client = self._queue_service(connection).get_queue_client(name)
        if ("queue", connection, name) not in self._created:
            with contextlib.suppress(ResourceExistsError):
                await client.create_queue(**options)
            self._created.add(("queue", connection, name))
        return client

    async def table(self, connection: StorageConnection, name: str) -> TableClient:
        """A client for the table, which exists once this returns."""
        client = self._table_service(connection).get_table_client(name)
        if ("table", connection, name) not in self._created:
            with contextlib.suppress(ResourceExistsError):
                await client.create_table()
            self._created.add(("table", connection, name))
        return client

    async def close(self) -> None:
        """Close every client (their aiohttp sessions), then the credentials."""
        for queue_service in self._queue_services.values():
            await queue_service.close()
        for table_service in self._table_services.values():
            await table_service.close()
        for credential in self._credentials:
            await credential.close()
        self._queue_services.clear()
        self._table_services.clear()
        self._credentials.clear()
