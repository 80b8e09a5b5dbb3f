"""The change feed's services for the running event loop: the change log table, the `bc-changes` queue and the
echoes journal; and `echo_journal`, the job pipeline's side of the echoes (wired by shared/jobs/compose.py).

One set per process and loop (shared/per_loop.py), like the job pipeline's: the aio SDK clients are bound to the
loop that made them. The expansion and the reconciliation publish through `feed`; `GET /api/changes` reads it.
`watch_lookup` is the process's WatchDirectory over the watches table (issue 22: subs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bcjobs.changes import CHANGES_QUEUE
from shared.azure_clients import queue_client, table_client
from shared.changes.directories import change_directories
from shared.changes.echoes import TableEchoJournal, WatchLookup, echoes_table_name
from shared.changes.log import TableChangeFeed, changes_table_name
from shared.changes.watch import Watch
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


def watch_lookup(settings: Settings) -> WatchLookup:
    """The process's watches: the watches table through its 30 s cache, the running loop's (change_directories)."""
    return _DirectoryWatches(settings)


@dataclass(frozen=True, slots=True)
class _DirectoryWatches:
    """WatchLookup over the running loop's change directories (built once per loop; closed with them)."""

    settings: Settings

    async def watches(self, connection: str) -> list[Watch]:
        return await (await change_directories(self.settings)).watches.watches(connection)


async def echo_journal(settings: Settings, closers: list[Callable[[], Awaitable[None]]]) -> TableEchoJournal:
    """The `{prefix}echoes` journal, its table ensured; its client's close is added to `closers`."""
    table = table_client(settings.storage, echoes_table_name(settings.storage.table_prefix))
    closers.append(table.close)
    journal = TableEchoJournal(table.client, watch_lookup(settings), SystemClock())
    await journal.ensure()
    return journal


async def _build(settings: Settings) -> ChangeServices:
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        echoes = await echo_journal(settings, closers)
        table = table_client(settings.storage, changes_table_name(settings.storage.table_prefix))
        queue = queue_client(settings.storage, CHANGES_QUEUE)
        closers += [table.close, queue.close]
        feed = TableChangeFeed(table.client, queue.client, SystemClock(), echoes)
        await feed.ensure()
    except BaseException:
        for close in reversed(closers):
            with contextlib.suppress(Exception):  # the build's own failure is the one to report
                await close()
        raise
    return ChangeServices(feed, closers)


_per_loop: PerLoop[Settings, ChangeServices] = PerLoop(_build)


async def change_services(settings: Settings | None = None) -> ChangeServices:
    """The running loop's change feed, built (table and queue created) on first use."""
    return await _per_loop.get(settings or get_settings())


async def close_change_services() -> None:
    """Close and forget the running loop's change feed (tests, local host shutdown)."""
    await _per_loop.close()
