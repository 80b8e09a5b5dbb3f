"""Reconciliation heals the feed's gaps: what BC changed since the watermark, published once, deletes found."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from bcjobs.changes import ChangeEvent, ChangeKind, ChangeOrigin, change_id, entity_version, tombstone_version
from shared.bc.models import BcEndpoint, Entity, EntitySet
from shared.bc.odata import ODataQuery
from shared.changes.feed import MemoryChangeFeed, Published
from shared.changes.reconcile import ReconcilePolicy, Reconciler
from shared.changes.storage_errors import ChangeStorageError
from shared.changes.watch import Watch
from shared.changes.watermarks import MemoryWatermarkStore
from shared.clock import parse_iso_utc
from testkit.clock import ManualClock
from tests.fakes.change_contract import conforming

COMPANY = UUID("aaaaaaaa-0000-0000-0000-000000000001")
ENDPOINT = BcEndpoint("https://bc.example", "production", "tenant")
POLICY = ReconcilePolicy(overlap=timedelta(minutes=5), deletes_every=timedelta(hours=24))
WATCH = Watch(connection="contoso", name="customers", entity_set="customers", include_data=True)


@dataclass
class FakeBcReader:
    """One entity set of BC, with lastModifiedDateTime and ETags; pages honour `gt`, `$orderby` and page size."""

    clock: ManualClock
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    queries: list[ODataQuery] = field(default_factory=list)
    _stamps: itertools.count[int] = field(default_factory=itertools.count)
    endpoint: BcEndpoint = ENDPOINT

    async def company_id(self) -> UUID:
        return COMPANY

    def write(self, entity_id: str | None = None, name: str = "n") -> str:
        entity_id = entity_id or str(uuid4())
        self.clock.advance(timedelta(seconds=1))
        modified = self.clock.now().isoformat().replace("+00:00", "Z")
        stamp = next(self._stamps)
        self.rows[entity_id] = {
            "id": entity_id,
            "name": name,
            "lastModifiedDateTime": modified,
            "@odata.etag": f'W/"{stamp}"',
        }
        return entity_id

    async def pages(
        self, entity_set: EntitySet, query: ODataQuery | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[tuple[Entity, ...]]:
        query = query or ODataQuery()
        self.queries.append(query)
        rows = sorted(self.rows.values(), key=lambda row: row["lastModifiedDateTime"])
        if query.filter is not None:
            since = parse_iso_utc(query.filter.text.split(" gt ")[1])
            assert since is not None
            rows = [row for row in rows if (parse_iso_utc(row["lastModifiedDateTime"]) or since) > since]
        size = page_size or 1000
        for start in range(0, len(rows), size):
            yield tuple(Entity.from_json(row) for row in rows[start : start + size])


class BrokenFeed:
    """A ChangeFeed whose storage is down."""

    async def publish(self, events: Sequence[ChangeEvent]) -> Published:
        raise ChangeStorageError("change log", "be written", "ServiceRequestError")


def world() -> tuple[Reconciler, FakeBcReader, MemoryChangeFeed, MemoryWatermarkStore, ManualClock]:
    clock = ManualClock()
    feed, marks = MemoryChangeFeed(), MemoryWatermarkStore()
    return Reconciler(feed, marks, POLICY, clock), FakeBcReader(clock), feed, marks, clock


async def test_the_first_run_remembers_what_exists_and_publishes_nothing() -> None:
    reconciler, bc, feed, marks, _ = world()
    existing = [bc.write() for _ in range(3)]

    run = await reconciler.reconcile(WATCH, "production", bc)

    assert (run.baseline, run.read, feed.sent) == (True, 3, [])
    assert await marks.known_ids("contoso", "customers") == set(existing)


async def test_changes_after_the_watermark_are_published_once_with_the_webhook_paths_ids() -> None:
    reconciler, bc, feed, _, _ = world()
    old = bc.write()
    await reconciler.reconcile(WATCH, "production", bc)
    new = bc.write(name="created")
    bc.write(old, name="updated")

    run = await reconciler.reconcile(WATCH, "production", bc)
    again = await reconciler.reconcile(WATCH, "production", bc)

    assert (run.published, again.published, again.seen) == (2, 0, 2)
    kinds = {event.subject: event.bcchange for event in feed.sent}
    assert kinds == {new: ChangeKind.CREATED, old: ChangeKind.UPDATED}
    row = bc.rows[new]
    created = next(event for event in feed.sent if event.subject == new)
    version = entity_version(row["@odata.etag"], row["lastModifiedDateTime"])
    assert created.id == change_id("contoso", str(COMPANY), "customers", new, version)
    assert created.bcorigin is ChangeOrigin.RECONCILIATION
    assert created.data is not None
    assert created.data["entity"] == {k: v for k, v in row.items() if not k.startswith("@")}
    assert created.data["reference"].endswith(f"/api/v2.0/companies({COMPANY})/customers({new})")
    assert created.type == "bcintegration.customers.created"
    assert created.source == f"/connections/contoso/environments/production/companies/{COMPANY}"


async def test_reads_go_back_by_the_overlap_in_ascending_order() -> None:
    reconciler, bc, _, marks, clock = world()
    bc.write()
    await reconciler.reconcile(WATCH, "production", bc)
    mark = await marks.mark("contoso", "customers")
    assert mark is not None
    assert mark.modified_after is not None

    run = await reconciler.reconcile(WATCH, "production", bc)

    assert run.lag == clock.now() - mark.modified_after
    assert run.since_last == timedelta(0)  # the manual clock did not move between the two runs
    query = bc.queries[-1]  # ids are not compared yet: the last read is the changes'

    assert query.orderby == ("lastModifiedDateTime",)
    assert query.filter is not None
    since = parse_iso_utc(query.filter.text.split(" gt ")[1])
    assert since == mark.modified_after - POLICY.overlap


async def test_a_page_that_fails_to_publish_leaves_the_watermark_where_it_was() -> None:
    reconciler, bc, _, marks, clock = world()
    bc.write()
    await reconciler.reconcile(WATCH, "production", bc)
    before = await marks.mark("contoso", "customers")
    bc.write()

    failing = Reconciler(BrokenFeed(), marks, POLICY, clock)

    with pytest.raises(ChangeStorageError):
        await failing.reconcile(WATCH, "production", bc)
    after = await marks.mark("contoso", "customers")
    assert after is not None
    assert before is not None
    assert after.modified_after == before.modified_after


async def test_a_delete_no_notification_reported_becomes_a_tombstone_when_ids_are_compared() -> None:
    reconciler, bc, feed, marks, clock = world()
    gone, kept = bc.write(), bc.write()
    await reconciler.reconcile(WATCH, "production", bc)
    del bc.rows[gone]

    early = await reconciler.reconcile(WATCH, "production", bc)
    clock.advance(POLICY.deletes_every)
    due = await reconciler.reconcile(WATCH, "production", bc)

    assert (early.deleted, due.deleted) == (0, 1)
    (tombstone,) = [event for event in feed.sent if event.bcchange is ChangeKind.DELETED]
    assert tombstone.subject == gone
    assert tombstone.bcchange is ChangeKind.DELETED
    assert tombstone.id == change_id("contoso", str(COMPANY), "customers", gone, tombstone_version())
    assert tombstone.data is None
    assert await marks.known_ids("contoso", "customers") == {kept}


async def test_without_include_data_the_event_carries_a_reference() -> None:
    reconciler, bc, feed, _, _ = world()
    watch = WATCH.model_copy(update={"include_data": False})
    await reconciler.reconcile(watch, "production", bc)
    entity_id = bc.write()

    await reconciler.reconcile(watch, "production", bc)

    (event,) = feed.sent
    url = f"https://bc.example/v2.0/tenant/production/api/v2.0/companies({COMPANY})/customers({entity_id})"
    assert event.data == {"reference": url}
    assert bc.queries[-1].select == ("id", "lastModifiedDateTime")


async def test_every_event_conforms_to_the_published_schema_and_the_sdk() -> None:
    reconciler, bc, feed, _, clock = world()
    gone = bc.write()
    await reconciler.reconcile(WATCH, "production", bc)
    bc.write(name="new")
    del bc.rows[gone]
    clock.advance(POLICY.deletes_every)

    await reconciler.reconcile(WATCH, "production", bc)

    assert {event.bcchange for event in feed.sent} == {ChangeKind.CREATED, ChangeKind.DELETED}
    for event in feed.sent:
        assert conforming(event.to_json())["id"] == event.id
