"""The job row's write and a run's audit on Azurite with the real aio SDK: one storage call, atomic, in the row's
Audit column while it fits and as audit rows in an entity-group transaction after, and the audit readable from the
column, the jobs table's partition and the earlier `jobaudit` table (shared/jobs/records.py, shared/jobs/audit.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables.aio import TableClient

from bcjobs import JobState
from bcjobs.common import list_query
from bcjobs.rows import AUDIT_COLUMN, AUDIT_COLUMN_BUDGET, AuditedInteraction, interaction_row
from shared.jobs.audit import TableAuditLog
from shared.jobs.records import AUDIT_ROOM, JobRecord, TableJobStore

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Calls:
    """Every HTTP request the table clients send (azure-core's raw_request_hook: the SDK's own seam)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, request: Any) -> None:
        self.sent.append(
            f"{request.http_request.method} {request.http_request.url.split('?')[0].rsplit('/', 1)[-1]}"
        )


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
async def tables(
    azurite_connection_string: str, unique_name: str, calls: Calls
) -> AsyncIterator[tuple[TableClient, TableClient, TableClient]]:
    made = [
        TableClient.from_connection_string(
            azurite_connection_string, unique_name + suffix, raw_request_hook=calls
        )
        for suffix in ("jobs", "jobaudit", "jobitems")
    ]
    try:
        yield made[0], made[1], made[2]
    finally:
        for client in made:
            await client.delete_table()
            await client.close()


def interactions(run: int, count: int, path: str = "/companies(x)/customers") -> list[AuditedInteraction]:
    return [
        AuditedInteraction(attempt=run, sequence=n, method="GET", path=path, status=200)
        for n in range(1, count + 1)
    ]


def kept(log: list[AuditedInteraction]) -> list[tuple[int, int]]:
    return [(i.attempt, i.sequence) for i in log]


@pytest.fixture
async def stores(tables: tuple[TableClient, TableClient, TableClient]) -> tuple[TableJobStore, TableAuditLog]:
    """The job store and the audit log on the test's tables (the ones this version writes created)."""
    jobs, earlier, items = tables
    log = TableAuditLog(jobs, earlier, items)
    await log.ensure()
    return TableJobStore(jobs), log


async def claimed(store: TableJobStore, job_id: str) -> JobRecord:
    record = JobRecord(job_id=job_id, state=JobState.RUNNING, created_at=NOW, updated_at=NOW, deadline=NOW)
    inserted = await store.insert(dataclasses.replace(record, deadline=NOW + timedelta(hours=1), runs=1))
    assert inserted is not None
    return inserted


async def test_a_runs_audit_that_fits_is_kept_in_the_rows_one_plain_write_and_carried_by_later_writes(
    tables: tuple[TableClient, TableClient, TableClient],
    stores: tuple[TableJobStore, TableAuditLog],
    calls: Calls,
) -> None:
    jobs, (store, log) = tables[0], stores
    record = await claimed(store, "j-1")
    calls.sent.clear()
    written = await store.replace(record.moved(JobState.RETRY_SCHEDULED, NOW), interactions(1, AUDIT_ROOM))
    assert written is not None
    assert calls.sent == ["PUT " + f"{jobs.table_name}(PartitionKey='j-1',RowKey='job')"]
    again = await store.replace(written.moved(JobState.RUNNING, NOW))  # a claim's write: no audit of its own
    assert again is not None
    finished = await store.replace(again.moved(JobState.SUCCEEDED, NOW), interactions(2, 1))
    assert finished is not None
    assert kept(await log.read("j-1")) == [(1, n) for n in range(1, AUDIT_ROOM + 1)] + [(2, 1)]
    assert [row["RowKey"] async for row in jobs.list_entities()] == ["job"]  # no audit row of its own
    query, parameters = list_query(None, None)
    assert [row["PartitionKey"] async for row in jobs.query_entities(query, parameters=parameters)] == ["j-1"]


async def test_a_runs_audit_past_the_columns_budget_goes_as_audit_rows_in_one_transaction(
    tables: tuple[TableClient, TableClient, TableClient],
    stores: tuple[TableJobStore, TableAuditLog],
    calls: Calls,
) -> None:
    jobs, (store, log) = tables[0], stores
    long_path = "/companies(x)/customers" + "/x" * 1000  # about 2 KB an interaction
    record = await claimed(store, "j-4")
    first = await store.replace(record.moved(JobState.RETRY_SCHEDULED, NOW), interactions(1, 13, long_path))
    assert first is not None
    assert first.audit is not None
    assert AUDIT_COLUMN_BUDGET - 2500 < len(first.audit.encode()) <= AUDIT_COLUMN_BUDGET
    calls.sent.clear()
    second = await store.replace(first.moved(JobState.SUCCEEDED, NOW), interactions(2, 2, long_path))
    assert second is not None
    assert calls.sent == ["POST $batch"]
    assert second.audit == first.audit  # the column as it was; the run's audit is in rows
    assert kept(await log.read("j-4")) == [(1, n) for n in range(1, 14)] + [(2, 1), (2, 2)]
    row = await jobs.get_entity("j-4", "job")
    assert len(row[AUDIT_COLUMN]) == len(first.audit)


@pytest.mark.parametrize("path", ["/c", "/c" + "/x" * 8_000], ids=["in the column", "as audit rows"])
async def test_a_stale_claim_writes_neither_the_row_nor_the_audit(
    stores: tuple[TableJobStore, TableAuditLog], path: str
) -> None:
    """Azurite honours If-Match on a replace and inside an entity-group transaction, and the transaction is atomic."""
    store, log = stores
    record = await claimed(store, "j-2")
    taken = await store.replace(record.moved(JobState.RETRY_SCHEDULED, NOW))
    assert taken is not None
    assert await store.replace(record.moved(JobState.SUCCEEDED, NOW), interactions(1, 2, path)) is None
    assert await log.read("j-2") == []
    current = await store.get("j-2")
    assert current is not None
    assert current.state is JobState.RETRY_SCHEDULED
    assert current.audit is None


async def test_the_audit_is_read_from_the_jobs_partition_and_the_earlier_table(
    tables: tuple[TableClient, TableClient, TableClient], stores: tuple[TableJobStore, TableAuditLog]
) -> None:
    """Rows an earlier version wrote to `jobaudit` stay readable beside the new ones; no earlier table: none."""
    earlier, (store, log) = tables[1], stores
    record = await claimed(store, "j-3")
    assert await log.read("j-3") == []  # the earlier table does not exist
    await earlier.create_table()
    await earlier.upsert_entity(interaction_row("j-3", interactions(1, 1)[0]))
    assert await store.replace(record.moved(JobState.SUCCEEDED, NOW), interactions(2, 1)) is not None
    assert kept(await log.read("j-3")) == [(1, 1), (2, 1)]
