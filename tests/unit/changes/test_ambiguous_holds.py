"""Ambiguous writes hold the change events they may have made: a job's write whose answer was lost is marked, the
events it covers are not published until the job's retry records its version (then they go out as its echo) or
the job ends, and a mark past its end holds nothing (a warning names the job). Nothing held is ever lost: the
notification comes back later, and reconciliation keeps its watermark before a held event."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from bcjobs.changes import ChangeKind
from shared.changes.echoes import MemoryWatches, TableEchoJournal
from shared.changes.errors import ChangeLogUnavailableError
from shared.changes.expansion_compose import expand_message
from shared.changes.notifications import NotificationMessage
from shared.changes.watch import Watch
from shared.jobs.journal import AmbiguousWrite, Written
from testkit.changes import change_event
from testkit.clock import ManualClock
from tests.unit.changes.test_expansion import _customer, _id, _item, _message, _world
from tests.unit.changes.test_reconcile import POLICY, WATCH, world
from tests.unit.changes.test_reconcile_whole import WATCH as WHOLE_WATCH
from tests.unit.changes.test_reconcile_whole import world as whole_world

ID = "c0a8e2b1-0000-0000-0000-000000000001"
OTHER = "c0a8e2b1-0000-0000-0000-000000000002"


@dataclass
class MarksTable:
    """The few TableClient calls the journal's marks make, in memory (range queries honour @pk/@low/@high)."""

    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    unavailable: bool = False

    async def upsert_entity(self, entity: dict[str, Any], mode: object = None) -> None:
        self.calls.append("upsert")
        self.rows[(entity["PartitionKey"], entity["RowKey"])] = dict(entity)

    async def delete_entity(self, partition_key: str, row_key: str) -> None:
        self.calls.append("delete")
        self.rows.pop((partition_key, row_key), None)

    async def submit_transaction(self, operations: list[Any]) -> None:
        self.calls.append("transaction")
        for _, entity, _ in operations:
            self.rows[(entity["PartitionKey"], entity["RowKey"])] = dict(entity)

    def query_entities(
        self, query: str, parameters: dict[str, Any], **_: Any
    ) -> AsyncIterator[dict[str, Any]]:
        self.calls.append("query")
        # Azure Tables permits at most 15 comparisons in a $filter
        # (learn.microsoft.com/rest/api/storageservices/querying-tables-and-entities#filtering-on-properties).
        assert sum(query.count(f" {op} ") for op in ("eq", "gt", "lt", "ge", "le", "ne")) <= 15, query
        if self.unavailable:
            raise ServiceRequestError("storage unreachable")
        return self._rows(query, parameters)

    async def _rows(self, query: str, parameters: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        keys = {v for k, v in parameters.items() if k.startswith("k")}
        for (pk, rk), row in list(self.rows.items()):
            in_range = "low" in parameters and parameters["low"] < rk < parameters["high"]
            if pk == parameters["pk"] and (in_range or rk in keys):
                yield row


def journal() -> tuple[TableEchoJournal, MarksTable, ManualClock]:
    table, clock = MarksTable(), ManualClock()
    watches = MemoryWatches({"contoso": [Watch(connection="contoso", name="crm", entity_set="customers")]})
    return TableEchoJournal(table, watches, clock), table, clock  # type: ignore[arg-type]


def mark(clock: ManualClock, entity_id: str | None = ID, entity_set: str = "customers") -> AmbiguousWrite:
    return AmbiguousWrite("contoso", entity_set, entity_id, "job-7", clock.now() + timedelta(hours=1))


async def test_an_ambiguous_update_holds_its_entitys_events_and_no_others() -> None:
    echoes, _, clock = journal()
    await echoes.mark_ambiguous(mark(clock))
    ours, theirs = change_event(ID.upper()), change_event(OTHER)
    assert (await echoes.look_up([], [ours, theirs])).holders == {ours.id: "job-7"}


async def test_an_ambiguous_create_holds_every_event_of_its_entity_set() -> None:
    echoes, _, clock = journal()
    await echoes.mark_ambiguous(mark(clock, None))
    events = [change_event(ID), change_event(OTHER)]
    assert (await echoes.look_up([], events)).holders == {event.id: "job-7" for event in events}


async def test_a_cleared_mark_holds_nothing_and_the_recorded_version_is_the_jobs_echo() -> None:
    echoes, _, clock = journal()
    await echoes.mark_ambiguous(mark(clock))
    await echoes.record([Written("contoso", "customers", ID, 'W/"1"', "job-7")])
    await echoes.clear_ambiguous(mark(clock))
    event = change_event(ID, 'W/"1"')
    assert (await echoes.look_up([], [event])).holders == {}
    assert await echoes.echoes_of([event]) == {event.id: "job-7"}


async def test_a_mark_past_its_end_holds_nothing_names_the_job_and_is_deleted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    echoes, table, clock = journal()
    await echoes.mark_ambiguous(mark(clock))
    clock.advance(timedelta(hours=1, seconds=1))
    with caplog.at_level(logging.WARNING):
        assert (await echoes.look_up([], [change_event(ID)])).holders == {}
    assert [
        r.__dict__["job_id"]
        for r in caplog.records
        if r.__dict__.get("event") == "changes.ambiguous_hold_ended"
    ] == ["job-7"]
    assert table.rows == {}


async def test_one_query_answers_both_the_echoes_and_the_ambiguous_marks() -> None:
    echoes, table, clock = journal()
    await echoes.mark_ambiguous(mark(clock, OTHER))
    await echoes.record([Written("contoso", "customers", ID, 'W/"1"', "job-3")])
    ours, theirs = change_event(ID, 'W/"1"'), change_event(OTHER)
    table.calls.clear()
    answer = await echoes.look_up([ours, theirs], [ours, theirs])
    assert (answer.echoes, answer.holders) == ({ours.id: "job-3"}, {theirs.id: "job-7"})
    assert table.calls == ["query"]


async def test_fourteen_new_events_cost_two_queries_within_fifteen_comparisons_each() -> None:
    echoes, table, clock = journal()
    await echoes.mark_ambiguous(mark(clock, None))
    events = [change_event(f"c0a8e2b1-0000-0000-0000-{n:012d}", 'W/"1"') for n in range(14)]
    await echoes.record([Written("contoso", "customers", e.subject, 'W/"1"', "job-3") for e in events])
    table.calls.clear()
    answer = await echoes.look_up(events, events)
    assert answer.echoes == {e.id: "job-3" for e in events}
    assert answer.holders == {e.id: "job-7" for e in events}
    assert table.calls == ["query", "query"]


async def test_an_unreadable_journal_makes_the_publish_unavailable() -> None:
    echoes, table, _ = journal()
    table.unavailable = True
    with pytest.raises(ChangeLogUnavailableError):
        await echoes.look_up([change_event(ID)], [change_event(ID)])


async def test_an_entity_set_nobody_watches_costs_no_storage_call() -> None:
    echoes, table, clock = journal()
    await echoes.mark_ambiguous(mark(clock, entity_set="items"))
    await echoes.clear_ambiguous(mark(clock, entity_set="items"))
    assert table.calls == []


@dataclass
class LaterQueue:
    sent: list[tuple[NotificationMessage, float]] = field(default_factory=list)

    async def send_later(self, message: NotificationMessage, delay_seconds: float) -> None:
        self.sent.append((message, delay_seconds))


async def test_a_notification_with_held_events_is_queued_again_and_publishes_them_once_released() -> None:
    expansion, _, feed = _world([_customer(1), _customer(2)])
    feed.holding.add(_id(1))
    later = LaterQueue()

    async def queue() -> LaterQueue:
        return later

    message = _message(_item(1), _item(2))
    first = await expand_message(expansion, message, queue, 30)
    assert (first.new, first.held, [e.subject for e in feed.sent]) == (1, 1, [_id(2)])
    assert later.sent == [(message, 30)]
    feed.holding.clear()  # the job's retry recorded its version and cleared the mark
    again = await expand_message(expansion, message, queue, 30)
    assert (again.new, again.seen, again.held, len(later.sent)) == (1, 1, 0, 1)
    assert [e.subject for e in feed.sent] == [_id(2), _id(1)]


async def test_reconciliation_keeps_its_watermark_before_a_held_event_and_publishes_it_later() -> None:
    reconciler, bc, feed, marks, _ = world()
    bc.write()
    await reconciler.reconcile(WATCH, "production", bc)
    before = await marks.mark("contoso", "customers")
    held = bc.write()
    feed.holding.add(held)

    run = await reconciler.reconcile(WATCH, "production", bc)
    after = await marks.mark("contoso", "customers")
    assert run.held == 1
    assert held not in [e.subject for e in feed.sent]
    assert before is not None
    assert after is not None
    assert after.modified_after == before.modified_after

    feed.holding.clear()
    released = await reconciler.reconcile(WATCH, "production", bc)
    assert (released.published, released.held) == (1, 0)
    assert [e.subject for e in feed.sent].count(held) == 1


async def test_a_held_tombstone_keeps_its_id_known_until_it_is_published() -> None:
    reconciler, bc, feed, marks, clock = world()
    gone = bc.write()
    await reconciler.reconcile(WATCH, "production", bc)
    del bc.rows[gone]
    feed.holding.add(gone)
    clock.advance(POLICY.deletes_every)
    held = await reconciler.reconcile(WATCH, "production", bc)
    assert (held.deleted, feed.sent) == (0, [])
    assert await marks.known_ids("contoso", "customers") == {gone}

    feed.holding.clear()
    clock.advance(POLICY.deletes_every)
    await reconciler.reconcile(WATCH, "production", bc)
    assert [(e.subject, e.bcchange) for e in feed.sent] == [(gone, ChangeKind.DELETED)]


async def test_a_whole_read_records_no_held_version_so_the_next_one_publishes_it() -> None:
    """A set without lastModifiedDateTime: the held version is not recorded as known, nor its tombstone's id
    forgotten, so the next whole read (or a bare collection's expansion) publishes them."""
    reconciler, bc, feed, marks, clock = whole_world()
    changed, gone = bc.write(), bc.write()
    await reconciler.reconcile(WHOLE_WATCH, "production", bc)
    bc.write(changed, status="Shipped")
    del bc.rows[gone]
    feed.holding.update({changed, gone})
    clock.advance(POLICY.deletes_every)
    held = await reconciler.reconcile(WHOLE_WATCH, "production", bc)
    assert (held.held, held.published, held.deleted, feed.sent) == (1, 0, 0, [])
    assert set(await marks.known_versions("contoso", "tracking")) == {changed, gone}

    feed.holding.clear()
    clock.advance(POLICY.deletes_every)
    released = await reconciler.reconcile(WHOLE_WATCH, "production", bc)
    assert (released.published, released.deleted) == (1, 1)
    assert {(e.subject, e.bcchange) for e in feed.sent} == {
        (changed, ChangeKind.UPDATED),
        (gone, ChangeKind.DELETED),
    }
