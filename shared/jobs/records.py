"""A job's Table row: the frozen value (state, attempts, times, claim lease, progress, result and error), its
Table entity, its store (`JobStore`, on the `{prefix}jobs` table) and the result bounded to fit it.

Transitions return new records; the store writes them with the ETag they were read with (shared.table_cas: a lost
race comes back as None), so a lost race is seen (never two writers). Column names are bcjobs.rows' (the app client
reads the same table).

Bounding a result (`bounded`), the facts: a Table Storage property holds at most 64 KiB (a string is UTF-16: 32 K
characters) and an entity 1 MiB (learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model;
Azurite enforces it: PropertyValueTooLarge); a queue message holds at most 64 KiB, and the results queue carries
base64 text, so the report's JSON must stay under 48 KiB (learn.microsoft.com/rest/api/storageservices/put-message).
A batch of 1,000 operations reports about 100 bytes per succeeded item and several hundred per failed one, so its
full item list fits in neither: the row and the report keep the counts and the failing items that fit, the full list
goes to the items table (shared.jobs.audit) and is served by the status route.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from azure.data.tables.aio import TableClient

from bcjobs import ErrorInfo, ItemOutcome, Job, JobReport, JobState, ResultSummary
from bcjobs.rows import (
    AUDIT_COLUMN,
    AUDIT_COLUMN_BUDGET,
    JOB_ROW,
    AuditedInteraction,
    audit_column,
    interaction_row,
    json_column,
    report_from_row,
)
from bcjobs.wire import job_json
from shared import table_cas
from shared.jobs.errors import JobStoreError, table_call
from shared.table_cas import TableEntity


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job's row.

    Words (docs/architecture.md): a *delivery* is one queue message handed to the function; the delivery that takes
    the row's *claim* (its lease) makes one *run*, counted by `runs` (the number in the run's audit rows); a run
    that made a real BC attempt is an *attempt*, counted by `attempts` (parks and continuations use none).
    """

    job_id: str
    state: JobState
    created_at: datetime
    updated_at: datetime
    deadline: datetime
    operation: str = ""
    connection: str | None = None  # the connection the job runs on (None: rows written before connections)
    identity: str | None = None  # the identity of the connection's pool its latest run used (issue 23)
    correlation_id: str | None = None
    request_hash: str = ""
    attempts: int = 0
    runs: int = 0
    next_attempt_at: datetime | None = None
    finished_at: datetime | None = None
    lease_holder: str | None = None
    lease_until: datetime | None = None
    # A write of an earlier run may have reached BC without an answer: reconcile before writing again.
    ambiguous: bool = False
    # The queue message that finished the job; its redelivery re-publishes the report.
    finished_by: str | None = None
    result: ResultSummary | None = None
    error: ErrorInfo | None = None
    # The audit the row keeps (its Audit column as read: JSON, bcjobs.rows), carried over unread by every write.
    audit: str | None = None
    etag: str | None = field(default=None, compare=False)

    @classmethod
    def new(cls, job: Job, job_id: str, now: datetime, deadline: datetime, connection: str) -> JobRecord:
        """A job seen for the first time (state `received`) on `connection` (its own, or the settings' one)."""
        return cls(
            connection=connection,
            job_id=job_id,
            state=JobState.RECEIVED,
            created_at=now,
            updated_at=now,
            deadline=deadline,
            operation=summary_of(job),
            correlation_id=job.correlation_id,
            request_hash=request_hash(job),
        )

    @classmethod
    def ended_unread(
        cls, job_id: str, state: JobState, now: datetime, error: ErrorInfo, message_id: str
    ) -> JobRecord:
        """A terminal row for a message that never became a job (rejected, or dead-lettered unread)."""
        return cls(
            job_id=job_id,
            state=state,
            created_at=now,
            updated_at=now,
            deadline=now,
            finished_at=now,
            finished_by=message_id,
            error=error,
        )

    def claimed(self, holder: str, now: datetime, lease: timedelta) -> JobRecord:
        """Running under `holder`'s lease; taking over a crashed run of a write makes the job ambiguous."""
        crashed_write = self.state is JobState.RUNNING and self.operation_writes
        return dataclasses.replace(
            self,
            state=JobState.RUNNING,
            runs=self.runs + 1,
            lease_holder=holder,
            lease_until=now + lease,
            updated_at=now,
            ambiguous=self.ambiguous or crashed_write,
        )

    def moved(self, state: JobState, now: datetime, **changes: Any) -> JobRecord:
        """In `state` (lease released); terminal states get their finish time."""
        finished = now if state.terminal else None
        return dataclasses.replace(
            self,
            state=state,
            updated_at=now,
            lease_holder=None,
            lease_until=None,
            finished_at=finished,
            **changes,
        )

    @property
    def operation_writes(self) -> bool:
        """True when the job's operation changes data (read from the summary: the request is not stored)."""
        return self.operation.split(" ", 1)[0] not in ("get", "list")

    def leased_at(self, now: datetime) -> bool:
        """True while another run's lease is live."""
        return self.lease_until is not None and self.lease_until > now

    def report(self) -> JobReport:
        """As the app sees it."""
        return report_from_row(to_row(self))


