"""The job row's write and a run's audit rows on Azurite with the real aio SDK: one storage call, atomic, and the
audit readable from the jobs table's partition and from the earlier `jobaudit` table (shared/jobs/audit.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables.aio import TableClient

from bcjobs import JobState
from bcjobs.common import list_query
from bcjobs.rows import AuditedInteraction, interaction_row
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


def interactions(run: int, count: int) -> list[AuditedInteraction]:
    return [
        AuditedInteraction(attempt=run, sequence=n, method="GET", path="/companies(x)/customers", status=200)
        for n in range(1, count + 1)
    ]


async def claimed(store: TableJobStore, job_id: str) -> JobRecord:
    record = JobRecord(job_id=job_id, state=JobState.RUNNING, created_at=NOW, updated_at=NOW, deadline=NOW)
    inserted = await store.insert(dataclasses.replace(record, deadline=NOW + timedelta(hours=1), runs=1))
    assert inserted is not None
    return inserted


async def test_the_rows_write_and_its_audit_are_one_call_and_list_sees_job_rows_only(
    tables: tuple[TableClient, TableClient, TableClient], calls: Calls
) -> None:
    jobs, earlier, items = tables
    store, log = TableJobStore(jobs), TableAuditLog(jobs, earlier, items)
    await log.ensure()
    record = await claimed(store, "j-1")
    calls.sent.clear()
    written = await store.replace(record.moved(JobState.SUCCEEDED, NOW), interactions(1, AUDIT_ROOM))
    assert written is not None
    assert calls.sent == ["POST $batch"]
    assert [(i.attempt, i.sequence) for i in await log.read("j-1")] == [
        (1, n) for n in range(1, AUDIT_ROOM + 1)
    ]
    again = await store.replace(written.moved(JobState.FAILED, NOW))  # the ETag the transaction answered
    assert again is not None
    query, parameters = list_query(None, None)
    assert [row["PartitionKey"] async for row in jobs.query_entities(query, parameters=parameters)] == ["j-1"]


async def test_a_stale_claim_writes_neither_the_row_nor_the_audit(
    tables: tuple[TableClient, TableClient, TableClient],
) -> None:
    """Azurite honours If-Match inside an entity-group transaction, and the transaction is atomic."""
    jobs, earlier, items = tables
    store, log = TableJobStore(jobs), TableAuditLog(jobs, earlier, items)
    await log.ensure()
    record = await claimed(store, "j-2")
    taken = await store.replace(record.moved(JobState.RETRY_SCHEDULED, NOW))
    assert taken is not None
    assert await store.replace(record.moved(JobState.SUCCEEDED, NOW), interactions(1, 2)) is None
    assert await log.read("j-2") == []
    current = await store.get("j-2")
    assert current is not None
    assert current.state is JobState.RETRY_SCHEDULED


async def test_the_audit_is_read_from_the_jobs_partition_and_the_earlier_table(
    tables: tuple[TableClient, TableClient, TableClient],
) -> None:
    """Rows an earlier version wrote to `jobaudit` stay readable beside the new ones; no earlier table: none."""
    jobs, earlier, items = tables
    store, log = TableJobStore(jobs), TableAuditLog(jobs, earlier, items)
    await log.ensure()
    record = await claimed(store, "j-3")
    assert await log.read("j-3") == []  # the earlier table does not exist
    await earlier.create_table()
    await earlier.upsert_entity(interaction_row("j-3", interactions(1, 1)[0]))
    assert await store.replace(record.moved(JobState.SUCCEEDED, NOW), interactions(2, 1)) is not None
    assert [(i.attempt, i.sequence) for i in await log.read("j-3")] == [(1, 1), (2, 1)]
