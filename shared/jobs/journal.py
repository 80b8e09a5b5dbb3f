"""The write journal: what a successful write job produced (entity set, id, ETag), so that the change feed can
mark BC's notification of that very version as the job's echo (issue 22: BC's notifications do not say who
changed a record; reference (a) A7.6: "keep a write journal of (entity, ETag) returned by your own PATCH/POST").

The processor calls `WriteJournal.record` after a run that wrote; the default records nothing. When a write's
answer was lost (the run ended *ambiguous*, shared/jobs/outcomes.py) and the job retries, the processor first
marks the write ambiguous (`mark_ambiguous`: an `AmbiguousWrite`): BC may have applied it and will notify it after
its 30 s debounce, possibly before the retry reconciles and records the version; the change feed holds the
events the mark covers until then. The job's last run clears the mark (`clear_ambiguous`), after recording what it
wrote, or having written nothing (failed, expired). The
implementation lives in the change feed (shared/changes/echoes.py) and is wired in shared/jobs/compose.py, so
this package never imports the feed. A document line's write is not journaled: BC notifies its header, whose
new ETag the job never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bcjobs import ItemOutcome, Job, Operation, ResultSummary
from bcjobs.changes import tombstone_version
from bcjobs.models import Step

# How long an ambiguous write may hold its entity set's events at most (or the job's deadline, if sooner): a
# retry normally comes within minutes; past this the events go out unmarked (a warning names the job).
AMBIGUOUS_HOLD = timedelta(hours=3)


@dataclass(frozen=True, slots=True)
class Written:
    """One entity version a job produced: `version` is its ETag, or the tombstone's version for a delete."""

    connection: str
    entity_set: str
    entity_id: str
    version: str
    job_id: str


@dataclass(frozen=True, slots=True)
class AmbiguousWrite:
    """A job's write whose answer was lost: BC may have applied it. `entity_id` None: any entity of the set (a
    create's id is unknown until the retry finds it). Events it covers are held until it is cleared or `until`."""

    connection: str
    entity_set: str
    entity_id: str | None
    job_id: str
    until: datetime


class WriteJournal(Protocol):
    """Remembers the versions jobs wrote, for a while, and the writes whose answer was lost."""

    async def record(self, writes: Sequence[Written]) -> None:
        """Keep these; never raises (an echo left unmarked is better than a job's outcome lost)."""
        ...

    async def mark_ambiguous(self, write: AmbiguousWrite) -> None:
        """Hold the events this write may cause; never raises (unheld, an echo may go out unmarked)."""
        ...

    async def clear_ambiguous(self, write: AmbiguousWrite) -> None:
        """The job ended: stop holding; never raises (the mark then stops holding at `until`)."""
        ...


class NoJournal:
    """Records nothing (no change feed, or tests of the pipeline)."""

    async def record(self, writes: Sequence[Written]) -> None:
        return None

    async def mark_ambiguous(self, write: AmbiguousWrite) -> None:
        return None

    async def clear_ambiguous(self, write: AmbiguousWrite) -> None:
        return None


def ambiguous_write(job: Job, connection: str, now: datetime, deadline: datetime) -> AmbiguousWrite | None:
    """The mark of a single write job (a batch is never retried after a lost answer, outcomes.py); None for a read
    or a document line (BC notifies its header, whose version the job never learns)."""
    if job.operation is Operation.BATCH or not job.is_write:
        return None
    step = job.step()
    if step.parent is not None:
        return None
    known = step.operation in (Operation.UPDATE, Operation.DELETE) and step.id is not None
    entity_id = str(step.id).lower() if known else None
    until = min(deadline, now + AMBIGUOUS_HOLD)
    return AmbiguousWrite(connection, step.entity_set, entity_id, job.job_id or "", until)


def writes_of(job: Job, connection: str, result: ResultSummary) -> tuple[Written, ...]:
    """The versions a finished run wrote: a write job's record, or each batch operation that succeeded."""
    job_id = job.job_id or ""
    if job.operation is not Operation.BATCH:
        found = _written(job.step(), result.id, result.etag)
        return tuple(Written(connection, s, i, v, job_id) for s, i, v in found)
    items = {item.index: item for item in result.items or []}
    return tuple(
        Written(connection, s, i, v, job_id)
        for index, step in enumerate(job.steps)
        if _succeeded(items.get(index))
        for s, i, v in _written(step, _id(items.get(index)), _etag(items.get(index)))
    )


def _written(step: Step, entity_id: str | None, etag: str | None) -> list[tuple[str, str, str]]:
    """(entity set, id, version) of a step's write; none for a read, a line (parent) or an unknown version."""
    if not step.is_write or step.parent is not None:
        return []
    if step.operation is Operation.DELETE and step.id is not None:
        return [(step.entity_set, str(step.id).lower(), tombstone_version())]
    entity = entity_id or (str(step.id) if step.id is not None else None)
    return [(step.entity_set, entity.lower(), etag)] if entity and etag else []


def _succeeded(item: ItemOutcome | None) -> bool:
    return item is not None and item.error is None and not item.rolled_back


def _id(item: ItemOutcome | None) -> str | None:
    return item.id if item is not None else None


def _etag(item: ItemOutcome | None) -> str | None:
    return item.etag if item is not None else None
