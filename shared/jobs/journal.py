"""The write journal: what a successful write job produced (entity set, id, ETag), so that the change feed can
mark BC's notification of that very version as the job's echo (issue 22: BC's notifications do not say who
changed a record; reference (a) A7.6: "keep a write journal of (entity, ETag) returned by your own PATCH/POST").

The processor calls `WriteJournal.record` after a run that wrote; the default records nothing. The
implementation lives in the change feed (shared/changes/echoes.py) and is wired in shared/jobs/compose.py, so
this package never imports the feed. A document line's write is not journaled: BC notifies its header, whose
new ETag the job never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bcjobs import ItemOutcome, Job, Operation, ResultSummary
from bcjobs.changes import tombstone_version
from bcjobs.models import Step


@dataclass(frozen=True, slots=True)
class Written:
    """One entity version a job produced: `version` is its ETag, or the tombstone's version for a delete."""

    connection: str
    entity_set: str
    entity_id: str
    version: str
    job_id: str


class WriteJournal(Protocol):
    """Remembers the versions jobs wrote, for a while."""

    async def record(self, writes: Sequence[Written]) -> None:
        """Keep these; never raises (an echo left unmarked is better than a job's outcome lost)."""
        ...


class NoJournal:
    """Records nothing (no change feed, or tests of the pipeline)."""

    async def record(self, writes: Sequence[Written]) -> None:
        return None


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
