"""The expansion: a `bc-notifications` message becomes change events (issue 22, point 2).

BC's notifications carry no data (reference (a) A3): they are a doorbell. Per message:

1. **Is it BC's?** The route's key and each item's clientState against the connection's secrets, in constant time
   (`hmac.compare_digest`). A mismatch is counted (`bc.notifications.items`, outcome `wrong_secret`), logged with
   the connection and dropped: the receiver answered 2xx already, as BC needs.
2. **Which watch?** Each item's `resource` (resources.py) against the connection's watches: API route, company
   (the connection's default one for a watch without company) and entity set. No watch: counted and dropped.
3. **Read, once per entity.** Items for one entity in one message (BC merges repeated updates, but a created and
   an updated, or parts split by the receiver, can meet) are one read: `deleted` anywhere wins (a tombstone,
   BC's ids are never reused); else one GET with the watch's `$select`. A 404 means the entity was deleted
   since: a tombstone too. `collection`: the set read page by page with BC's `lastModifiedDateTime gt` bound in
   ascending order (the whole set when BC sent none), one event per entity. A bare collection of a watch whose
   entity set has no `lastModifiedDateTime` (reconciliation marked it `whole`, watermarks.py) skips the versions
   reconciliation recorded, so only what changed is published, not the whole set once.
4. **Publish** through `ChangeFeed.publish`, which drops versions it has seen (by any path): at-least-once here,
   exactly one event per entity version there. Events it HELD (a job's write whose answer was lost may have made
   them; shared/changes/echoes.py) are counted in `Expanded.held`: the trigger's wiring queues the message again,
   delayed (expansion_compose.py), so they go out once the job's retry recorded its version, marked as its echo.

A document line's change arrives as its header's `updated` (BC does it: reference (a) A1), so a line edit is an
event of the header's entity set. Every BC read goes through the connection's lane at the feed's low priority
(`LowPriority`: never before a waiting job) with `Data-Access-Intent: ReadOnly`. Storage or BC trouble that
may pass raises: the host delivers the message again, and after maxDequeueCount the poison trigger records it.
Every log line of a message's expansion carries BC's `x-ms-correlation-id` (the telemetry scope's
`correlation_id`).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from bcjobs.changes import ChangeEvent, ChangeKind
from shared import telemetry
from shared.bc.models import BcEndpoint, Entity, EntityKey, EntitySet
from shared.bc.odata import ODataQuery, odata_field
from shared.changes.events import build_event, tombstone
from shared.changes.feed import ChangeFeed
from shared.changes.notifications import NotificationMessage
from shared.changes.resources import ItemTarget, NotificationItem, parse_item
from shared.changes.shared_reads import SharedReads
from shared.changes.watch import Watch
from shared.changes.watermarks import Watermark
from shared.connections import Connection, ConnectionUnusableError
from shared.telemetry.dimensions import job_scope

logger = logging.getLogger(__name__)
PAGE_SIZE = 1000  # BC's paging (server-driven paging) of a collection read


class RouteSecret(Protocol):
    """A connection's notification secrets: the route key and the clientState given to BC."""

    @property
    def key(self) -> str: ...

    @property
    def client_state(self) -> str: ...


class SecretSource(Protocol):
    """The connection's notification secrets (Key Vault `bc-notify-{connection}`), None when it has none."""

    async def get(self, connection: str) -> RouteSecret | None: ...


class WatchSource(Protocol):
    """The connection's watches."""

    async def watches(self, connection: str) -> list[Watch]: ...


