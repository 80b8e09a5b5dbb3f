"""Operations views: the status page (what it shows, its HTML) and the telemetry timer's sampling.

Reads the connection registry, shared.auth (each connection's status), the jobs table, the job queues and the
throttle's coordination rows; writes nothing but gauges. The page lists every connection when the registry holds
more than the settings' one (shared.ops.per_connection); its reads run in parallel and its snapshot is kept for
SNAPSHOT_SECONDS, so reloads and several admins cost one read of everything per interval. Triggers:
shared/triggers/admin_page.py (`GET /api/status`) and shared/triggers/telemetry_sample.py (every minute).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from shared import telemetry
from shared.changes.feed_status import FeedStatus, read_feed_status
from shared.http import HTML, Reply
from shared.ops.page import PAGE_HEADERS, Target, render
from shared.ops.per_connection import ConnectionView, connection_views
from shared.ops.sampling import Sample, sample
from shared.ops.snapshot import Snapshot, read_sources
from shared.ops.sources import (
    QUEUES,
    AzureSources,
    ManagerConnection,
    StorageQueues,
    registered_connections,
)
from shared.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["SNAPSHOT_SECONDS", "Sample", "Snapshot", "sample_now", "snapshot_now", "status_page"]

# How long a page's snapshot is shown again to the next reloads (per process): short enough that an admin who just
# fixed a connection sees it after one reload, long enough that a refreshing browser or several admins do not
# multiply the page's storage and Key Vault reads (two per connection). The page shows when it was read.
SNAPSHOT_SECONDS = 5.0

_kept: list[tuple[Settings, float, Snapshot]] = []  # at most one: the process's settings


async def status_page(settings: Settings) -> Reply:
    """The status page (HTML with its headers), read from Azure Storage and the token lifecycle (at most
    SNAPSHOT_SECONDS old)."""
    snapshot = await snapshot_now(settings)
    target = Target(settings.bc.environment, settings.bc.company_name)
    return Reply(200, render(snapshot, target), PAGE_HEADERS, HTML)


async def snapshot_now(settings: Settings) -> Snapshot:
    """The kept snapshot while younger than SNAPSHOT_SECONDS, else a new one. (Two reloads in the same instant
    may both read: harmless, and no lock is shared across event loops.)"""
    for kept_settings, read_at, kept in _kept:
        if kept_settings == settings and time.monotonic() - read_at < SNAPSHOT_SECONDS:
            return kept
    snapshot = await _read(settings)
    _kept[:] = [(settings, time.monotonic(), snapshot)]
    return snapshot


async def _read(settings: Settings) -> Snapshot:
    """Every source in parallel, then a line per connection when there is more than the settings' one."""
    sources = AzureSources(settings)
    now = datetime.now(UTC)
    try:
        snapshot, rows = await read_sources(sources.sources, now, telemetry.recent_bc_requests())
        views, problem = await _guarded_views(sources, rows, now)
        feed, feed_problem = await _guarded_feed(settings)
    finally:
        await sources.aclose()
    snapshot = replace(snapshot, change_feed=feed)
    if feed_problem is not None:
        snapshot = replace(snapshot, problems={**snapshot.problems, "change feed": feed_problem})
    if problem is not None:
        return replace(snapshot, problems={**snapshot.problems, "connections": problem})
    return replace(snapshot, connections=views) if len(views) > 1 else snapshot


async def _guarded_feed(settings: Settings) -> tuple[FeedStatus | None, str | None]:
    """The change feed's subscriptions, or why they are not shown (the rest of the page still is)."""
    try:
        return await read_feed_status(settings), None
    except Exception as exc:  # noqa: BLE001 - the page answers without the change feed
        logger.warning(
            "status page: the change feed's subscriptions could not be read: %s",
            type(exc).__name__,
            extra={"event": "ops.status_section_failed", "section": "change feed"},
        )
        return None, f"could not be read ({type(exc).__name__})"


async def _guarded_views(
    sources: AzureSources, rows: tuple[list[dict[str, Any]], bool] | None, now: datetime
) -> tuple[list[ConnectionView], str | None]:
    """Every connection's line, or why there is none (the registry could not be read; the rest still shows)."""
    try:
        return await connection_views(sources.directory, rows, now), None
    except Exception as exc:  # noqa: BLE001 - the page answers without the registry
        logger.warning(
            "status page: the connection registry could not be read: %s",
            type(exc).__name__,
            extra={"event": "ops.status_section_failed", "section": "connections"},
        )
        return [], f"could not be read ({type(exc).__name__}); only the settings' connection is shown"


async def sample_now(settings: Settings) -> Sample:
    """The telemetry timer's run: queue gauges and every connection's token expiry gauge."""
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        others = await _registered(settings)
        queues = StorageQueues(settings, closers)
        return await sample(queues, QUEUES, ManagerConnection(settings), datetime.now(UTC), others)
    finally:
        for close in reversed(closers):
            await close()


async def _registered(settings: Settings) -> list[ManagerConnection]:
    """The registered connections' status sources; none when the registry cannot be read (logged)."""
    try:
        return await registered_connections(settings)
    except Exception as exc:  # noqa: BLE001 - the queue and settings' gauges go on without the registry
        logger.warning(
            "telemetry sample: the connection registry could not be read (%s)",
            type(exc).__name__,
            extra={"event": "telemetry.sample_failed", "source": "connections"},
        )
        return []