def summary_of(job: Job) -> str:
    """A short, data-free description: `create customers`, `batch 150 operations (atomic)`."""
    if job.operations is not None:
        return f"batch {len(job.operations)} operations{' (atomic)' if job.atomic else ''}"
    target = f"{job.parent.entity_set}/{job.entity_set}" if job.parent else str(job.entity_set)
    action = f" {job.step().action_name}" if job.action else ""
    return f"{job.operation.value} {target}{action}"


def request_hash(job: Job) -> str:
    """Identifies the request (without its job id) to tell a redelivery from a job id used twice."""
    body = job_json(job.model_copy(update={"job_id": None}))
    return hashlib.sha256(body).hexdigest()[:32]


def to_row(record: JobRecord) -> TableEntity:
    """The Table entity."""
    row: TableEntity = {
        "PartitionKey": record.job_id,
        "RowKey": JOB_ROW,
        "State": record.state.value,
        "Operation": record.operation,
        "Connection": record.connection,
        "Identity": record.identity,
        "CorrelationId": record.correlation_id,
        "RequestHash": record.request_hash,
        "Attempts": record.attempts,
        "Runs": record.runs,
        "CreatedAt": record.created_at,
        "UpdatedAt": record.updated_at,
        "Deadline": record.deadline,
        "NextAttemptAt": record.next_attempt_at,
        "FinishedAt": record.finished_at,
        "LeaseHolder": record.lease_holder,
        "LeaseUntil": record.lease_until,
        "Ambiguous": record.ambiguous,
        "FinishedBy": record.finished_by,
        "Result": json_column(record.result),
        "Error": json_column(record.error),
        AUDIT_COLUMN: record.audit,
    }
    return {key: value for key, value in row.items() if value is not None}


def from_row(row: TableEntity, etag: str) -> JobRecord:
    """A record from its Table entity and ETag."""
    report = report_from_row(row)
    return JobRecord(
        job_id=report.job_id,
        state=report.state,
        created_at=row["CreatedAt"],
        updated_at=row["UpdatedAt"],
        deadline=row["Deadline"],
        operation=str(row.get("Operation") or ""),
        connection=report.connection,
        identity=row.get("Identity"),
        correlation_id=report.correlation_id,
        request_hash=str(row.get("RequestHash") or ""),
        attempts=report.attempts,
        runs=int(row.get("Runs") or 0),
        next_attempt_at=row.get("NextAttemptAt"),
        finished_at=row.get("FinishedAt"),
        lease_holder=row.get("LeaseHolder"),
        lease_until=row.get("LeaseUntil"),
        ambiguous=bool(row.get("Ambiguous")),
        finished_by=row.get("FinishedBy"),
        result=report.result,
        error=report.error,
        audit=row.get(AUDIT_COLUMN),
        etag=etag,
    )


# An entity-group transaction holds at most 100 operations
# (learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions): the row's replace and 99 more.
AUDIT_ROOM = 99


