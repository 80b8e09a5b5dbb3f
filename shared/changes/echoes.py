"""Echoes: a change event whose version one of this product's own jobs wrote is marked with that job's id
(`bcecho`), so a two-way sync drops its own writes (issue 22, "Echoes marked"; reference (a) A7.6).

`TableEchoJournal` is both sides:
- `record` (shared.jobs.journal.WriteJournal, called by the processor after a write job): one transaction of up
  to 100 upserts per entity set into Table `{prefix}echoes`, ONLY for the entity sets the connection watches (a
  cached `WatchLookup`: a job on an unwatched set costs no storage call at all);
- `echoes_of` (shared.changes.log.EchoLookup, asked by the change log before it logs new events): one query
  per entity set for up to 14 events; `look_up`, its first question per entity set and publish, reads the
  ambiguous marks in the same query (an OR of their range and up to 12 echo rows).
- `mark_ambiguous` / `clear_ambiguous` (the processor, when a write job retries after its answer was lost, and
  when it ends): one upsert / one delete of an *ambiguous mark*, row `~ambiguous~{job id}` in the same partition,
  ONLY for watched entity sets;
- `look_up` (EchoLookup) answers the holders too, from the set's marks it read: an event an unexpired mark
  covers (its entity, or any for a create's mark) is HELD by that job unless it is the job's echo already: the change log does not publish it now, and its caller comes back later.
  A mark past `until` holds nothing: its events go out unmarked, a warning names the job, the mark is deleted.
  Marks are few (one per job retrying after a lost answer, removed when it ends), so the range stays small.
  Known gap: a mark is written when the run gives up on the answer; BC notifies 30 s after its commit, so an
  answer lost by the client's timeout (BC_REQUEST_TIMEOUT_SECONDS, 60 s) can be notified and published first.
Partition = `{connection}~{entitySet}`, row = `{entity id}~{sha256(version)[:32]}` (an ETag holds `/` and `"`,
which keys refuse). `Expires` bounds a row's use: an echo arrives within BC's debounce plus its retries (the
coded retries add up to about 18.5 h, reference A4), so rows older than `ttl` (2 days) are ignored; a storage
lifecycle or a sweep may delete them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from bcjobs.changes import ChangeEvent, ChangeKind, tombstone_version
from shared.changes.errors import ChangeLogUnavailableError
from shared.changes.log import JournalAnswer
from shared.changes.watch import Watch
from shared.clock import Clock
from shared.errors import IntegrationError
from shared.table_cas import ensure_table

logger = logging.getLogger(__name__)
ECHOES_TABLE_SUFFIX = "echoes"
TTL = timedelta(days=2)
# Ambiguous marks sort after every echo row (`{entity id}~...`: ids are GUIDs) and are read by one range query.
AMBIGUOUS = "~ambiguous~"
ANY_ENTITY = "*"
# "No more than 15 discrete comparisons are permitted within a $filter string"
# (learn.microsoft.com/rest/api/storageservices/querying-tables-and-entities#filtering-on-properties): the
# PartitionKey takes one, so a query asks 14 row keys, or 12 beside the marks' range (RowKey gt and lt). Its
# length stays far below the URL's limit: 14 keys of <= 70 characters (a GUID, `~`, 32 hex digits).
MAX_KEYS = 14
MAX_KEYS_WITH_MARKS = 12


def echoes_table_name(prefix: str) -> str:
    """The write journal's table (`bcechoes` by default)."""
    return f"{prefix}{ECHOES_TABLE_SUFFIX}"


class WrittenVersion(Protocol):
    """One version a job wrote: the shape of shared.jobs.journal.Written (this package never imports the jobs)."""

    @property
    def connection(self) -> str: ...
    @property
    def entity_set(self) -> str: ...
    @property
    def entity_id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def job_id(self) -> str: ...


class AmbiguousMark(Protocol):
    """A write whose answer was lost: the shape of shared.jobs.journal.AmbiguousWrite."""

    @property
    def connection(self) -> str: ...
    @property
    def entity_set(self) -> str: ...
    @property
    def entity_id(self) -> str | None: ...
    @property
    def job_id(self) -> str: ...
    @property
    def until(self) -> datetime: ...


class WatchLookup(Protocol):
    """The watches of a connection, cached per process (the shape of shared.changes' WatchDirectory)."""

    async def watches(self, connection: str) -> list[Watch]:
        """The connection's watches; [] when it has none."""
        ...


@dataclass
class MemoryWatches:
    """WatchLookup in memory: tests, and the wiring until the watches table is there."""

    by_connection: dict[str, list[Watch]] = field(default_factory=dict)

    async def watches(self, connection: str) -> list[Watch]:
        return list(self.by_connection.get(connection, []))


