"""Operations views: the status page (what it shows, its HTML) and the telemetry timer's sampling.

Reads shared.auth (the connection's status), the jobs table, the job queues and the throttle's coordination row;
writes nothing but gauges. Triggers: shared/triggers/admin_page.py (`GET /api/status`) and
shared/triggers/telemetry_sample.py (every minute).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from shared import telemetry
from shared.http import HTML, Reply
from shared.ops.page import PAGE_HEADERS, Target, render
from shared.ops.sampling import Sample, sample
from shared.ops.snapshot import Snapshot, collect
from shared.ops.sources import QUEUES, AzureSources, ManagerConnection, StorageQueues
from shared.settings import Settings

__all__ = ["Sample", "Snapshot", "sample_now", "status_page"]


async def status_page(settings: Settings) -> Reply:
    """The status page (HTML with its headers), read now from Azure Storage and the token lifecycle."""
    sources = AzureSources(settings)
    try:
        snapshot = await collect(sources.sources, datetime.now(UTC), telemetry.recent_bc_requests())
    finally:
        await sources.aclose()
    target = Target(settings.bc.environment, settings.bc.company_name)
    return Reply(200, render(snapshot, target), PAGE_HEADERS, HTML)


async def sample_now(settings: Settings) -> Sample:
    """The telemetry timer's run: queue gauges and the token expiry gauge."""
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        return await sample(
            StorageQueues(settings, closers), QUEUES, ManagerConnection(settings), datetime.now(UTC)
        )
    finally:
        for close in reversed(closers):
            await close()
