"""The change log: `TableChangeFeed` publishes each entity version once and keeps it readable with a cursor.

Table `{prefix}changes`, one partition per (connection, entity set) (`partition_key`), two kinds of rows:

    c~{cursor}   the log: the event's JSON, ordered by publish (cursor = UTC time with microseconds + change id)
    i~{id}       the id index: the event's cursor and whether its queue message was sent

Publishing, per partition, up to CHUNK (14) events at a time (`_publish_chunk`), in storage calls:
  1. one query reads their `i~{id}` rows: an id there was seen (nothing more), unless its message was never
     sent (below);
  2. the echo journal is asked which of the new versions a job of ours wrote (`EchoLookup`: one query;
     shared/changes/echoes.py); the others that an *ambiguous write* holds (a job's write whose answer was lost,
     its retry pending) are not published now (`Published.held`: their caller comes back later), so that they go
     out once, marked as the job's echo. The ambiguous marks come in the same query, the first of the partition
     and publish with new events (`look_up`; later chunks ask `echoes_of`), so a publish of seen ids asks nothing;
  3. one transaction inserts `i~{id}` (Sent = false) and `c~{cursor}` of each new event (same partition: atomic):
     a racing publisher of one of the ids makes it fail with a conflict, and the events are then published one by
     one (the racer's is seen), so a version never gets two log rows;
  4. each event is sent, base64, on `bc-changes`; 5. one transaction marks their `i~{id}` Sent.
  Measured on Azurite (tests/integration/changes/test_change_log.py), without the echo query: one new event 4
  calls, a collection's expansion 1.21 per event, a version seen before 0.07 per event; the echo query adds 1 per
  chunk (with the marks beside it, its first asks 12 ids, so a full first chunk's 13th and 14th cost one more):
  5 / 1.29 / 0.07 (test_echoes.py). A crash between 3 and 5 leaves `Sent = false`:
  the next publish of that id (the expansion's redelivery, the reconciliation's overlap) reads the logged event
  and sends it again, same id (the queue is at-least-once; consumers dedupe by id).

Reading: `read(connection, entity_set, after, limit)` returns rows after the cursor, oldest first, but only those
older than `settle` (15 s): a row's cursor is its writer's clock taken just before the write, so a slow write or a
little clock skew could land a row behind a cursor a reader already passed; the write is given up after
WRITE_SECONDS (10 s), so nothing older than the settle time can still appear. The queue carries the events at once.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient
from azure.storage.queue.aio import QueueClient

from bcjobs.changes import ChangeEvent
from shared import telemetry
from shared.changes.errors import ChangeLogUnavailableError
from shared.changes.feed import MemoryChangeFeed, Published
from shared.clock import Clock
from shared.table_cas import ensure_table

logger = logging.getLogger(__name__)
CHANGES_TABLE_SUFFIX = "changes"
LOG = "c~"
INDEX = "i~"
SETTLE = timedelta(seconds=15)
# The log write is given up after this, well within SETTLE: the cursor is taken before the write, so a write that
# committed later than SETTLE after it could land behind a reader's cursor. (A transaction the service was still
# processing when the client gave up is the residual case: seconds, not the SDK's ~45 s of tries.) A write given
# up is retried by the redelivery; if it did commit, the index says so and its send is repeated.
WRITE_SECONDS = 10.0
# A queue message is at most 64 KiB and is sent as base64 (4/3 larger): 48 KiB of JSON, less a margin for the
# reference and the attributes (learn.microsoft.com/rest/api/storageservices/put-message). A Table binary property
# holds 64 KiB (learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model).
MAX_EVENT_BYTES = 45_000
CURSOR_PATTERN = re.compile(r"^\d{8}T\d{6}\.\d{6}Z(-[0-9a-f]{1,64})?$")
MAX_PAGE = 1000
MAX_PAGE_BYTES = 4_000_000  # an answer of GET /api/changes stays a few MB whatever `limit` asks
# Events per index query and transaction: a filter holds at most 15 comparisons (PartitionKey + 14 RowKeys), a
# transaction 100 operations and 4 MiB (14 x (index + log row of <= 45,000 bytes, 60 KB as base64) ~ 0.9 MB).
# learn.microsoft.com/rest/api/storageservices/querying-tables-and-entities, .../performing-entity-group-transactions
CHUNK = 14
T = TypeVar("T")


def changes_table_name(prefix: str) -> str:
    """The change log table of a deployment (`bcchanges` by default)."""
    return f"{prefix}{CHANGES_TABLE_SUFFIX}"


def partition_key(connection: str, entity_set: str) -> str:
    """One log partition per (connection, entity set); both names hold no character a key refuses."""
    return f"{connection}~{entity_set}"


def cursor_at(moment: datetime, change_id: str = "") -> str:
    """`20261206T071502.123456Z-{id}`: sorts as text in publish order (the id breaks ties)."""
    text = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{text}-{change_id}" if change_id else text


def fitted(event: ChangeEvent) -> ChangeEvent:
    """The event as it may travel: `data.entity` dropped (its `data.reference` stays) when the JSON would not fit a
    queue message with margin; the application then reads the entity at the reference. So whoever builds an event
    with data (the expansion, the reconciliation) always sets `data.reference`, the entity's URL."""
    if event.data is None or "entity" not in event.data:
        return event
    if len(event.to_json().encode("utf-8")) <= MAX_EVENT_BYTES:
        return event
    data = {key: value for key, value in event.data.items() if key != "entity"}
    return event.model_copy(update={"data": {**data, "entityOmitted": "too large for a queue message"}})