def echo_keys(connection: str, entity_set: str, entity_id: str, version: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) of one written version."""
    digest = hashlib.sha256(version.encode("utf-8")).hexdigest()[:32]
    return f"{connection}~{entity_set}", f"{entity_id.lower()}~{digest}"


def _wanted(events: Sequence[ChangeEvent]) -> dict[tuple[str, str], str]:
    """(PartitionKey, RowKey) of each event's echo row -> the event id (an event without a version has none)."""
    wanted: dict[tuple[str, str], str] = {}
    for event in events:
        version = event_version(event)
        if version is not None:
            wanted[echo_keys(event.bcconnection, event.bcentityset, event.subject, version)] = event.id
    return wanted


def event_version(event: ChangeEvent) -> str | None:
    """The version a job would have journaled for this event: the ETag, or the tombstone's for a delete."""
    return tombstone_version() if event.bcchange is ChangeKind.DELETED else event.bcetag


class TableEchoJournal:
    """WriteJournal and EchoLookup over the `{prefix}echoes` table."""

    def __init__(self, table: TableClient, watches: WatchLookup, clock: Clock, ttl: timedelta = TTL) -> None:
        self._table = table
        self._watches = watches
        self._clock = clock
        self._ttl = ttl

    async def ensure(self) -> None:
        """Create the table unless it exists."""
        try:
            await ensure_table(self._table)
        except AzureError as exc:
            raise ChangeLogUnavailableError("create the echoes table", type(exc).__name__) from None

    async def record(self, writes: Sequence[WrittenVersion]) -> None:
        """Keep each watched write: one transaction per entity set and 100 rows (a batch job's thousand writes
        are 10 calls); a failure is logged (those echoes then go unmarked), never raised."""
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        expires = self._clock.now() + self._ttl
        for write in writes:
            if await self._watched(write.connection, write.entity_set):
                pk, rk = echo_keys(write.connection, write.entity_set, write.entity_id, write.version)
                row = {"PartitionKey": pk, "RowKey": rk, "JobId": write.job_id, "Expires": expires}
                rows.setdefault(pk, {})[rk] = row  # one row per key: a transaction refuses a key twice
        for partition in rows.values():
            batch = list(partition.values())
            for start in range(0, len(batch), 100):
                await self._upsert(batch[start : start + 100])

    async def _upsert(self, rows: list[dict[str, Any]]) -> None:
        try:
            await self._table.submit_transaction(
                [("upsert", row, {"mode": UpdateMode.REPLACE}) for row in rows]
            )
        except AzureError as exc:
            logger.warning(
                "echoes of job %s not journaled (%s): their change events will not be marked",
                rows[0]["JobId"],
                type(exc).__name__,
                extra={"event": "changes.echo_not_journaled", "job_id": rows[0]["JobId"]},
            )

    async def _watched(self, connection: str, entity_set: str) -> bool:
        """Whether a watch follows the set; when the watches cannot be read, False (logged): the job's outcome
        must not wait on the feed, and its echo merely goes unmarked."""
        try:
            watches = await self._watches.watches(connection)
        except (AzureError, IntegrationError) as exc:
            logger.warning(
                "watches of %s unreadable (%s): this job's echoes are not journaled",
                connection,
                type(exc).__name__,
                extra={"event": "changes.watches_unavailable", "connection": connection},
            )
            return False
        return any(watch.entity_set == entity_set and watch.enabled for watch in watches)

    async def echoes_of(self, events: Sequence[ChangeEvent]) -> dict[str, str]:
        """Event id -> job id, for the events whose version a live journal row names: one query per entity set
        and 14 events (the change log asks at most 14 at a time); raises ChangeLogUnavailableError on storage
        failure."""
        wanted = _wanted(events)
        found: dict[str, str] = {}
        for pk in {pk for pk, _ in wanted}:
            keys = [rk for p, rk in wanted if p == pk]
            for start in range(0, len(keys), MAX_KEYS):
                rows = await self._query(pk, keys[start : start + MAX_KEYS], marks=False)
                found.update(self._echoes(pk, wanted, rows))
        return found

    async def look_up(self, fresh: Sequence[ChangeEvent], group: Sequence[ChangeEvent]) -> JournalAnswer:
        """The echoes among `fresh` and the holders among `group` (events of one entity set, `fresh` among them):
        ONE query reads the set's ambiguous marks and the echo rows of up to 12 fresh events (a 13th and 14th
        cost one more); a mark past its `until` holds nothing (logged, deleted). Raises
        ChangeLogUnavailableError on storage failure."""
        if not group:
            return JournalAnswer({}, {})
        pk = f"{group[0].bcconnection}~{group[0].bcentityset}"
        wanted = {key: event_id for key, event_id in _wanted(fresh).items() if key[0] == pk}
        keys = [rk for _, rk in wanted]
        rows = await self._query(pk, keys[:MAX_KEYS_WITH_MARKS], marks=True)
        for start in range(MAX_KEYS_WITH_MARKS, len(keys), MAX_KEYS):
            rows.update(await self._query(pk, keys[start : start + MAX_KEYS], marks=False))
        marks = [row for rk, row in rows.items() if rk.startswith(AMBIGUOUS)]
        holders: dict[str, str] = {}
        for event in group:
            job = await self._holder(pk, event, marks)
            if job is not None:
                holders[event.id] = job
        return JournalAnswer(self._echoes(pk, wanted, rows), holders)

    def _echoes(
        self, pk: str, wanted: dict[tuple[str, str], str], rows: dict[str, dict[str, Any]]
    ) -> dict[str, str]:
        """Event id -> job id of the wanted echo rows found that have not expired."""
        now = self._clock.now()
        return {
            wanted[(pk, rk)]: str(row["JobId"])
            for rk, row in rows.items()
            if (pk, rk) in wanted and (row.get("Expires") is None or row["Expires"] >= now)
        }

    async def _query(self, pk: str, row_keys: Sequence[str], marks: bool) -> dict[str, dict[str, Any]]:
        """RowKey -> row of the partition's rows with these keys and, with `marks`, its ambiguous marks: one
        query (an OR of the marks' range and the keys; at most 15 comparisons, MAX_KEYS)."""
        clauses = [f"RowKey eq @k{n}" for n in range(len(row_keys))]
        parameters: dict[str, Any] = {"pk": pk, **{f"k{n}": key for n, key in enumerate(row_keys)}}
        if marks:
            clauses.insert(0, "( RowKey gt @low and RowKey lt @high )")
            parameters.update(low=AMBIGUOUS, high=AMBIGUOUS + "~")
        if not clauses:
            return {}
        query = f"PartitionKey eq @pk and ( {' or '.join(clauses)} )"  # the SDK reads a name up to a space
        try:
            return {
                str(row["RowKey"]): dict(row)
                async for row in self._table.query_entities(query, parameters=parameters)
            }
        except ResourceNotFoundError:
            return {}
        except AzureError as exc:
            raise ChangeLogUnavailableError("read the echo journal", type(exc).__name__) from None

    async def mark_ambiguous(self, write: AmbiguousMark) -> None:
        """One upsert of the job's mark, when its entity set is watched; a failure is logged, never raised."""
        if not await self._watched(write.connection, write.entity_set):
            return
        row = {
            "PartitionKey": f"{write.connection}~{write.entity_set}",
            "RowKey": AMBIGUOUS + write.job_id,
            "Entity": write.entity_id or ANY_ENTITY,
            "JobId": write.job_id,
            "Until": write.until,
        }
        try:
            await self._table.upsert_entity(row, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            _mark_failed("not written", write.job_id, exc)

    async def clear_ambiguous(self, write: AmbiguousMark) -> None:
        """One delete of the job's mark (none there: nothing to do); a failure is logged, never raised."""
        if not await self._watched(write.connection, write.entity_set):
            return
        await self._delete_mark(f"{write.connection}~{write.entity_set}", write.job_id)

    async def _delete_mark(self, pk: str, job_id: str) -> None:
        try:
            await self._table.delete_entity(pk, AMBIGUOUS + job_id)
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            _mark_failed("not deleted", job_id, exc)

    async def _holder(self, pk: str, event: ChangeEvent, marks: list[dict[str, Any]]) -> str | None:
        """The job of a live mark covering the event; a covering mark past `until` is dropped, with a warning."""
        now = self._clock.now()
        for mark in [m for m in marks if m.get("Entity") in (ANY_ENTITY, event.subject.lower())]:
            if mark["Until"] > now:
                return str(mark["JobId"])
            if not mark.get("Dropped"):
                mark["Dropped"] = True  # warned once per read
                _hold_ended(str(mark["JobId"]), event)
                await self._delete_mark(pk, str(mark["JobId"]))
        return None


def _mark_failed(what: str, job_id: str, exc: AzureError) -> None:
    logger.warning(
        "ambiguous mark of job %s %s (%s): its write's change event may go out unmarked or stay held until the "
        "mark's end",
        job_id,
        what,
        type(exc).__name__,
        extra={"event": "changes.ambiguous_mark_failed", "job_id": job_id},
    )


def _hold_ended(job_id: str, event: ChangeEvent) -> None:
    logger.warning(
        "job %s's write stayed ambiguous past its hold: changes of %s %s (first %s) go out unmarked; if one is "
        "the job's write, a two-way sync sees it as a user's: check the job (bcjobs show JOB_ID)",
        job_id,
        event.bcentityset,
        event.subject,
        event.id,
        extra={"event": "changes.ambiguous_hold_ended", "job_id": job_id, "change_id": event.id},
    )
