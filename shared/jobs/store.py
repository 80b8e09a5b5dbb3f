"""Where job rows and audit rows live: small Protocols, and their Table Storage implementations.

Facts (azure-data-tables 12.7, Azurite 3.35): an entity-group transaction holds at most 100 operations on one
partition and is atomic (learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions),
so one job attempt's audit rows (PartitionKey = job id) go in one `submit_transaction` call. Row writes use
shared.table_cas: a lost race comes back as None. A batch job's full item outcomes, too large for its row
(shared.jobs.records.bounded), go to the items table, one entity per operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from azure.core.exceptions import AzureError
from azure.data.tables import TableTransactionError
from azure.data.tables.aio import TableClient

from bcjobs import ItemOutcome
from bcjobs.rows import JOB_ROW, Interaction, interaction_from_row, interaction_row, item_from_row, item_row
from shared import table_cas
from shared.jobs.errors import JobStoreError
from shared.jobs.records import JobRecord, from_row, to_row

TRANSACTION_LIMIT = 100


class JobStore(Protocol):
    """Job rows, written by ETag compare-and-swap."""

    async def get(self, job_id: str) -> JobRecord | None:
        """The row, or None."""
        ...

    async def insert(self, record: JobRecord) -> JobRecord | None:
        """Create the row; None when it exists already (another delivery was first)."""
        ...

    async def replace(self, record: JobRecord) -> JobRecord | None:
        """Write over the row read as `record.etag`; None when someone else wrote it since."""
        ...


class AuditLog(Protocol):
    """A job's BC interactions."""

    async def append(self, job_id: str, interactions: Sequence[Interaction]) -> None:
        """Keep these (one call per 100)."""
        ...

    async def read(self, job_id: str) -> list[Interaction]:
        """Every interaction of the job, in order."""
        ...

    async def keep_items(self, job_id: str, items: Sequence[ItemOutcome]) -> None:
        """Keep a batch job's full item outcomes (upserts by index: a later run's outcome replaces an earlier)."""
        ...

    async def read_items(self, job_id: str) -> list[ItemOutcome]:
        """The job's kept item outcomes, by index (empty when none)."""
        ...


class TableJobStore:
    """JobStore on the `{prefix}jobs` table."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    async def ensure(self) -> None:
        """Create the table if needed."""
        await _guarded(table_cas.ensure_table(self._table))

    async def get(self, job_id: str) -> JobRecord | None:
        """The row, or None."""
        stored = await _guarded(table_cas.read(self._table, job_id, JOB_ROW))
        return None if stored is None else from_row(stored.entity, stored.etag)

    async def insert(self, record: JobRecord) -> JobRecord | None:
        """Create the row; None when it exists."""
        etag = await _guarded(table_cas.insert(self._table, to_row(record)))
        return None if etag is None else _with_etag(record, etag)

    async def replace(self, record: JobRecord) -> JobRecord | None:
        """Compare-and-swap on the record's ETag."""
        if record.etag is None:
            raise JobStoreError("a job row can only be replaced as read (it has no ETag)")
        etag = await _guarded(table_cas.replace_if_match(self._table, to_row(record), record.etag))
        return None if etag is None else _with_etag(record, etag)


class TableAuditLog:
    """AuditLog on the `{prefix}jobaudit` table, and item outcomes on the `{prefix}jobitems` table."""

    def __init__(self, table: TableClient, items: TableClient) -> None:
        self._table = table
        self._items = items

    async def ensure(self) -> None:
        """Create the tables if needed."""
        await _guarded(table_cas.ensure_table(self._table))
        await _guarded(table_cas.ensure_table(self._items))

    async def append(self, job_id: str, interactions: Sequence[Interaction]) -> None:
        """One entity-group transaction per 100 interactions (upserts: a repeated flush is harmless)."""
        await _upsert_all(self._table, [interaction_row(job_id, interaction) for interaction in interactions])

    async def read(self, job_id: str) -> list[Interaction]:
        """Every interaction, ordered by attempt and sequence."""
        stored = await _guarded(table_cas.read_partition(self._table, job_id))
        return [interaction_from_row(row.entity) for row in sorted(stored, key=lambda r: r.entity["RowKey"])]

    async def keep_items(self, job_id: str, items: Sequence[ItemOutcome]) -> None:
        """One entity per operation, 100 per entity-group transaction."""
        await _upsert_all(self._items, [item_row(job_id, item) for item in items])

    async def read_items(self, job_id: str) -> list[ItemOutcome]:
        """The kept outcomes, in operation order."""
        stored = await _guarded(table_cas.read_partition(self._items, job_id))
        ordered = sorted(stored, key=lambda r: r.entity["RowKey"])
        return [item_from_row(row.entity) for row in ordered]


async def _upsert_all(table: TableClient, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), TRANSACTION_LIMIT):
        operations = [("upsert", row) for row in rows[start : start + TRANSACTION_LIMIT]]
        try:
            await table.submit_transaction(operations)
        except (AzureError, TableTransactionError) as exc:
            raise JobStoreError(f"write to {table.table_name} failed ({type(exc).__name__})") from exc


async def _guarded(call: Any) -> Any:
    try:
        return await call
    except table_cas.TableStorageError as exc:
        raise JobStoreError(str(exc)) from exc


def _with_etag(record: JobRecord, etag: str) -> JobRecord:
    return replace(record, etag=etag)
