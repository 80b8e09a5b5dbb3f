"""Wiring of the expansion per process and event loop (issue 22): the job pipeline's lanes, the feed's parts.

Apart from the receiver's wiring (inbound.py) so that the receiver's module imports nothing of the job pipeline.
The entry points the queue triggers call are here too: `expand_text` (bc-notifications) and `record_dead`
(bc-notifications-poison).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from shared import telemetry
from shared.changes.compose import change_services, watch_lookup
from shared.changes.directories import change_directories
from shared.changes.expansion import (
    Expanded,
    Expansion,
    FeedLane,
    RecordedVersions,
    SecretSource,
    WatchSource,
)
from shared.changes.feed import ChangeFeed
from shared.changes.inbound import held_notifications
from shared.changes.notifications import NotificationMessage
from shared.changes.shared_reads import SharedReads
from shared.errors import IntegrationError
from shared.jobs.compose import ConnectionLanes, job_services
from shared.settings import Settings, get_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeedParts:
    """What the expansion needs besides BC: the connections' notification secrets, watches and the change feed."""

    secrets: SecretSource
    watches: WatchSource
    feed: ChangeFeed
    versions: RecordedVersions | None = None  # reconciliation's records (bare collections of `whole` watches)


class FeedNotWiredError(IntegrationError):
    """The job pipeline was built without connection lanes (a hand-built JobServices)."""


async def feed_parts(settings: Settings) -> FeedParts:
    """The process's notification secrets (Key Vault `bc-notify-{connection}`, cached per process: subs'
    KeyVaultNotifySecrets), watches (shared.changes.compose.watch_lookup), change log (TableChangeFeed) and
    reconciliation's watermarks (TableWatermarkStore)."""
    directories = await change_directories(settings)
    feed = (await change_services(settings)).feed
    return FeedParts(directories.secrets, watch_lookup(settings), feed, directories.watermarks)


class LaterQueue(Protocol):
    """Where a message whose events were held goes again (shared.changes.notifications.StorageNotificationQueue)."""

    async def send_later(self, message: NotificationMessage, delay_seconds: float) -> None: ...


# Tests put their own queue last.
HELD_QUEUE: list[Callable[[], Awaitable[LaterQueue]]] = [held_notifications]
# Tests put their own parts last.
FEED_PARTS: list[Callable[[Settings], Awaitable[FeedParts]]] = [feed_parts]


@dataclass(frozen=True, slots=True)
class LaneFeeds:
    """FeedLanes over the job pipeline's lanes: the same token managers and throttles, at low priority."""

    lanes: ConnectionLanes

    async def feed_lane(self, connection: str) -> FeedLane:
        found, client = await self.lanes.feed_client(connection)
        return FeedLane(found, client)


async def expansion() -> Expansion:
    """This process's expansion (the job pipeline's lanes; the feed's parts per FEED_PARTS)."""
    settings = get_settings()
    lanes = (await job_services(settings)).lanes
    if lanes is None:  # JobServices built by hand (tests) have none
        raise FeedNotWiredError("the job pipeline was built without connection lanes")
    parts = await FEED_PARTS[-1](settings)
    reads = _reads.setdefault(asyncio.get_running_loop(), SharedReads())
    return Expansion(parts.secrets, parts.watches, LaneFeeds(lanes), parts.feed, reads, parts.versions)


# The reads in flight of this process, per event loop (their futures belong to it).
_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedReads] = weakref.WeakKeyDictionary()


async def expand_text(text: str) -> Expanded:
    """Expand one queue message; a text that is not one of ours is logged and dropped (it never will be)."""
    try:
        message = NotificationMessage.decode(text)
    except ValueError:
        telemetry.notification_items("other", "malformed")
        logger.error(
            "a bc-notifications message that is not a notification (%d characters) was dropped",
            len(text),
            extra={"event": "changes.message_unreadable"},
        )
        return Expanded(dropped=1)
    recheck = get_settings().changes.held_recheck_seconds
    return await expand_message(await expansion(), message, HELD_QUEUE[-1], recheck)


async def expand_message(
    expansion: Expansion,
    message: NotificationMessage,
    later: Callable[[], Awaitable[LaterQueue]],
    recheck_seconds: float,
) -> Expanded:
    """Expand; when events were held, queue the message again `recheck_seconds` later, as a new message (no
    delivery counted toward maxDequeueCount), until the job's retry clears the mark or the mark ends (at most
    AMBIGUOUS_HOLD, shared/jobs/journal.py). A failure to queue raises: the host delivers the message again."""
    expanded = await expansion.expand(message)
    if expanded.held:
        await (await later()).send_later(message, recheck_seconds)
        logger.info(
            "notification of %s queued again in %.0f s: %d change(s) held for a job's ambiguous write",
            message.connection,
            recheck_seconds,
            expanded.held,
            extra={"event": "changes.notification_held", "held": expanded.held},
        )
    return expanded


def record_dead(text: str, dequeue_count: int) -> None:
    """Record a notification the host gave up on (ERROR `changes.notification_dead_lettered`, for the alert): its
    connection, BC's correlation id and what it named. Nothing here touches storage, so recording cannot fail; the
    reconciliation reads what it would have brought."""
    try:
        message = NotificationMessage.decode(text)
    except ValueError:
        message = None
    items = [] if message is None else [(i.get("changeType"), i.get("resource")) for i in message.value]
    for change_type, _ in items:
        telemetry.notification_items(str(change_type), "dead_lettered")
    logger.error(
        "notification of connection %s given up after %d deliveries; reconciliation heals it: %s",
        message.connection if message else "(unreadable)",
        dequeue_count,
        items,
        extra={
            "event": "changes.notification_dead_lettered",
            "correlation_id": message.correlation_id if message else None,
            "items": len(items),
        },
    )
