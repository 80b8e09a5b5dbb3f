"""Reconciliation's memory per watch: how far it has read (the watermark) and which entity ids the feed knows.

Table `{BC_TABLE_PREFIX}watermarks`: the mark of a watch is partition = connection, RowKey = watch name
(`ModifiedAfter`, `DeletesCheckedAt`, `ReconciledAt`, `Whole`); the ids it has seen are partition =
`{connection}~{watch}`, one row per entity id (a first version of "the ids the feed has seen": reconciliation reads
every version whatever path published it first, so it sees every id). Deletes no notification reported are the
known ids BC no longer has. For a watch whose entity set has no `lastModifiedDateTime` (`Watermark.whole`) each id
row also keeps `Version`: the change id (bcjobs.changes.change_id) of the version reconciliation last saw, so a
whole read publishes only the versions that differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from azure.data.tables.aio import TableClient

from shared import table_cas
from shared.changes.storage_errors import table_errors
from shared.clock import iso_utc, parse_iso_utc

WATERMARKS_TABLE_SUFFIX = "watermarks"
_WHAT = "watermarks"
_TRANSACTION_ROWS = 100  # Table storage: at most 100 operations per transaction, one partition


@dataclass(frozen=True, slots=True)
class Watermark:
    """Where a watch's reconciliation stands: BC's newest lastModifiedDateTime it published up to, and when it last
    compared ids (None: never)."""

    connection: str
    watch: str
    modified_after: datetime | None = None
    deletes_checked_at: datetime | None = None
    reconciled_at: datetime | None = None
    whole: bool = False  # the entity set has no lastModifiedDateTime: each reconciliation reads all of it


class WatermarkStore(Protocol):
    """Marks and known ids per watch."""

    async def mark(self, connection: str, watch: str) -> Watermark | None: ...

    async def put(self, mark: Watermark) -> None: ...

    async def known_ids(self, connection: str, watch: str) -> set[str]: ...

    async def add_ids(self, connection: str, watch: str, ids: Iterable[str]) -> None: ...

    async def remove_ids(self, connection: str, watch: str, ids: Iterable[str]) -> None: ...

    async def known_versions(self, connection: str, watch: str) -> dict[str, str]:
        """Each known id's last version seen by a whole read ("" when none was recorded)."""
        ...

    async def put_versions(self, connection: str, watch: str, versions: Mapping[str, str]) -> None:
        """Remember these ids (added when new) with their versions."""
        ...

    async def forget(self, connection: str, watch: str) -> None:
        """Drop the watch's mark and known ids (it was deleted, or now follows another entity set)."""
        ...


@dataclass
class MemoryWatermarkStore:
    """WatermarkStore in dicts: unit tests."""

    marks: dict[tuple[str, str], Watermark] = field(default_factory=dict)
    ids: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    versions: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    async def mark(self, connection: str, watch: str) -> Watermark | None:
        return self.marks.get((connection, watch))

    async def put(self, mark: Watermark) -> None:
        self.marks[(mark.connection, mark.watch)] = mark

    async def known_ids(self, connection: str, watch: str) -> set[str]:
        return set(self.ids.get((connection, watch), set()))

    async def add_ids(self, connection: str, watch: str, ids: Iterable[str]) -> None:
        self.ids.setdefault((connection, watch), set()).update(ids)

    async def remove_ids(self, connection: str, watch: str, ids: Iterable[str]) -> None:
        gone = set(ids)
        self.ids.setdefault((connection, watch), set()).difference_update(gone)
        versions = self.versions.get((connection, watch), {})
        for entity_id in gone:
            versions.pop(entity_id, None)

    async def known_versions(self, connection: str, watch: str) -> dict[str, str]:
        versions = self.versions.get((connection, watch), {})
        return {i: versions.get(i, "") for i in self.ids.get((connection, watch), set())}

    async def put_versions(self, connection: str, watch: str, versions: Mapping[str, str]) -> None:
        self.ids.setdefault((connection, watch), set()).update(versions)
        self.versions.setdefault((connection, watch), {}).update(versions)

    async def forget(self, connection: str, watch: str) -> None:
        self.marks.pop((connection, watch), None)
        self.ids.pop((connection, watch), None)
        self.versions.pop((connection, watch), None)


class TableWatermarkStore:
    """WatermarkStore over one Table; every storage failure becomes ChangeStorageError."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    async def ensure(self) -> None:
        """Create the table unless it exists."""
        with table_errors(_WHAT, "be created"):
            await table_cas.ensure_table(self._table)

    async def mark(self, connection: str, watch: str) -> Watermark | None:
        with table_errors(_WHAT, "be read"):
            row = await table_cas.read(self._table, connection, watch)
        if row is None:
            return None
        entity = row.entity
        return Watermark(
            connection,
            watch,
            parse_iso_utc(entity.get("ModifiedAfter")),
            parse_iso_utc(entity.get("DeletesCheckedAt")),
            parse_iso_utc(entity.get("ReconciledAt")),
            entity.get("Whole") is True,
        )

    async def put(self, mark: Watermark) -> None:
        entity = {
            "PartitionKey": mark.connection,
            "RowKey": mark.watch,
            "ModifiedAfter": iso_utc(mark.modified_after) or "",
            "DeletesCheckedAt": iso_utc(mark.deletes_checked_at) or "",
            "ReconciledAt": iso_utc(mark.reconciled_at) or "",
            "Whole": mark.whole,
        }
        with table_errors(_WHAT, "be written"):
            await self._table.upsert_entity(entity)

    async def known_ids(self, connection: str, watch: str) -> set[str]:
        with table_errors(_WHAT, "be read"):
            rows = await table_cas.read_partition(self._table, _ids_partition(connection, watch))
        return {str(row.entity["RowKey"]) for row in rows}

    async def add_ids(self, connection: str, watch: str, ids: Iterable[str]) -> None:
        partition = _ids_partition(connection, watch)
        await self._transact([("upsert", {"PartitionKey": partition, "RowKey": i}) for i in ids])

    async def remove_ids(self, connection: str, watch: str, ids: Iterable[str]) -> None:
        partition = _ids_partition(connection, watch)
        await self._transact([("delete", {"PartitionKey": partition, "RowKey": i}) for i in ids])

    async def known_versions(self, connection: str, watch: str) -> dict[str, str]:
        with table_errors(_WHAT, "be read"):
            rows = await table_cas.read_partition(self._table, _ids_partition(connection, watch))
        return {str(row.entity["RowKey"]): str(row.entity.get("Version") or "") for row in rows}

    async def put_versions(self, connection: str, watch: str, versions: Mapping[str, str]) -> None:
        partition = _ids_partition(connection, watch)
        rows = [{"PartitionKey": partition, "RowKey": i, "Version": v} for i, v in versions.items()]
        await self._transact([("upsert", row) for row in rows])

    async def forget(self, connection: str, watch: str) -> None:
        await self.remove_ids(connection, watch, await self.known_ids(connection, watch))
        with table_errors(_WHAT, "be written"):
            current = await table_cas.read(self._table, connection, watch)
            if current is not None:
                await table_cas.delete_if_match(self._table, connection, watch, current.etag)

    async def _transact(self, operations: list[tuple[str, dict[str, str]]]) -> None:
        with table_errors(_WHAT, "be written"):
            for start in range(0, len(operations), _TRANSACTION_ROWS):
                await self._table.submit_transaction(operations[start : start + _TRANSACTION_ROWS])


def _ids_partition(connection: str, watch: str) -> str:
    return f"{connection}~{watch}"
