"""In-memory doubles behind shared.jobs' own Protocols: a JobStore with Table Storage's ETag compare-and-swap,
an AuditLog, the front door's JobReader over those two, the JobQueues a run writes to and the poison handler's
PoisonRedrive. Each can be told to fail like
storage does (JobStoreError / JobQueueError), so tests see what the processor does when a write is lost."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bcjobs import ItemOutcome, Job, JobReport
from bcjobs.common import JobDetails
from bcjobs.rows import AuditedInteraction, audit_row_key
from bcjobs.wire import encode
from shared.jobs.errors import JobQueueError, JobStoreError
from shared.jobs.records import AUDIT_ROOM, JobRecord, from_row, to_row


class MemoryJobStore:
    """Job rows kept as Table entities (to_row) with an ETag each; a lost race comes back as None.

    `fail_next[method]` holds what the next calls of that method ("get", "insert", "replace") do, one entry
    per call: raise that error, or pass when None; `outage` makes every call fail. The audit given with a replace
    goes to `audit` in the same write, atomic as the table's write (its Audit column or a transaction) is
    (shared.jobs.records).
    """

    def __init__(self, audit: MemoryAuditLog | None = None) -> None:
        self.audit = audit if audit is not None else MemoryAuditLog()
        self.transactions: list[
            tuple[JobRecord, list[AuditedInteraction]]
        ] = []  # replaces that carried audit
        self._rows: dict[str, tuple[dict[str, Any], str]] = {}
        self._etags = itertools.count(1)
        self.fail_next: dict[str, list[JobStoreError | None]] = {}
        self.outage = False
        self.writes: list[JobRecord] = []  # every successful insert or replace, in order
        # Called with what get() read, before it returns: lets a test slip another writer in between.
        self.after_get: Callable[[str, JobRecord | None], None] | None = None

    def _check(self, method: str) -> None:
        if self.outage:
            raise JobStoreError(f"jobs table unavailable (simulated outage during {method})")
        pending = self.fail_next.get(method)
        failure = pending.pop(0) if pending else None
        if failure is not None:
            raise failure

    def fail(self, method: str, times: int = 1, *, after: int = 0) -> None:
        """Let `after` calls of `method` pass, then make the next `times` raise JobStoreError."""
        planned = self.fail_next.setdefault(method, [])
        planned.extend([None] * after)
        planned.extend(JobStoreError(f"jobs table {method} failed (simulated)") for _ in range(times))

    def _stored(self, job_id: str, row: dict[str, Any]) -> JobRecord:
        etag = f'W/"{next(self._etags)}"'
        self._rows[job_id] = (row, etag)
        record = from_row(dict(row), etag)
        self.writes.append(record)
        return record

    async def get(self, job_id: str) -> JobRecord | None:
        """The row, or None."""
        self._check("get")
        stored = self._rows.get(job_id)
        found = None if stored is None else from_row(dict(stored[0]), stored[1])
        if self.after_get is not None:
            self.after_get(job_id, found)
        return found

    async def insert(self, record: JobRecord) -> JobRecord | None:
        """Create the row; None when it exists already."""
        self._check("insert")
        if record.job_id in self._rows:
            return None
        return self._stored(record.job_id, to_row(record))

    async def replace(self, record: JobRecord, audit: Sequence[AuditedInteraction] = ()) -> JobRecord | None:
        """Write over the row if its ETag is still `record.etag`, with `audit` (atomic: neither when someone wrote
        the row since, then None)."""
        self._check("replace")
        if record.etag is None:
            raise JobStoreError("a job row can only be replaced as read (it has no ETag)")
        if len(audit) > AUDIT_ROOM:
            raise JobStoreError(f"at most {AUDIT_ROOM} audit rows go with a row write")
        stored = self._rows.get(record.job_id)
        if stored is None or stored[1] != record.etag:
            return None
        if audit:
            self.audit.keep(record.job_id, audit)
            self.transactions.append((record, list(audit)))
        return self._stored(record.job_id, to_row(record))

    def seed(self, record: JobRecord) -> JobRecord:
        """Put a row in place directly (a state another process left behind); the stored record."""
        return self._stored(record.job_id, to_row(replace(record, etag=None)))

    def peek(self, job_id: str) -> JobRecord | None:
        """The row without going through the failure hooks."""
        stored = self._rows.get(job_id)
        return None if stored is None else from_row(dict(stored[0]), stored[1])

    @property
    def job_ids(self) -> list[str]:
        """Every job id that has a row."""
        return list(self._rows)


class MemoryAuditLog:
    """Audit rows keyed like the table (job id, `{attempt:03d}-{sequence:04d}`); upserts, like the real one."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, AuditedInteraction]] = {}
        self._items: dict[str, dict[int, ItemOutcome]] = {}
        self.outage = False
        self.appends = 0

    async def append(self, job_id: str, interactions: Sequence[AuditedInteraction]) -> None:
        """Keep these (a repeated interaction overwrites itself)."""
        if self.outage:
            raise JobStoreError("audit table unavailable (simulated outage)")
        self.appends += 1
        self.keep(job_id, interactions)

    def keep(self, job_id: str, interactions: Sequence[AuditedInteraction]) -> None:
        """The rows' upsert, without the failure hooks (the job store's write keeps them too)."""
        rows = self._rows.setdefault(job_id, {})
        for interaction in interactions:
            rows[audit_row_key(interaction.attempt, interaction.sequence)] = interaction

    async def read(self, job_id: str) -> list[AuditedInteraction]:
        """Every interaction of the job, in row-key order."""
        rows = self._rows.get(job_id, {})
        return [rows[key] for key in sorted(rows)]

    async def keep_items(self, job_id: str, items: Sequence[ItemOutcome]) -> None:
        """Keep a batch job's item outcomes by index (a later one replaces an earlier)."""
        if self.outage:
            raise JobStoreError("items table unavailable (simulated outage)")
        self._items.setdefault(job_id, {}).update({item.index: item for item in items})

    async def read_items(self, job_id: str) -> list[ItemOutcome]:
        """The kept outcomes, in operation order."""
        kept = self._items.get(job_id, {})
        return [kept[index] for index in sorted(kept)]


