"""Reconciliation of an entity set without `lastModifiedDateTime` (a custom API page): whole reads on the id
comparison's schedule, only versions that differ published, tombstones for ids gone."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from bcjobs.changes import ChangeKind, ChangeOrigin, change_id
from shared.bc.errors import RequestValidationError
from shared.bc.models import BcEndpoint, Entity, EntitySet
from shared.bc.odata import ODataQuery
from shared.changes.events import Where, version_event
from shared.changes.feed import MemoryChangeFeed
from shared.changes.reconcile import ReconcilePolicy, Reconciler
from shared.changes.watch import Watch
from shared.changes.watermarks import MemoryWatermarkStore
from testkit.clock import ManualClock

COMPANY = UUID("aaaaaaaa-0000-0000-0000-000000000001")
ENDPOINT = BcEndpoint("https://bc.example", "production", "tenant")
POLICY = ReconcilePolicy(overlap=timedelta(minutes=5), deletes_every=timedelta(hours=24))
WATCH = Watch(
    connection="contoso",
    name="tracking",
    entity_set="shipmentTrackings",
    api="contoso/app/v1.0",
    include_data=True,
)


@dataclass
class PageWithoutModified:
    """A custom API page without lastModifiedDateTime: BC's 400 when a query names it; ETags as versions."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    queries: list[ODataQuery] = field(default_factory=list)
    _stamps: itertools.count[int] = field(default_factory=itertools.count)
    endpoint: BcEndpoint = ENDPOINT

    async def company_id(self) -> UUID:
        return COMPANY

    def write(self, entity_id: str | None = None, status: str = "Pending") -> str:
        entity_id = entity_id or str(uuid4())
        self.rows[entity_id] = {"id": entity_id, "status": status, "@odata.etag": f'W/"{next(self._stamps)}"'}
        return entity_id

    async def pages(
        self, entity_set: EntitySet, query: ODataQuery | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[tuple[Entity, ...]]:
        query = query or ODataQuery()
        self.queries.append(query)
        if "lastModifiedDateTime" in (*query.select, *query.orderby) or query.filter is not None:
            raise RequestValidationError(
                "Could not find a property named 'lastModifiedDateTime' on type 'Microsoft.NAV.shipmentTracking'.",
                status=400,
                code="BadRequest_NotFound",
            )
        rows = list(self.rows.values())
        size = page_size or 1000
        for start in range(0, len(rows), size):
            yield tuple(Entity.from_json(row) for row in rows[start : start + size])


def world() -> tuple[Reconciler, PageWithoutModified, MemoryChangeFeed, MemoryWatermarkStore, ManualClock]:
    clock = ManualClock()
    feed, marks = MemoryChangeFeed(), MemoryWatermarkStore()
    return Reconciler(feed, marks, POLICY, clock), PageWithoutModified(), feed, marks, clock


async def test_the_first_run_learns_the_set_has_no_modified_field_and_records_every_version() -> None:
    reconciler, bc, feed, marks, _ = world()
    existing = {bc.write() for _ in range(3)}

    run = await reconciler.reconcile(WATCH, "production", bc)

    assert (run.baseline, run.read, feed.sent) == (True, 3, [])
    mark = await marks.mark("contoso", "tracking")
    assert mark is not None
    assert mark.whole
    versions = await marks.known_versions("contoso", "tracking")
    assert set(versions) == existing
    assert all(versions.values())


async def test_a_whole_read_publishes_only_the_versions_that_differ_and_tombstones_ids_gone() -> None:
    reconciler, bc, feed, _, clock = world()
    kept, changed, gone = bc.write(), bc.write(), bc.write()
    await reconciler.reconcile(WATCH, "production", bc)
    bc.write(changed, status="Shipped")
    new = bc.write()
    del bc.rows[gone]
    clock.advance(POLICY.deletes_every)

    run = await reconciler.reconcile(WATCH, "production", bc)

    assert (run.read, run.published, run.deleted) == (3, 2, 1)
    kinds = {event.subject: event.bcchange for event in feed.sent}
    assert kinds == {changed: ChangeKind.UPDATED, new: ChangeKind.CREATED, gone: ChangeKind.DELETED}
    assert kept not in kinds
    assert {event.bcorigin for event in feed.sent} == {ChangeOrigin.RECONCILIATION}
    etag = bc.rows[changed]["@odata.etag"]
    (update,) = [event for event in feed.sent if event.subject == changed]
    assert update.id == change_id(
        "contoso", str(COMPANY), "shipmentTrackings", changed, etag
    )  # the webhook path's


async def test_whole_reads_wait_for_the_id_comparisons_schedule_and_repeat_nothing() -> None:
    reconciler, bc, feed, _, clock = world()
    entity_id = bc.write()
    await reconciler.reconcile(WATCH, "production", bc)
    bc.write(entity_id, status="Delivered")
    reads = len(bc.queries)

    early = await reconciler.reconcile(WATCH, "production", bc)
    clock.advance(POLICY.deletes_every)
    due = await reconciler.reconcile(WATCH, "production", bc)
    clock.advance(POLICY.deletes_every)
    again = await reconciler.reconcile(WATCH, "production", bc)

    assert (early.read, len(bc.queries)) == (0, reads + 2)  # the early run read nothing
    assert (due.published, again.published, again.read) == (1, 0, 1)
    assert early.since_last == timedelta(0)
    assert len(feed.sent) == 1


async def test_a_version_the_webhook_path_logged_first_is_seen_not_published_again() -> None:
    reconciler, bc, feed, _, clock = world()
    entity_id = bc.write()
    await reconciler.reconcile(WATCH, "production", bc)
    bc.write(entity_id, status="Shipped")
    where = Where("contoso", "production", str(COMPANY), "shipmentTrackings")
    entity = Entity.from_json(bc.rows[entity_id])
    await feed.publish(
        [version_event(where, entity_id, entity, ChangeKind.UPDATED, ChangeOrigin.WEBHOOK, clock.now(), None)]
    )
    clock.advance(POLICY.deletes_every)

    run = await reconciler.reconcile(WATCH, "production", bc)

    assert (run.published, run.seen) == (0, 1)
    assert [event.bcorigin for event in feed.sent] == [ChangeOrigin.WEBHOOK]


async def test_another_400_is_not_taken_for_a_missing_field() -> None:
    reconciler, _, _, marks, _ = world()

    class Refusing(PageWithoutModified):
        async def pages(
            self, entity_set: EntitySet, query: ODataQuery | None = None, *, page_size: int | None = None
        ) -> AsyncIterator[tuple[Entity, ...]]:
            nothing: tuple[tuple[Entity, ...], ...] = ()
            for page in nothing:  # an async generator that fails before its first page
                yield page
            raise RequestValidationError("The company is blocked.", status=400)

    with pytest.raises(RequestValidationError):
        await reconciler.reconcile(WATCH, "production", Refusing())
    assert await marks.mark("contoso", "tracking") is None


async def test_without_include_data_a_whole_read_selects_only_ids() -> None:
    reconciler, bc, _, _, _ = world()
    bc.write()

    await reconciler.reconcile(WATCH.model_copy(update={"include_data": False}), "production", bc)

    assert bc.queries[-1].select == ("id",)
