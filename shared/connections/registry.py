"""The connection registry: the settings' connection plus the ones an admin registered, cached per process.

Rows live in `{BC_TABLE_PREFIX}connections`, one partition, the name as RowKey, the connection's JSON in `spec`
(no secret: a client secret goes to Key Vault and the row names the secret). Looking up a job's connection costs
no storage call in steady state: the whole table is read at most once per STALENESS (100 connections: one query
of one partition), so an admin's change reaches every process within STALENESS.

A name not in the cache is looked up again in a read that *started after the lookup began* (Table reads are
strongly consistent): a connection registered before its first job was sent is always found, however recently
this process last read the table. Such reads are at least UNKNOWN_RECHECK apart (a lookup waits for the next one),
so a flood of jobs naming an unknown connection costs one read per UNKNOWN_RECHECK, not one per job.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from azure.core.exceptions import AzureError
from azure.data.tables.aio import TableClient

from shared import table_cas
from shared.clock import Clock
from shared.connections.connection import Connection
from shared.connections.errors import (
    ConnectionDisabledError,
    ConnectionUnusableError,
    RegistryUnavailableError,
    UnknownConnectionError,
)
from shared.table_cas import TableStorageError

STALENESS_SECONDS = 30.0
UNKNOWN_RECHECK_SECONDS = 2.0
REGISTRY_TABLE_SUFFIX = "connections"
_PARTITION = "connection"


class RegistryStore(Protocol):
    """Where registered connections are kept (a Table in the product, a dict in unit tests)."""

    async def all(self) -> list[Connection]:
        """Every registered connection."""
        ...

    async def put(self, connection: Connection) -> None:
        """Create or replace one."""
        ...

    async def delete(self, name: str) -> bool:
        """Remove one; False when it was not there."""
        ...


class MemoryRegistryStore:
    """RegistryStore in a dict: unit tests and tools."""

    def __init__(self, *connections: Connection) -> None:
        self.rows = {connection.name: connection for connection in connections}
        self.reads = 0

    async def all(self) -> list[Connection]:
        self.reads += 1
        return list(self.rows.values())

    async def put(self, connection: Connection) -> None:
        self.rows[connection.name] = connection

    async def delete(self, name: str) -> bool:
        return self.rows.pop(name, None) is not None


class TableRegistryStore:
    """RegistryStore over one Table; every storage failure becomes RegistryUnavailableError."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    async def ensure(self) -> None:
        """Create the table unless it exists."""
        with _storage("create its table"):
            await table_cas.ensure_table(self._table)

    async def all(self) -> list[Connection]:
        with _storage("be read"):
            rows = await table_cas.read_partition(self._table, _PARTITION)
        return [Connection.model_validate_json(str(row.entity["spec"])) for row in rows]

    async def put(self, connection: Connection) -> None:
        entity = {"PartitionKey": _PARTITION, "RowKey": connection.name, "spec": _spec(connection)}
        with _storage("be written"):
            await self._table.upsert_entity(entity)

    async def delete(self, name: str) -> bool:
        with _storage("be written"):
            current = await table_cas.read(self._table, _PARTITION, name)
            if current is None:
                return False
            return await table_cas.delete_if_match(self._table, _PARTITION, name, current.etag)


@contextmanager
def _storage(operation: str) -> Iterator[None]:
    """Table failures as RegistryUnavailableError (upsert is the SDK's own call, not behind table_cas)."""
    try:
        yield
    except TableStorageError as exc:
        raise RegistryUnavailableError(operation, exc.cause) from exc
    except AzureError as exc:
        raise RegistryUnavailableError(operation, type(exc).__name__) from exc


def _spec(connection: Connection) -> str:
    return json.dumps(connection.model_dump(mode="json", by_alias=True, exclude={"from_settings"}))


@dataclass
class _Cache:
    connections: dict[str, Connection]
    read_at: float | None = None  # clock.time() when the last read started; None: never read


class ConnectionRegistry:
    """Resolves a connection name; the settings' connection is always there and cannot be changed here."""

    def __init__(self, settings_connection: Connection, store: RegistryStore, clock: Clock) -> None:
        self.default = settings_connection
        self._store = store
        self._clock = clock
        self._cache = _Cache({})
        self._lock = asyncio.Lock()

    async def resolve(self, name: str | None) -> Connection:
        """The enabled connection a job or request names (None: the settings' one)."""
        connection = await self.find(name)
        if connection is None:
            raise UnknownConnectionError(name or self.default.name)
        if not connection.enabled:
            raise ConnectionDisabledError(connection.name, connection.disabled_reason)
        return connection

    async def find(self, name: str | None) -> Connection | None:
        """The connection of that name, enabled or not (None: no such connection)."""
        if name is None or name == self.default.name:
            return self.default
        asked_at = self._clock.time()
        await self._refresh(max_age=STALENESS_SECONDS)
        if name not in self._cache.connections:
            await self._read_started_after(asked_at)
        return self._cache.connections.get(name)

    async def all(self) -> list[Connection]:
        """Every connection, the settings' first, then the registered ones by name (read fresh)."""
        await self._refresh(max_age=0.0)
        return [self.default, *sorted(self._cache.connections.values(), key=lambda c: c.name)]

    async def budget_keys(self) -> frozenset[str]:
        """The budget keys of the enabled connections (cached like `find`: at most STALENESS_SECONDS old)."""
        await self._refresh(max_age=STALENESS_SECONDS)
        every = (self.default, *self._cache.connections.values())
        return frozenset(connection.budget_key for connection in every if connection.enabled)

    async def put(self, connection: Connection) -> None:
        """Register or replace a connection (not the settings' one)."""
        self._refuse_default(connection.name)
        await self._store.put(connection)
        self._cache.connections[connection.name] = connection

    async def delete(self, name: str) -> bool:
        """Forget a registered connection; False when there was none."""
        self._refuse_default(name)
        removed = await self._store.delete(name)
        self._cache.connections.pop(name, None)
        return removed

    def _refuse_default(self, name: str) -> None:
        if name == self.default.name:
            raise ConnectionUnusableError(
                name,
                f"connection '{name}' is defined by the app settings (BC_CONNECTION_NAME); change it there, "
                "or register another name",
            )

    async def _refresh(self, *, max_age: float) -> None:
        """Read the table unless the cache is younger than `max_age` (0: always)."""
        if self._younger_than(max_age):
            return
        async with self._lock:  # concurrent lookups share one read
            if not self._younger_than(max_age):
                await self._read()

    async def _read_started_after(self, asked_at: float) -> None:
        """Make sure the cache comes from a read that started at or after `asked_at` (see the module docstring)."""
        async with self._lock:
            read_at = self._cache.read_at
            if read_at is not None and read_at >= asked_at:
                return  # another lookup's read started after this one began
            if read_at is not None:
                await self._clock.sleep(max(0.0, read_at + UNKNOWN_RECHECK_SECONDS - self._clock.time()))
            await self._read()

    def _younger_than(self, max_age: float) -> bool:
        read_at = self._cache.read_at
        return max_age > 0 and read_at is not None and self._clock.time() - read_at < max_age

    async def _read(self) -> None:
        started = self._clock.time()
        rows = await self._store.all()
        named = {c.name: c for c in rows if c.name != self.default.name}
        self._cache = _Cache(named, started)
