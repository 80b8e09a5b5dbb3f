"""Reconciliation: gap healing per watch. Webhooks are a doorbell, not a ledger (reference (a): notifications are
missing for changes by users who cannot schedule jobs, after an environment copy, and through an open BC bug).

Each run reads `lastModifiedDateTime gt (watermark - overlap)` ascending (`$orderby=lastModifiedDateTime`), page by
page through the lane's client (its token and throttle, `Data-Access-Intent: ReadOnly`), builds one ChangeEvent per
entity version (origin `reconciliation`, the same `change_id` the webhook path computes, so a version either path
saw already is `seen`, not published again) and publishes each page; the watermark moves only after publish
returned (the events are durable), so a crash re-reads, never skips. A page with events the feed HELD (a job's
write whose answer was lost may have made them: shared/changes/echoes.py) ends the run before the watermark
passes it: the next run reads them again (a held tombstone's id stays known, so the next comparison finds it; a
whole read records no held version, so the next one publishes it). The overlap covers transactions that commit
after a later one and clock skew.

A watch's first run publishes nothing: it records the ids and the newest lastModifiedDateTime (the feed starts at
the watch's creation; entities changed within the overlap before it are published by the second run). Every
`BC_RECONCILE_DELETES_HOURS` the ids BC has are compared with the ids seen: a known id BC no longer has is a delete
no notification reported, published as a tombstone. The known ids are read once per run that reads any entity
(the overlap usually re-reads the newest one, so most runs do), and only ids new to the watch are written.

**Entity sets without `lastModifiedDateTime`** (custom API pages often lack it; report-style APIs too: reference
(e) E1 "Gotchas"; BC then sends a `collection` as the bare URL, A3): no `gt` filter can find what changed. The
first run learns it from BC's 400 to `$select`/`$orderby` of the field, marks the watch `whole` and records every
id with its version (the change id of the version read: ETag-based, as every path computes it). Each later whole
read (the whole collection, paged) publishes the versions that differ from the recorded ones, which the change
log's id index still drops when the webhook path logged them first, and a tombstone for each recorded id BC no
longer has. A whole read costs the whole set, so it runs on the id comparison's slower schedule,
`BC_RECONCILE_DELETES_HOURS`; the runs in between only record that they ran.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Container, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from bcjobs.changes import (
    ChangeEvent,
    ChangeKind,
    ChangeOrigin,
)
from shared.bc.errors import RequestValidationError
from shared.bc.models import BcEndpoint, Entity, EntitySet
from shared.bc.odata import ODataQuery, odata_field
from shared.changes.events import Where, tombstone_event, version_event
from shared.changes.feed import ChangeFeed, Published
from shared.changes.subscription_manager import api_route
from shared.changes.watch import Watch
from shared.changes.watermarks import Watermark, WatermarkStore
from shared.clock import Clock, parse_iso_utc

MODIFIED = "lastModifiedDateTime"
PAGE_SIZE = 500


class ReconcileReader(Protocol):
    """What reconciliation uses of a lane's BusinessCentralClient."""

    @property
    def endpoint(self) -> BcEndpoint: ...

    async def company_id(self) -> UUID: ...

    def pages(
        self, entity_set: EntitySet, query: ODataQuery | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[tuple[Entity, ...]]: ...


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    """From the settings: how far back each run re-reads, and how often ids are compared."""

    overlap: timedelta
    deletes_every: timedelta


@dataclass(frozen=True, slots=True)
class WatchRun:
    """What one reconciliation of one watch did; `lag` is how far its watermark trails now."""

    connection: str
    watch: str
    read: int = 0
    published: int = 0
    seen: int = 0
    deleted: int = 0
    held: int = 0  # events an ambiguous write of a job holds (shared/changes/echoes.py): read again next run
    baseline: bool = False
    lag: timedelta | None = None
    since_last: timedelta | None = None  # since the previous completed run (None: the first)


@dataclass(frozen=True, slots=True)
class _WatchTarget:
    watch: Watch
    environment: str
    company_id: UUID
    entity_set: EntitySet
    base_url: (
        str  # the entity set's absolute URL: events' `data.reference` (bcjobs/changes.py, docs/changes.md)
    )


class Reconciler:
    """Reconciles watches into a ChangeFeed (see the module's docstring)."""

    def __init__(
        self, feed: ChangeFeed, marks: WatermarkStore, policy: ReconcilePolicy, clock: Clock
    ) -> None:
        self._feed = feed
        self._marks = marks
        self._policy = policy
        self._clock = clock

    async def reconcile(self, watch: Watch, environment: str, bc: ReconcileReader) -> WatchRun:
        """One run for one watch: publish what BC changed since the watermark, then compare ids when due."""
        target = await _target(watch, environment, bc)
        mark = await self._marks.mark(watch.connection, watch.name) or Watermark(watch.connection, watch.name)
        if mark.whole:
            return await self._whole(target, mark, bc)
        if mark.modified_after is None:
            try:
                return await self._baseline(target, mark, bc)
            except RequestValidationError as exc:
                if not _lacks_modified(exc):
                    raise
                return await self._whole_baseline(target, mark, bc)
        previous = mark.reconciled_at
        run, mark = await self._changes(target, mark, bc)
        if previous is not None:
            run = replace(run, since_last=self._clock.now() - previous)
        if self._deletes_due(mark):
            deleted, mark = await self._deletes(target, mark, bc)
            run = replace(run, deleted=deleted)
        await self._marks.put(replace(mark, reconciled_at=self._clock.now()))
        return replace(run, lag=self._lag(mark))

    async def _baseline(self, target: _WatchTarget, mark: Watermark, bc: ReconcileReader) -> WatchRun:
        """First run: remember every id and the newest lastModifiedDateTime; publish nothing."""
        newest: datetime | None = None
        read = 0
        query = ODataQuery(select=("id", MODIFIED), orderby=(MODIFIED,))
        async for page in bc.pages(target.entity_set, query, page_size=PAGE_SIZE):
            read += len(page)
            await self._marks.add_ids(mark.connection, mark.watch, _ids(page))
            newest = _newest(page, newest)
        now = self._clock.now()
        start = replace(mark, modified_after=newest or now, deletes_checked_at=now, reconciled_at=now)
        await self._marks.put(start)
        return WatchRun(mark.connection, mark.watch, read=read, baseline=True, lag=self._lag(start))

    async def _whole_baseline(self, target: _WatchTarget, mark: Watermark, bc: ReconcileReader) -> WatchRun:
        """First run of a set without lastModifiedDateTime: every id and its version recorded; nothing published."""
        read, now = 0, self._clock.now()
        async for page in bc.pages(target.entity_set, _whole_query(target.watch), page_size=PAGE_SIZE):
            read += len(page)
            versions = {
                e.subject: e.id for e in (_event(target, x, (), now) for x in page if x.id is not None)
            }
            await self._marks.put_versions(mark.connection, mark.watch, versions)
        start = replace(mark, whole=True, deletes_checked_at=now, reconciled_at=now)
        await self._marks.put(start)
        return WatchRun(mark.connection, mark.watch, read=read, baseline=True)

    async def _whole(self, target: _WatchTarget, mark: Watermark, bc: ReconcileReader) -> WatchRun:
        """A run of a `whole` watch: the whole read when due (its schedule is the id comparison's), else none."""
        now = self._clock.now()
        since_last = None if mark.reconciled_at is None else now - mark.reconciled_at
        run = WatchRun(mark.connection, mark.watch, since_last=since_last)
        if self._deletes_due(mark):
            run = await self._whole_read(target, run, bc)
            mark = replace(mark, deletes_checked_at=now)
        await self._marks.put(replace(mark, reconciled_at=now))
        return run

    async def _whole_read(self, target: _WatchTarget, run: WatchRun, bc: ReconcileReader) -> WatchRun:
        """Publish the versions that differ from the recorded ones; a tombstone for each recorded id gone."""
        known = await self._marks.known_versions(run.connection, run.watch)
        present: set[str] = set()
        async for page in bc.pages(target.entity_set, _whole_query(target.watch), page_size=PAGE_SIZE):
            now = self._clock.now()
            events = [_event(target, entity, known, now) for entity in page if entity.id is not None]
            present.update(event.subject for event in events)
            fresh = [event for event in events if known.get(event.subject) != event.id]
            published = await self._feed.publish(fresh)
            done = {
                e.subject: e.id for e in fresh if e.id not in published.held
            }  # held: read again next time
            await self._marks.put_versions(run.connection, run.watch, done)
            known.update(done)
            run = replace(run, read=run.read + len(page), published=run.published + published.new)
            run = replace(run, seen=run.seen + published.seen, held=run.held + len(published.held))
        gone = await self._bury(target, sorted(set(known) - present))
        return replace(run, deleted=len(gone))

    async def _changes(
        self, target: _WatchTarget, mark: Watermark, bc: ReconcileReader
    ) -> tuple[WatchRun, Watermark]:
        assert mark.modified_after is not None  # noqa: S101 - _baseline ran first
        since = mark.modified_after - self._policy.overlap
        query = _query(target.watch, since)
        known: set[str] | None = None  # read with the first non-empty page
        run = WatchRun(mark.connection, mark.watch)
        async for page in bc.pages(target.entity_set, query, page_size=PAGE_SIZE):
            if not page:
                continue
            known = known if known is not None else await self._marks.known_ids(mark.connection, mark.watch)
            published = await self._publish_page(target, page, known)
            run = replace(run, read=run.read + len(page), published=run.published + published.new)
            run = replace(run, seen=run.seen + published.seen, held=run.held + len(published.held))
            if published.held:  # the watermark stays before them: the next run reads them again
                break
            mark = await self._advance(mark, page)  # only now: the page's events are durable
        return run, mark

    async def _publish_page(self, target: _WatchTarget, page: Sequence[Entity], known: set[str]) -> Published:
        """The page's events published; the ids new to the watch remembered (for kinds and the id comparison)."""
        now = self._clock.now()
        published = await self._feed.publish(
            [_event(target, e, known, now) for e in page if e.id is not None]
        )
        new_ids = [entity_id for entity_id in _ids(page) if entity_id not in known]
        if new_ids:
            await self._marks.add_ids(target.watch.connection, target.watch.name, new_ids)
            known.update(new_ids)
        return published

    async def _advance(self, mark: Watermark, page: Sequence[Entity]) -> Watermark:
        assert mark.modified_after is not None  # noqa: S101 - a baseline set it
        newest = _newest(page, mark.modified_after)
        moved = replace(mark, modified_after=max(newest or mark.modified_after, mark.modified_after))
        await self._marks.put(moved)
        return moved

    async def _deletes(
        self, target: _WatchTarget, mark: Watermark, bc: ReconcileReader
    ) -> tuple[int, Watermark]:
        """Known ids BC no longer has: a tombstone each (deletes no notification reported)."""
        present: set[str] = set()
        async for page in bc.pages(target.entity_set, ODataQuery(select=("id",)), page_size=PAGE_SIZE):
            present.update(_ids(page))
        gone = await self._bury(
            target, sorted(await self._marks.known_ids(mark.connection, mark.watch) - present)
        )
        checked = replace(mark, deletes_checked_at=self._clock.now())
        await self._marks.put(checked)
        return len(gone), checked

    async def _bury(self, target: _WatchTarget, gone: list[str]) -> list[str]:
        """Publish a tombstone per id gone and forget the ids; a held one stays known (compared again next time)."""
        if not gone:
            return []
        tombstones = [_tombstone(target, entity_id, self._clock.now()) for entity_id in gone]
        held = set((await self._feed.publish(tombstones)).held)
        buried = [event.subject for event in tombstones if event.id not in held]
        await self._marks.remove_ids(target.watch.connection, target.watch.name, buried)
        return buried

    def _deletes_due(self, mark: Watermark) -> bool:
        last = mark.deletes_checked_at
        return last is None or self._clock.now() - last >= self._policy.deletes_every

    def _lag(self, mark: Watermark) -> timedelta | None:
        return None if mark.modified_after is None else self._clock.now() - mark.modified_after


async def _target(watch: Watch, environment: str, bc: ReconcileReader) -> _WatchTarget:
    company = watch.company_id or await bc.company_id()
    entity_set = EntitySet(watch.entity_set, api=api_route(watch), company_id=company)
    url = f"{bc.endpoint.api_root(entity_set.api)}/{entity_set.relative_path(company)}"
    return _WatchTarget(watch, environment, company, entity_set, url)


def _query(watch: Watch, since: datetime) -> ODataQuery:
    select = tuple(dict.fromkeys(("id", MODIFIED, *watch.select))) if watch.select else ()
    if not watch.include_data:
        select = ("id", MODIFIED)
    return ODataQuery(filter=odata_field(MODIFIED).gt(since), select=select, orderby=(MODIFIED,))


def _whole_query(watch: Watch) -> ODataQuery:
    """A whole read: the watch's fields (with `id`), or only `id` when it wants no data (the ETag comes anyway)."""
    if not watch.include_data:
        return ODataQuery(select=("id",))
    return ODataQuery(select=tuple(dict.fromkeys(("id", *watch.select))) if watch.select else ())


def _lacks_modified(error: RequestValidationError) -> bool:
    """BC's 400 for a property the API page does not have: "Could not find a property named
    'lastModifiedDateTime' on type ..." (OData's answer to an unknown `$select`/`$orderby` property)."""
    return error.status == 400 and MODIFIED in error.message


def _ids(page: Sequence[Entity]) -> list[str]:
    return [str(entity.id) for entity in page if entity.id is not None]


def _newest(page: Sequence[Entity], current: datetime | None) -> datetime | None:
    for entity in page:
        modified = parse_iso_utc(entity.values.get(MODIFIED))
        if modified is not None and (current is None or modified > current):
            current = modified
    return current


def _where(target: _WatchTarget) -> Where:
    watch = target.watch
    return Where(watch.connection, target.environment, str(target.company_id), watch.entity_set)


def _event(target: _WatchTarget, entity: Entity, known: Container[str], now: datetime) -> ChangeEvent:
    """The version read (created when the watch had not seen the id): the id the webhook path gives it too."""
    entity_id = str(entity.id)
    kind = ChangeKind.UPDATED if entity_id in known else ChangeKind.CREATED
    data = _data(target, entity)
    return version_event(_where(target), entity_id, entity, kind, ChangeOrigin.RECONCILIATION, now, data)


def _data(target: _WatchTarget, entity: Entity) -> dict[str, Any]:
    """Always the entity's URL; the entity too when the watch asks (the feed drops it, saying so, when the event
    would not fit a queue message: shared/changes/log.py `fitted`)."""
    reference = f"{target.base_url}({entity.id})"
    return (
        {"reference": reference, "entity": dict(entity.values)}
        if target.watch.include_data
        else {"reference": reference}
    )


def _tombstone(target: _WatchTarget, entity_id: str, now: datetime) -> ChangeEvent:
    return tombstone_event(_where(target), entity_id, now, ChangeOrigin.RECONCILIATION)
