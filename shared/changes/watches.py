"""Where watches are kept: `{BC_TABLE_PREFIX}watches`, partition = connection, RowKey = watch name, column `spec`
= the watch's JSON (camelCase). Read through `CachedWatches`, like the connection registry
(shared/connections/registry.py): a connection's partition is read at most once per STALENESS_SECONDS, so the
receiver, the expansion and the timers cost no storage call per notification in steady state, and an admin's
change reaches every process within that time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from azure.data.tables.aio import TableClient

from shared import table_cas
from shared.changes.storage_errors import table_errors
from shared.changes.watch import Watch
from shared.clock import Clock

STALENESS_SECONDS = 30.0
WATCHES_TABLE_SUFFIX = "watches"
_WHAT = "watches"


class WatchStore(Protocol):
    """Where watches are kept (a Table in the product, a dict in unit tests)."""

    async def watches(self, connection: str) -> list[Watch]:
        """Every watch of `connection`."""
        ...

    async def put(self, watch: Watch) -> None:
        """Create or replace one."""
        ...

    async def delete(self, connection: str, name: str) -> bool:
        """Remove one; False when it was not there."""
        ...


@dataclass
class MemoryWatchStore:
    """WatchStore in a dict: unit tests and tools."""

    rows: dict[tuple[str, str], Watch] = field(default_factory=dict)
    reads: int = 0

    async def watches(self, connection: str) -> list[Watch]:
        self.reads += 1
        return [watch for (owner, _), watch in sorted(self.rows.items()) if owner == connection]

    async def put(self, watch: Watch) -> None:
        self.rows[(watch.connection, watch.name)] = watch

    async def delete(self, connection: str, name: str) -> bool:
        return self.rows.pop((connection, name), None) is not None


class TableWatchStore:
    """WatchStore over one Table; every storage failure becomes ChangeStorageError."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    async def ensure(self) -> None:
        """Create the table unless it exists."""
        with table_errors(_WHAT, "be created"):
            await table_cas.ensure_table(self._table)

    async def watches(self, connection: str) -> list[Watch]:
        with table_errors(_WHAT, "be read"):
            rows = await table_cas.read_partition(self._table, connection)
        found = [Watch.model_validate_json(str(row.entity["spec"])) for row in rows]
        return sorted(found, key=lambda watch: watch.name)

    async def put(self, watch: Watch) -> None:
        spec = watch.model_dump_json(by_alias=True, exclude_none=True)
        entity = {"PartitionKey": watch.connection, "RowKey": watch.name, "spec": spec}
        with table_errors(_WHAT, "be written"):
            await self._table.upsert_entity(entity)

    async def delete(self, connection: str, name: str) -> bool:
        with table_errors(_WHAT, "be written"):
            current = await table_cas.read(self._table, connection, name)
            if current is None:
                return False
            return await table_cas.delete_if_match(self._table, connection, name, current.etag)


@dataclass(frozen=True, slots=True)
class _Read:
    watches: list[Watch]
    at: float


class CachedWatches:
    """WatchDirectory over a WatchStore: each connection's watches re-read at most every STALENESS_SECONDS."""

    def __init__(self, store: WatchStore, clock: Clock, staleness: float = STALENESS_SECONDS) -> None:
        self._store = store
        self._clock = clock
        self._staleness = staleness
        self._reads: dict[str, _Read] = {}
        self._lock = asyncio.Lock()

    async def watches(self, connection: str) -> list[Watch]:
        """The connection's watches, at most STALENESS_SECONDS old (concurrent callers share one read)."""
        async with self._lock:
            cached = self._reads.get(connection)
            if cached is not None and self._clock.time() - cached.at < self._staleness:
                return list(cached.watches)
            found = await self._store.watches(connection)
            self._reads[connection] = _Read(found, self._clock.time())
            return list(found)

    async def fresh(self, connection: str) -> list[Watch]:
        """Read now (the HTTP API's listing, the subscription manager's run)."""
        self._reads.pop(connection, None)
        return await self.watches(connection)

    async def put(self, watch: Watch) -> None:
        """Create or replace a watch; this process sees it at once."""
        await self._store.put(watch)
        self._reads.pop(watch.connection, None)

    async def delete(self, connection: str, name: str) -> bool:
        """Remove a watch; False when there was none."""
        removed = await self._store.delete(connection, name)
        self._reads.pop(connection, None)
        return removed
