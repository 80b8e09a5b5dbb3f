"""The change feed's services for the running event loop: the change log table and the `bc-changes` queue.

One set per process and loop (shared/per_loop.py), like the job pipeline's: the aio SDK clients are bound to the
loop that made them. The expansion and the reconciliation publish through `feed`; `GET /api/changes` reads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bcjobs.changes import CHANGES_QUEUE
from shared.azure_clients import queue_client, table_client
from shared.changes.log import TableChangeFeed, changes_table_name
from shared.clock import SystemClock
from shared.per_loop import PerLoop
from shared.settings import Settings, get_settings


@dataclass
class ChangeServices:
    """The change log (ChangeFeed and ChangeLog) and the clients it owns."""

    feed: TableChangeFeed
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        """Close every client."""
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


async def _build(settings: Settings) -> ChangeServices:
    table = table_client(settings.storage, changes_table_name(settings.storage.table_prefix))
    queue = queue_client(settings.storage, CHANGES_QUEUE)
    services = ChangeServices(TableChangeFeed(table.client, queue.client, SystemClock()))
    services.closers += [table.close, queue.close]
    try:
        await services.feed.ensure()
    except BaseException:
        await services.aclose()
        raise
    return services


_per_loop: PerLoop[Settings, ChangeServices] = PerLoop(_build)


async def change_services(settings: Settings | None = None) -> ChangeServices:
    """The running loop's change feed, built (table and queue created) on first use."""
    return await _per_loop.get(settings or get_settings())


async def close_change_services() -> None:
    """Close and forget the running loop's change feed (tests, local host shutdown)."""
    await _per_loop.close()