class JobStore(Protocol):
    """Job rows, written by ETag compare-and-swap."""

    async def get(self, job_id: str) -> JobRecord | None:
        """The row, or None."""
        ...

    async def insert(self, record: JobRecord) -> JobRecord | None:
        """Create the row; None when it exists already (another delivery was first)."""
        ...

    async def replace(self, record: JobRecord, audit: Sequence[AuditedInteraction] = ()) -> JobRecord | None:
        """Write over the row read as `record.etag`, and keep `audit` (at most AUDIT_ROOM interactions of the job)
        in the same atomic write; None when someone else wrote the row since: then neither was written."""
        ...


class TableJobStore:
    """JobStore on the `{prefix}jobs` table."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    async def ensure(self) -> None:
        """Create the table if needed."""
        await table_call(table_cas.ensure_table(self._table))

    async def get(self, job_id: str) -> JobRecord | None:
        """The row, or None."""
        stored = await table_call(table_cas.read(self._table, job_id, JOB_ROW))
        return None if stored is None else from_row(stored.entity, stored.etag)

    async def insert(self, record: JobRecord) -> JobRecord | None:
        """Create the row; None when it exists."""
        etag = await table_call(table_cas.insert(self._table, to_row(record)))
        return None if etag is None else _with_etag(record, etag)

    async def replace(self, record: JobRecord, audit: Sequence[AuditedInteraction] = ()) -> JobRecord | None:
        """Compare-and-swap on the record's ETag, one call whatever the audit: in the row's Audit column while the
        column fits AUDIT_COLUMN_BUDGET (a plain replace), else as audit rows of the job's partition in one
        entity-group transaction with the row (issue 24: the transaction costs a job about three times the CPU)."""
        read_as = record.etag
        if read_as is None:
            raise JobStoreError("a job row can only be replaced as read (it has no ETag)")
        if len(audit) > AUDIT_ROOM:
            raise JobStoreError(f"at most {AUDIT_ROOM} audit rows go with a row write (got {len(audit)})")
        column = audit_column(record.audit, audit)
        if audit and len(column.encode()) > AUDIT_COLUMN_BUDGET:
            rows = [interaction_row(record.job_id, interaction) for interaction in audit]
            etag = await table_call(
                table_cas.replace_if_match_with(self._table, to_row(record), read_as, rows)
            )
        else:
            record = dataclasses.replace(record, audit=column) if audit else record
            etag = await table_call(table_cas.replace_if_match(self._table, to_row(record), read_as))
        return None if etag is None else _with_etag(record, etag)


def _with_etag(record: JobRecord, etag: str) -> JobRecord:
    return dataclasses.replace(record, etag=etag)


# UTF-8 bytes of the Result column's JSON: under 32 K UTF-16 characters for the row, and leaving room in the 48 KiB
# of report JSON for the error (whose message quotes the first failing item) and the job's other fields.
RESULT_BUDGET = 24_000


def needs_bounding(result: ResultSummary | None, budget: int = RESULT_BUDGET) -> bool:
    """True when the result carries batch items and is too large for the row and the report."""
    return result is not None and bool(result.items) and _size(result) > budget


def bounded(result: ResultSummary, budget: int = RESULT_BUDGET) -> ResultSummary:
    """The result as the row keeps it: unchanged when it fits; else the counts and the first failing items that
    fit, marked `itemsTruncated` (the full list is kept elsewhere by the caller)."""
    if not needs_bounding(result, budget):
        return result
    items = result.items or []
    failing = [item for item in items if _failed(item)]
    base = result.model_copy(
        update={
            "items": [],
            "items_truncated": True,
            "items_succeeded": len(items) - len(failing),
            "items_failed": len(failing),
        }
    )
    used = _size(base)
    kept: list[ItemOutcome] = []
    for item in failing:
        size = len(item.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")) + 1
        if used + size > budget:
            break
        kept.append(item)
        used += size
    return base.model_copy(update={"items": kept})


def _failed(item: ItemOutcome) -> bool:
    return item.error is not None or item.rolled_back


def _size(result: ResultSummary) -> int:
    return len(result.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8"))
