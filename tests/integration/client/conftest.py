"""Fixtures for the app client against Azurite: the contract's queues emptied per test, tables of the test's own,
job and audit rows written with the product's own row writers (so the client reads what the product writes)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

from bcjobs import JOBS_QUEUE, RESULTS_QUEUE, ErrorInfo, ItemOutcome, JobReport, JobState, ResultSummary
from bcjobs.common import audit_table_name, items_table_name, jobs_table_name, report_message
from bcjobs.rows import AuditedInteraction, interaction_row, item_row
from shared.jobs.records import JobRecord, bounded, needs_bounding, to_row


@dataclass
class Storage:
    """One test's view of Azurite: the bc-jobs / bc-results queues and the `{prefix}jobs` / `jobaudit` tables."""

    connection_string: str
    prefix: str

    def queue(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self.connection_string, name)

    def reset_queues(self) -> None:
        """Both queues exist and are empty (their names are fixed by the contract)."""
        for name in (JOBS_QUEUE, RESULTS_QUEUE):
            with self.queue(name) as queue:
                try:
                    queue.create_queue()
                except ResourceExistsError:
                    queue.clear_messages()

    def drain(self, name: str) -> list[str]:
        """Every message text on a queue, taken off it."""
        texts: list[str] = []
        with self.queue(name) as queue:
            while True:
                batch = list(
                    queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=60)
                )
                if not batch:
                    return texts
                for message in batch:
                    texts.append(str(message.content))
                    queue.delete_message(message)

    def count(self, name: str) -> int:
        with self.queue(name) as queue:
            return int(queue.get_queue_properties().approximate_message_count or 0)

    def publish(self, report: JobReport) -> None:
        """A results message as the product publishes it (base64 of the report's JSON)."""
        with self.queue(RESULTS_QUEUE) as queue:
            queue.send_message(report_message(report))

    def put_job(
        self,
        job_id: str,
        state: JobState,
        *,
        updated_at: datetime | None = None,
        attempts: int = 1,
        result: ResultSummary | None = None,
        error: ErrorInfo | None = None,
        operation: str = "create customers",
    ) -> None:
        """A job row written with the product's writer (shared.jobs.records.to_row)."""
        now = updated_at or datetime.now(UTC)
        record = JobRecord(
            job_id=job_id,
            state=state,
            created_at=now - timedelta(seconds=5),
            updated_at=now,
            deadline=now + timedelta(hours=24),
            operation=operation,
            correlation_id=f"corr-{job_id}",
            attempts=attempts,
            finished_at=now if state.terminal else None,
            result=result,
            error=error,
        )
        self._upsert(jobs_table_name(self.prefix), to_row(record))

    def put_interactions(
        self, job_id: str, interactions: list[AuditedInteraction], *, earlier_version: bool = False
    ) -> None:
        """Audit rows in bcjobs.rows' format, in the job's partition of the jobs table (where the product writes
        them), or in the `jobaudit` table where earlier versions wrote them."""
        table = audit_table_name(self.prefix) if earlier_version else jobs_table_name(self.prefix)
        for interaction in interactions:
            self._upsert(table, interaction_row(job_id, interaction))

    def put_batch(
        self, job_id: str, items: list[ItemOutcome], state: JobState = JobState.SUCCEEDED
    ) -> ResultSummary:
        """A batch job as the product keeps it: when its result is too large for the row, every item outcome
        first (in the entity shape shared.jobs.audit writes: bcjobs.rows.item_row), then the row with the bounded
        result (shared.jobs.records.bounded); that result."""
        full = ResultSummary(count=len(items), items=items)
        if needs_bounding(full):
            self._keep_items(job_id, items)
        result = bounded(full)
        self.put_job(job_id, state, result=result, operation="batch")
        return result

    def _keep_items(self, job_id: str, items: list[ItemOutcome]) -> None:
        with TableServiceClient.from_connection_string(self.connection_string) as service:
            table = service.create_table_if_not_exists(items_table_name(self.prefix))
            rows = [item_row(job_id, item) for item in items]
            for start in range(0, len(rows), 100):  # an entity-group transaction holds 100 operations at most
                table.submit_transaction([("upsert", row) for row in rows[start : start + 100]])

    def _upsert(self, table_name: str, row: dict[str, Any]) -> None:
        with TableServiceClient.from_connection_string(self.connection_string) as service:
            table = service.create_table_if_not_exists(table_name)
            table.upsert_entity(row)


@pytest.fixture
def storage(azurite_connection_string: str) -> Iterator[Storage]:
    """Empty bc-jobs and bc-results, and a table prefix of this test's own."""
    built = Storage(azurite_connection_string, f"t{uuid.uuid4().hex[:12]}")
    built.reset_queues()
    yield built
    built.reset_queues()  # leave nothing for the job pipeline's tests to pick up