class EntityReads(Protocol):
    """The BC reads the expansion makes (BusinessCentralClient's)."""

    @property
    def endpoint(self) -> BcEndpoint: ...

    async def get(self, key: EntityKey, query: ODataQuery | None = None) -> Entity: ...

    def pages(
        self, entity_set: EntitySet, query: ODataQuery | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[tuple[Entity, ...]]: ...

    async def company_id(self) -> UUID: ...


class RecordedVersions(Protocol):
    """What a whole read recorded per watch (WatermarkStore's): whether it is `whole`, each id's version."""

    async def mark(self, connection: str, watch: str) -> Watermark | None: ...

    async def known_versions(self, connection: str, watch: str) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class FeedLane:
    """A connection and the BC client its feed reads with (low priority, read-only intent)."""

    connection: Connection
    reads: EntityReads


class FeedLanes(Protocol):
    """The feed lane of a connection; ConnectionUnusableError when it is unknown or disabled."""

    async def feed_lane(self, connection: str) -> FeedLane: ...


@dataclass(frozen=True, slots=True)
class Expanded:
    """What one message became: events new to the feed, versions it had seen, items dropped, and events held (an
    ambiguous write of a job may have made them: the message must be expanded again later)."""

    new: int = 0
    seen: int = 0
    dropped: int = 0
    held: int = 0


@dataclass
class _Work:
    """One message's items, grouped: entities (by watch and id) and collections (by watch)."""

    entities: dict[tuple[str, UUID, UUID], tuple[Watch, NotificationItem, bool]] = field(default_factory=dict)
    collections: dict[tuple[str, UUID], tuple[Watch, NotificationItem]] = field(default_factory=dict)
    dropped: int = 0


class Expansion:
    """Turns notification messages into change events."""

    def __init__(
        self,
        secrets: SecretSource,
        watches: WatchSource,
        lanes: FeedLanes,
        feed: ChangeFeed,
        reads: SharedReads | None = None,
        versions: RecordedVersions | None = None,
    ) -> None:
        self._secrets, self._watches, self._lanes, self._feed = secrets, watches, lanes, feed
        self._reads = reads or SharedReads()
        self._versions = versions

    async def expand(self, message: NotificationMessage) -> Expanded:
        """Verify, group, read and publish one message; raises on storage or BC trouble that may pass."""
        with job_scope(correlation_id=message.correlation_id, connection=message.connection):
            items = await self._verified(message)
            if not items:
                return Expanded(dropped=len(message.value))
            try:
                lane = await self._lanes.feed_lane(message.connection)
            except ConnectionUnusableError as exc:
                _drop(message, "no_connection", items, exc.reason)
                return Expanded(dropped=len(message.value))
            work = await self._grouped(lane, items)
            expanded = await self._published(message, lane, work)
            logger.info(
                "notification of %s expanded: %d new, %d seen, %d dropped",
                message.connection,
                expanded.new,
                expanded.seen,
                expanded.dropped,
                extra={"event": "changes.expanded", "new": expanded.new, "seen": expanded.seen},
            )
            return expanded

    async def _verified(self, message: NotificationMessage) -> list[dict[str, Any]]:
        """The items whose route key and clientState match the connection's secrets (constant-time compares)."""
        secret = await self._secrets.get(message.connection)
        if secret is None or not _same(message.key, secret.key):
            why = "no notification secret" if secret is None else "the route key does not match"
            _drop(message, "wrong_secret", message.value, why)
            return []
        good: list[dict[str, Any]] = []
        bad: list[dict[str, Any]] = []
        for item in message.value:
            (good if _same(item.get("clientState"), secret.client_state) else bad).append(item)
        if bad:
            _drop(message, "wrong_secret", bad, "an item's clientState does not match")
        return good

    async def _grouped(self, lane: FeedLane, raw_items: list[dict[str, Any]]) -> _Work:
        """Parse, match each item to its watch, and merge the items of one entity (or one collection)."""
        watches = [w for w in await self._watches.watches(lane.connection.name) if w.enabled]
        default_company = await _default_company(lane, watches)
        work = _Work()
        for raw in raw_items:
            item = parse_item(raw)
            watch = _watch_for(item.target, watches, default_company) if item else None
            if item is None or watch is None:
                outcome = "malformed" if item is None else "no_watch"
                telemetry.notification_items(str(raw.get("changeType")), outcome)
                work.dropped += 1
                continue
            _add(work, watch, item)
        return work

    async def _published(self, message: NotificationMessage, lane: FeedLane, work: _Work) -> Expanded:
        events: list[ChangeEvent] = []
        for watch, item, deleted in work.entities.values():
            events.append(await _entity_event(self._reads, lane, watch, item, deleted, message.received_at))
        published = await self._feed.publish(events)
        new, seen, held = published.new, published.seen, len(published.held)
        for watch, item in work.collections.values():
            recorded = await self._recorded(watch, item)
            async for page in _collection_events(lane, watch, item, message.received_at):
                published = await self._feed.publish([e for e in page if recorded.get(e.subject) != e.id])
                new, seen, held = new + published.new, seen + published.seen, held + len(published.held)
        return Expanded(new, seen, work.dropped, held)

    async def _recorded(self, watch: Watch, item: NotificationItem) -> dict[str, str]:
        """The versions a whole read recorded for a `whole` watch's bare collection; else none."""
        if self._versions is None or item.target.since is not None:
            return {}
        mark = await self._versions.mark(watch.connection, watch.name)
        if mark is None or not mark.whole:
            return {}
        return await self._versions.known_versions(watch.connection, watch.name)


def _same(given: object, expected: str) -> bool:
    """Constant-time equality of a secret (anything not a string is simply unequal)."""
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _drop(message: NotificationMessage, outcome: str, items: Sequence[dict[str, Any]], why: str) -> None:
    """Count and log items that will not be expanded (the connection is named: the admin's next step)."""
    for raw in items:
        telemetry.notification_items(str(raw.get("changeType")), outcome)
    logger.warning(
        "%d notification item(s) of connection %s dropped: %s",
        len(items),
        message.connection,
        why,
        extra={"event": "changes.items_dropped", "outcome": outcome, "items": len(items)},
    )


async def _default_company(lane: FeedLane, watches: Sequence[Watch]) -> UUID | None:
    """The connection's default company (looked up by name once, by the client) when a watch needs it."""
    if all(watch.company_id is not None for watch in watches):
        return None
    return lane.connection.company_id or await lane.reads.company_id()


def _watch_for(target: ItemTarget, watches: Sequence[Watch], default_company: UUID | None) -> Watch | None:
    for watch in watches:
        company = watch.company_id or default_company
        if (watch.entity_set, watch.api_path(), company) == (
            target.entity_set,
            target.api_path,
            target.company_id,
        ):
            return watch
    return None


def _add(work: _Work, watch: Watch, item: NotificationItem) -> None:
    """Merge an item into the message's work: one read per entity, one paged read per collection."""
    target = item.target
    telemetry.notification_items(item.change_type, "expanded")
    if target.entity_id is None:
        known = work.collections.get((watch.name, target.company_id))
        if known is None or _wider(item, known[1]):
            work.collections[(watch.name, target.company_id)] = (watch, item)
        return
    key = (watch.name, target.company_id, target.entity_id)
    known_entity = work.entities.get(key)
    deleted = item.change_type == "deleted" or (known_entity is not None and known_entity[2])
    created = item if item.change_type == "created" or known_entity is None else known_entity[1]
    work.entities[key] = (watch, created, deleted)


def _wider(item: NotificationItem, known: NotificationItem) -> bool:
    """Whether a collection item reads more than the one kept: no bound, or an earlier one."""
    if known.target.since is None:
        return False
    return item.target.since is None or item.target.since < known.target.since


def _entity_set(watch: Watch, target: ItemTarget) -> EntitySet:
    return EntitySet(watch.entity_set, api=target.route, company_id=target.company_id)


def _select(watch: Watch) -> tuple[str, ...]:
    """The watch's `$select` with `id` (the event's subject), or () for every field."""
    if not watch.select:
        return ()
    return tuple(dict.fromkeys(("id", *watch.select)))


async def _entity_event(
    reads: SharedReads,
    lane: FeedLane,
    watch: Watch,
    item: NotificationItem,
    deleted: bool,
    received: datetime,
) -> ChangeEvent:
    """The entity's event: a tombstone for a delete (or a 404: deleted since), else its current version."""
    target = item.target
    entity = None if deleted else await _read(reads, lane, watch, target, received)
    if entity is None:
        return tombstone(lane.connection, watch, target, item.last_modified or received)
    kind = ChangeKind.CREATED if item.change_type == "created" else ChangeKind.UPDATED
    endpoint, fallback = lane.reads.endpoint, item.last_modified or received
    return build_event(endpoint, lane.connection, watch, target, entity, kind, fallback)


async def _read(
    reads: SharedReads, lane: FeedLane, watch: Watch, target: ItemTarget, received: datetime
) -> Entity | None:
    """The entity with the watch's `$select` (None: BC answered 404, deleted since), shared with a read in flight."""
    assert target.entity_id is not None  # noqa: S101 -- entity items only (parse_item)
    query = ODataQuery(select=_select(watch))
    key = _entity_set(watch, target).key(target.entity_id)
    flight = (
        lane.connection.name,
        str(target.company_id),
        target.api,
        watch.entity_set,
        str(key.id),
        *query.select,
    )
    return await reads.read(flight, received, lambda: lane.reads.get(key, query))


async def _collection_events(
    lane: FeedLane, watch: Watch, item: NotificationItem, received: datetime
) -> AsyncIterator[list[ChangeEvent]]:
    """Each page of the collection as events (ascending by lastModifiedDateTime when BC sent its bound)."""
    target, query = item.target, ODataQuery(select=_select(watch))
    if target.since is not None:
        query = ODataQuery(
            filter=odata_field("lastModifiedDateTime").gt(target.since),
            orderby=("lastModifiedDateTime asc",),
            select=_select(watch),
        )
    async for page in lane.reads.pages(_entity_set(watch, target), query, page_size=PAGE_SIZE):
        yield [
            build_event(
                lane.reads.endpoint, lane.connection, watch, target, entity, ChangeKind.UPDATED, received
            )
            for entity in page
            if entity.id is not None
        ]