def queue_text(event: ChangeEvent) -> str:
    """The queue message: base64 of the event's JSON (host.json messageEncoding is `none`, as for bc-results)."""
    return base64.b64encode(event.to_json().encode("utf-8")).decode("ascii")


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One read of the log: events oldest first, and the cursor to read on from (None: nothing read yet)."""

    changes: tuple[ChangeEvent, ...]
    next: str | None


class ChangeLog(Protocol):
    """Reads the change log of one (connection, entity set) after a cursor."""

    async def read(self, connection: str, entity_set: str, after: str | None, limit: int) -> ChangePage:
        """At most `limit` events after `after` (from the start when None); raises on storage failure."""
        ...


@dataclass(frozen=True)
class JournalAnswer:
    """What the echo journal says of one entity set's events: `echoes` (event id -> the job whose write produced
    that version) and `holders` (event id -> the job whose ambiguous write, answer lost and retry pending, may
    have produced it)."""

    echoes: Mapping[str, str]
    holders: Mapping[str, str]


class EchoLookup(Protocol):
    """Which jobs of ours wrote these entity versions (shared/changes/echoes.py)."""

    async def echoes_of(self, events: Sequence[ChangeEvent]) -> dict[str, str]:
        """Event id -> the job id whose write produced that version, for the events a job wrote."""
        ...

    async def look_up(self, fresh: Sequence[ChangeEvent], group: Sequence[ChangeEvent]) -> JournalAnswer:
        """The echoes among `fresh` and the holders among `group` (one entity set's events): one query."""
        ...


class NoEchoes:
    """EchoLookup that knows no job's writes."""

    async def echoes_of(self, events: Sequence[ChangeEvent]) -> dict[str, str]:
        return {}

    async def look_up(self, fresh: Sequence[ChangeEvent], group: Sequence[ChangeEvent]) -> JournalAnswer:
        return JournalAnswer({}, {})


class _PartitionJournal:
    """The journal's answers for one partition and publish: the first chunk with new events asks for the echoes
    and the ambiguous marks at once (one query); the later chunks ask only for their echoes."""

    def __init__(self, echoes: EchoLookup, group: Sequence[ChangeEvent]) -> None:
        self._echoes = echoes
        self._group = group
        self._holders: Mapping[str, str] | None = None

    async def ask(self, fresh: Sequence[ChangeEvent]) -> tuple[Mapping[str, str], Mapping[str, str]]:
        """(echoes, holders) for these new events."""
        if self._holders is None:
            answer = await self._echoes.look_up(fresh, self._group)
            self._holders = answer.holders
            return answer.echoes, answer.holders
        return await self._echoes.echoes_of(fresh), self._holders


class TableChangeFeed:
    """ChangeFeed and ChangeLog over the `{prefix}changes` table and the `bc-changes` queue."""

    def __init__(
        self,
        table: TableClient,
        queue: QueueClient,
        clock: Clock,
        echoes: EchoLookup | None = None,
        settle: timedelta = SETTLE,
    ) -> None:
        self._table = table
        self._queue = queue
        self._clock = clock
        self._echoes = echoes or NoEchoes()
        self._settle = settle

    async def ensure(self) -> None:
        """Create the table and the queue unless they exist."""
        try:
            await ensure_table(self._table)
            await self._queue.create_queue()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise ChangeLogUnavailableError("create the change log", type(exc).__name__) from None

    async def publish(self, events: Sequence[ChangeEvent]) -> Published:
        """Each event once per id, in order within its entity set; raises ChangeLogUnavailableError on storage
        failure (what was published before stays published: the redelivery counts it seen)."""
        new = 0
        held: list[str] = []
        for pk, group in _by_partition(events).items():
            journal = _PartitionJournal(self._echoes, group)  # the marks: one query per partition and publish
            for start in range(0, len(group), CHUNK):
                chunk = group[start : start + CHUNK]
                chunk_new, chunk_held = await self._publish_chunk(pk, chunk, journal)
                new, held = new + chunk_new, held + chunk_held
        return Published(new, len(events) - new - len(held), tuple(held))

    async def _publish_chunk(
        self, pk: str, events: Sequence[ChangeEvent], journal: _PartitionJournal
    ) -> tuple[int, list[str]]:
        """Up to CHUNK events of one partition: one index query, one transaction, a send each, one mark; the
        number published and the ids held."""
        index = await self._call("read the id index", self._rows(pk, [INDEX + e.id for e in events]))
        for row in index.values():
            if not row.get("Sent"):  # logged, but the send never confirmed (a crash between): send it again
                await self._resend(pk, str(row["Cursor"]))
        fresh, held = await self._marked([e for e in events if INDEX + e.id not in index], journal)
        if not fresh:
            return 0, held
        if not await self._call("write the log", self._insert(pk, fresh)):
            if len(fresh) == 1:
                return 0, held  # another publisher of this id won the insert: it sends
            alone = [await self._publish_chunk(pk, [e], journal) for e in fresh]  # the others still go
            return sum(n for n, _ in alone), held + [i for _, ids in alone for i in ids]
        await self._send_and_mark(pk, fresh)
        _count_published(fresh)
        return len(fresh), held

    async def _marked(
        self, events: Sequence[ChangeEvent], journal: _PartitionJournal
    ) -> tuple[list[ChangeEvent], list[str]]:
        """Fitted to a queue message, and `bcecho` set where a job of ours wrote the version; apart, the ids of
        the other events that an ambiguous write holds (the journal's holders: event id -> job)."""
        fitted_events = [fitted(event) for event in events]
        if not fitted_events:
            return [], []
        echoes, holders = await journal.ask(fitted_events)
        held = {e.id: holders[e.id] for e in fitted_events if e.id in holders and e.id not in echoes}
        for event_id, job_id in held.items():
            logger.info(
                "change %s held: job %s's write may have made it (its answer was lost; the job retries)",
                event_id,
                job_id,
                extra={"event": "changes.held", "change_id": event_id, "job_id": job_id},
            )
        marked = [
            event.model_copy(update={"bcecho": echoes[event.id]}) if event.id in echoes else event
            for event in fitted_events
            if event.id not in held
        ]
        return marked, list(held)

    async def _resend(self, pk: str, cursor: str) -> None:
        """The log row was written but its send never confirmed (a crash between): send the logged event again."""
        found = await self._call("read the log", self._rows(pk, [LOG + cursor]))
        await self._send_and_mark(pk, [_event_of(row) for row in found.values()])

    async def _send_and_mark(self, pk: str, events: Sequence[ChangeEvent]) -> None:
        if not events:
            return
        for event in events:
            await self._call(
                "send to bc-changes", self._queue.send_message(queue_text(event), time_to_live=-1)
            )
        marks: list[Any] = [
            (
                "update",
                {"PartitionKey": pk, "RowKey": INDEX + event.id, "Sent": True},
                {"mode": UpdateMode.MERGE},
            )
            for event in events
        ]
        await self._call("mark sent", self._submit(marks))

    async def _rows(self, pk: str, row_keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The rows of these keys that exist, by RowKey: one query (at most CHUNK keys)."""
        keys = sorted(set(row_keys))
        clauses = " or ".join(f"RowKey eq @k{n}" for n in range(len(keys)))
        parameters: dict[str, Any] = {"pk": pk, **{f"k{n}": key for n, key in enumerate(keys)}}
        query = f"PartitionKey eq @pk and ( {clauses} )"  # the SDK reads a name up to a space
        try:
            found = self._table.query_entities(query, parameters=parameters, results_per_page=len(keys))
            return {str(row["RowKey"]): dict(row) async for row in found}
        except ResourceNotFoundError:
            return {}  # no table yet: ensure() was not called; the insert will say so

    async def _insert(self, pk: str, events: Sequence[ChangeEvent]) -> bool:
        """Index and log rows of every event in one transaction; False when an index row exists (a racer)."""
        now = self._clock.now()
        operations: list[Any] = []
        for n, event in enumerate(events):  # n µs apart: the chunk keeps its order in the log
            cursor = cursor_at(now + timedelta(microseconds=n), event.id)
            operations += [("create", _index_row(pk, cursor, event)), ("create", _log_row(pk, cursor, event))]
        try:  # bounded: the SDK's tries could outlast the readers' settle time
            async with asyncio.timeout(WRITE_SECONDS):
                await self._submit(operations)
        except TableTransactionError as exc:
            if exc.status_code == 409:
                return False
            raise
        except TimeoutError:
            raise ChangeLogUnavailableError("write the log", "TimeoutError") from None
        return True

    async def _submit(self, operations: list[Any]) -> None:
        """One transaction (at most 100 operations: CHUNK keeps it there)."""
        await self._table.submit_transaction(operations)

    async def read(self, connection: str, entity_set: str, after: str | None, limit: int) -> ChangePage:
        """Up to `limit` (1..1000) events after `after`, oldest first, none younger than the settle time, and no
        more than MAX_PAGE_BYTES of them (an answer of 1,000 events of 45 KB would be 45 MB)."""
        until = cursor_at(self._clock.now() - self._settle)
        low = LOG + (after or "")
        query = "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high"
        parameters = {"pk": partition_key(connection, entity_set), "low": low, "high": LOG + until}
        rows, whole = await self._call("read the log", self._query(query, parameters, limit))
        events = tuple(_event_of(row) for row in rows)
        if whole:  # everything before the settle time was read: the reader may go on from there
            return ChangePage(events, max(after or "", until))
        return ChangePage(events, str(rows[-1]["RowKey"])[len(LOG) :])

    async def _query(
        self, query: str, parameters: dict[str, Any], limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """The rows, and whether they are all there were (False: cut at `limit` or at MAX_PAGE_BYTES)."""
        rows: list[dict[str, Any]] = []
        size = 0
        try:
            async for row in self._table.query_entities(query, parameters=parameters, results_per_page=limit):
                rows.append(dict(row))
                size += len(row["Event"])
                if len(rows) >= limit or size >= MAX_PAGE_BYTES:
                    return rows, False
        except ResourceNotFoundError:
            return [], True  # no change published yet: no table
        return rows, True

    async def _call(self, operation: str, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except AzureError as exc:
            raise ChangeLogUnavailableError(operation, type(exc).__name__) from None


def _count_published(events: Sequence[ChangeEvent]) -> None:
    """bc.changes.published, by origin (one partition: one connection)."""
    for origin, count in Counter(event.bcorigin.value for event in events).items():
        telemetry.changes_published(origin, events[0].bcconnection, count)


def _by_partition(events: Sequence[ChangeEvent]) -> dict[str, list[ChangeEvent]]:
    """The events by log partition, in their order, each id once (a repeat within one publish is seen)."""
    groups: dict[str, dict[str, ChangeEvent]] = {}
    for event in events:
        groups.setdefault(partition_key(event.bcconnection, event.bcentityset), {}).setdefault(
            event.id, event
        )
    return {pk: list(group.values()) for pk, group in groups.items()}


def _index_row(pk: str, cursor: str, event: ChangeEvent) -> dict[str, Any]:
    return {"PartitionKey": pk, "RowKey": INDEX + event.id, "Cursor": cursor, "Sent": False}


def _log_row(pk: str, cursor: str, event: ChangeEvent) -> dict[str, Any]:
    return {
        "PartitionKey": pk,
        "RowKey": LOG + cursor,
        "Id": event.id,
        "Subject": event.subject,
        "Change": event.bcchange.value,
        "Event": event.to_json().encode("utf-8"),
    }


def _event_of(row: dict[str, Any]) -> ChangeEvent:
    return ChangeEvent.model_validate_json(bytes(row["Event"]))


@dataclass
class MemoryLogReader:
    """ChangeLog over a MemoryChangeFeed (unit tests): the n-th event's cursor is second n of the epoch."""

    feed: MemoryChangeFeed

    async def read(self, connection: str, entity_set: str, after: str | None, limit: int) -> ChangePage:
        cursors = [
            (cursor_at(datetime.fromtimestamp(n + 1, UTC), event.id), event)
            for n, event in enumerate(self.feed.sent)
            if (event.bcconnection, event.bcentityset) == (connection, entity_set)
        ]
        page = [(cursor, event) for cursor, event in cursors if cursor > (after or "")][:limit]
        return ChangePage(tuple(event for _, event in page), page[-1][0] if page else after)
