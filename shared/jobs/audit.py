"""A job's audit: the BC interactions of each run and a batch's item outcomes, collected and stored.

One BC client (and so one Recorder) serves every job of the process; each job run opens an `AuditBuffer` in its
own asyncio task, and the `JobRecorder` appends to the buffer of the task it is called from (a ContextVar, copied
into tasks the run starts). The buffer holds frozen AuditedInteraction values: no body, no query string, no token. The
processor hands the same buffer to the runner, which reads it (`answer_lost_before`) to tell whether a DELETE's 404
is the effect of its own earlier, unanswered DELETE.

Where the audit lives: in the jobs table, with the job's row (bcjobs.rows). The processor hands a run's
interactions to the row's write after the run, ONE call (shared.jobs.records.TableJobStore.replace; issue 24): they
join the row's Audit column while it fits, else they become audit rows of the row's partition (PartitionKey = job
id, RowKey `{run:03d}-{sequence:04d}`) in one entity-group transaction with the row's write (at most 100 operations
on one partition, atomic: learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions). This
`AuditLog` keeps audit rows alone only when they cannot go with a row write (the claim was lost, more than 99 of
them, or the run raised before its row write). Every query over the jobs table
therefore names `RowKey eq 'job'` (bcjobs.common.list_query, shared.jobs.connections_admin, shared.ops.sources).
Rows written before this by earlier versions are in `{prefix}jobaudit`: still read (a missing table reads as none).
A batch job's full item outcomes, too large for its row (shared.jobs.records.bounded), go to the items table, one
entity per operation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Protocol

from azure.core.exceptions import AzureError
from azure.data.tables import TableTransactionError
from azure.data.tables.aio import TableClient

from bcjobs import ItemOutcome
from bcjobs.rows import AuditedInteraction, interaction_row, item_from_row, item_row, partition_interactions
from shared import table_cas
from shared.bc import Interaction as BcInteraction
from shared.clock import Clock
from shared.jobs.errors import JobStoreError, table_call
from shared.table_cas import TableEntity

TRANSACTION_LIMIT = 100


class AuditBuffer:
    """One run's interactions, numbered in order; `run` is the run's number (JobRecord.runs after its claim)."""

    def __init__(self, run: int, clock: Clock) -> None:
        self.run = run
        self._clock = clock
        self.interactions: list[AuditedInteraction] = []

    def add(self, seen: BcInteraction) -> None:
        """Keep one interaction (called from the request path: cheap, never raises)."""
        self.interactions.append(_interaction(seen, self.run, len(self.interactions) + 1, self._clock.now()))

    def may_have_written(self) -> bool:
        """True when a write request of this run got no answer, or one after which BC may have acted."""
        return any(seen.method in _WRITES and _may_have_acted(seen) for seen in self.interactions)

    def answer_lost_before(self, method: str, path_end: str) -> bool:
        """True when this run already sent `method` to a path ending in `path_end` and got no answer, or one
        after which BC may have acted: a later refusal of the same request may be the effect of that one (the
        runner's AnswerTrail)."""
        return any(
            seen.method == method and seen.path.endswith(path_end) and _may_have_acted(seen)
            for seen in self.interactions
        )


_current: ContextVar[AuditBuffer | None] = ContextVar("bc_job_audit", default=None)


class JobRecorder:
    """The Recorder given to the shared BC client: forwards to the running job's buffer, if any."""

    def record(self, interaction: BcInteraction) -> None:
        """Append to the current job's buffer; interactions outside a job run are not kept."""
        buffer = _current.get()
        if buffer is not None:
            buffer.add(interaction)


# Answers after which BC may have acted: a timeout (408 runs the operation first), a server error other than 503
# (refused before running), or none at all because the connection failed after the request went out (the
# interaction's `error` names httpx's exception; a token that could not be had or a connection that never opened
# are recorded without a status too, and mean nothing was sent).
_MAY_HAVE_ACTED = frozenset({408, 500, 502, 504})
_LOST_AFTER_SENDING = frozenset(
    {"ReadError", "ReadTimeout", "WriteError", "WriteTimeout", "RemoteProtocolError", "CloseError"}
)
_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def _may_have_acted(seen: AuditedInteraction) -> bool:
    return seen.status in _MAY_HAVE_ACTED or (seen.status is None and seen.error in _LOST_AFTER_SENDING)


@contextmanager
def auditing(buffer: AuditBuffer) -> Iterator[AuditBuffer]:
    """Make `buffer` the current task's audit buffer."""
    token = _current.set(buffer)
    try:
        yield buffer
    finally:
        _current.reset(token)


def _interaction(seen: BcInteraction, run: int, sequence: int, at: datetime) -> AuditedInteraction:
    return AuditedInteraction(
        attempt=run,  # the audit row's `attempt` (column Attempt, part of its RowKey) holds the run number
        sequence=sequence,
        at=at,
        method=seen.method,
        path=seen.path,
        status=seen.status,
        duration_ms=seen.duration_ms,
        bc_error_code=seen.bc_error_code,
        client_request_id=seen.client_request_id,
        bc_request_id=seen.request_id or seen.ms_correlation_x,
        call_attempt=seen.try_number,
        error=seen.error,
    )


class AuditLog(Protocol):
    """A job's BC interactions."""

    async def append(self, job_id: str, interactions: Sequence[AuditedInteraction]) -> None:
        """Keep these (one call per 100)."""
        ...

    async def read(self, job_id: str) -> list[AuditedInteraction]:
        """Every interaction of the job, in order."""
        ...

    async def keep_items(self, job_id: str, items: Sequence[ItemOutcome]) -> None:
        """Keep a batch job's full item outcomes (upserts by index: a later run's outcome replaces an earlier)."""
        ...

    async def read_items(self, job_id: str) -> list[ItemOutcome]:
        """The job's kept item outcomes, by index (empty when none)."""
        ...


class TableAuditLog:
    """AuditLog in the job's partition of the `{prefix}jobs` table (read also from the `{prefix}jobaudit` table of
    earlier versions), and item outcomes on the `{prefix}jobitems` table."""

    def __init__(self, jobs: TableClient, earlier: TableClient, items: TableClient) -> None:
        self._table = jobs
        # Audit rows written before they moved into the jobs table (issue 24). The fallback can go once every
        # deployment has run this version longer than its jobs are kept: no job then has rows only there.
        self._earlier = earlier
        self._items = items

    async def ensure(self) -> None:
        """Create the tables this version writes if needed (the earlier audit table is only read)."""
        await table_call(table_cas.ensure_table(self._table))
        await table_call(table_cas.ensure_table(self._items))

    async def append(self, job_id: str, interactions: Sequence[AuditedInteraction]) -> None:
        """One entity-group transaction per 100 interactions (upserts: a repeated flush is harmless)."""
        await _upsert_all(self._table, [interaction_row(job_id, interaction) for interaction in interactions])

    async def read(self, job_id: str) -> list[AuditedInteraction]:
        """Every interaction, ordered by run and sequence: the job row's Audit column and the audit rows of its
        partition, and the earlier table's rows of the job (a row in both is the same interaction)."""
        stored = await table_call(table_cas.read_partition(self._table, job_id))
        earlier = await table_call(table_cas.read_partition(self._earlier, job_id))
        return partition_interactions(row.entity for row in [*earlier, *stored])

    async def keep_items(self, job_id: str, items: Sequence[ItemOutcome]) -> None:
        """One entity per operation, 100 per entity-group transaction."""
        await _upsert_all(self._items, [item_row(job_id, item) for item in items])

    async def read_items(self, job_id: str) -> list[ItemOutcome]:
        """The kept outcomes, in operation order."""
        stored = await table_call(table_cas.read_partition(self._items, job_id))
        ordered = sorted(stored, key=lambda r: r.entity["RowKey"])
        return [item_from_row(row.entity) for row in ordered]


async def _upsert_all(table: TableClient, rows: Sequence[TableEntity]) -> None:
    for start in range(0, len(rows), TRANSACTION_LIMIT):
        chunk = rows[start : start + TRANSACTION_LIMIT]
        try:
            await _upsert_chunk(table, chunk)
        except (AzureError, TableTransactionError) as exc:
            raise JobStoreError(f"write to {table.table_name} failed ({type(exc).__name__})") from exc


async def _upsert_chunk(table: TableClient, rows: Sequence[TableEntity]) -> None:
    """One row: a plain upsert (MERGE, as a transaction's "upsert" is); more: one entity-group transaction.

    Why: a simple job's audit is one row, and a transaction costs about twice the worker CPU of the same upsert
    (the SDK builds a multipart/mixed body and parses the multipart answer with the `email` package: profile of the
    capacity bench, issue 24). Both are one storage transaction, with the same effect on the row.
    """
    if len(rows) == 1:
        await table.upsert_entity(rows[0])
        return
    await table.submit_transaction([("upsert", row) for row in rows])