@dataclass
class MemoryJobReader:
    """The front door's JobReader over a MemoryJobStore and MemoryAuditLog, answering as AsyncJobsClient does."""

    store: MemoryJobStore
    audit: MemoryAuditLog

    async def get(self, job_id: str, *, interactions: bool = False) -> JobDetails | None:
        """The row's report, with the job's interactions when asked for."""
        record = await self.store.get(job_id)
        if record is None:
            return None
        log = await self.audit.read(job_id) if interactions else None
        return JobDetails.model_validate({**record.report().model_dump(), "interactions": log})

    async def items(self, job: str | JobReport) -> list[ItemOutcome]:
        """The row's items, or the kept ones when the row says itemsTruncated."""
        report = job if isinstance(job, JobReport) else await self.get(job)
        if report is None or report.result is None:
            return []
        if not report.result.items_truncated:
            return list(report.result.items or [])
        return await self.audit.read_items(report.job_id)


@dataclass(frozen=True, slots=True)
class Requeued:
    """A delayed copy of a job on the jobs queue, as the message text the trigger would get."""

    job: Job
    delay_seconds: float
    text: str


@dataclass
class MemoryJobQueues:
    """Records requeued copies and published reports; `fail_requeue` / `fail_publish` make the next send fail."""

    requeued: list[Requeued] = field(default_factory=list)
    published: list[JobReport] = field(default_factory=list)
    fail_requeue: int = 0
    fail_publish: int = 0

    async def requeue(self, job: Job, delay_seconds: float) -> None:
        """Keep the copy (or fail like a queue send does)."""
        if self.fail_requeue:
            self.fail_requeue -= 1
            raise JobQueueError("sending to bc-jobs failed (simulated)")
        self.requeued.append(Requeued(job, delay_seconds, encode(job)))

    async def publish(self, report: JobReport) -> None:
        """Keep the report (or fail like a queue send does)."""
        if self.fail_publish:
            self.fail_publish -= 1
            raise JobQueueError("sending to bc-results failed (simulated)")
        self.published.append(report)


@dataclass(frozen=True, slots=True)
class Redriven:
    """A fresh copy of a poison message sent back to bc-jobs-poison."""

    text: str
    delay_seconds: int
    ttl_seconds: int


@dataclass
class MemoryPoisonRedrive:
    """A PoisonRedrive that keeps the copies; `fail` makes every send fail like a queue send does."""

    sent: list[Redriven] = field(default_factory=list)
    fail: bool = False
    opened: int = 0

    async def redrive(self, text: str, delay_seconds: int, ttl_seconds: int) -> None:
        """Keep the copy (or fail)."""
        if self.fail:
            raise JobQueueError("sending to bc-jobs-poison failed (simulated)")
        self.sent.append(Redriven(text, delay_seconds, ttl_seconds))

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[MemoryPoisonRedrive]:
        """What PoisonHandler.redrive returns: this fake, counted."""
        self.opened += 1
        yield self
