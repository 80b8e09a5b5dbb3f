"""The status page's line per connection: health, token expiry, throttle use, jobs by state, failures, next step.

    connection_views(directory, rows, default, now)
    ├── ConnectionDirectory.connections()          the registry (settings' connection first): one query
    ├── per connection, VIEW_CONCURRENCY at once:
    │   ├── ConnectionDirectory.status(c)          its token manager's status (cache, Key Vault, its record)
    │   └── ConnectionDirectory.throttle_row(c)    one point read of its budget row (shared by its budget key)
    └── jobs and failures from the rows the page read anyway (grouped by their `Connection` column; rows
        written before connections existed have none and count under the settings' connection)

A failure of one connection's reads shows on its line (`problem`), never fails the page or the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from shared.auth import ConnectionStatus
from shared.connections import Connection
from shared.ops.snapshot import Failure, JobCounts, ThrottleRow, summarize

logger = logging.getLogger(__name__)

# Connections read at once for the page (each: its token set and record together, and its budget row): 100
# connections answer in two round trips, while a page reload cannot open hundreds of sockets at once. Key Vault
# allows 4,000 GETs per 10 s per vault (learn.microsoft.com/azure/key-vault/general/service-limits); at 16 the first
# view of 100 connections on a fresh instance took 1.4-2.0 s, at 64 0.85 s (bench connections, docs/performance.md).
VIEW_CONCURRENCY = 64

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """One connection's line on the status page; `status`/`throttle` None when their read failed (`problem`)."""

    name: str
    environment: str
    company: str | None
    enabled: bool
    from_settings: bool
    status: ConnectionStatus | None
    throttle: ThrottleRow | None
    jobs: JobCounts
    failures: Sequence[Failure]
    problem: str | None = None


class ConnectionDirectory(Protocol):
    """Every connection, and what the page shows of each (the registry, the token lifecycle, the throttle)."""

    async def connections(self) -> list[Connection]:
        """Every connection, the settings' first."""
        ...

    async def status(self, connection: Connection) -> ConnectionStatus:
        """That connection's token health, without the token."""
        ...

    async def throttle_row(self, connection: Connection, now: datetime) -> ThrottleRow | None:
        """Its budget's coordination row (None: no process has used it yet)."""
        ...


async def connection_views(
    directory: ConnectionDirectory, read: tuple[list[dict[str, Any]], bool] | None, now: datetime
) -> list[ConnectionView]:
    """A view of every connection, read in parallel (at most VIEW_CONCURRENCY reads at once); `read`: the job
    rows the page read (the last day, bounded) and whether there were more."""
    connections = await directory.connections()
    default = next((c.name for c in connections if c.from_settings), "")
    rows, truncated = read if read is not None else ([], False)
    grouped = _rows_by_connection(rows, default)
    gate = asyncio.Semaphore(VIEW_CONCURRENCY)
    views = [_view(directory, c, grouped.get(c.name, []), truncated, now, gate) for c in connections]
    return list(await asyncio.gather(*views))


async def _view(
    directory: ConnectionDirectory,
    connection: Connection,
    rows: list[dict[str, Any]],
    truncated: bool,
    now: datetime,
    gate: asyncio.Semaphore,
) -> ConnectionView:
    problems: list[str] = []
    status = await _bounded(gate, directory.status(connection), "token status", connection, problems)
    row = await _bounded(gate, directory.throttle_row(connection, now), "throttle", connection, problems)
    jobs, failures = summarize(rows, truncated, now)
    return ConnectionView(
        name=connection.name,
        environment=connection.environment,
        company=connection.company_name,
        enabled=connection.enabled,
        from_settings=connection.from_settings,
        status=status,
        throttle=row,
        jobs=jobs,
        failures=failures,
        problem="; ".join(problems) or None,
    )


async def _bounded(
    gate: asyncio.Semaphore, call: Awaitable[T], what: str, connection: Connection, problems: list[str]
) -> T | None:
    """Await `call` under the gate; a failure becomes a plain problem on the connection's line (cause logged)."""
    try:
        async with gate:
            return await call
    except Exception as exc:  # noqa: BLE001 - one connection's read must not take the page down
        problems.append(f"{what} could not be read ({type(exc).__name__})")
        logger.warning(
            "status page: %s of connection '%s' could not be read: %s",
            what,
            connection.name,
            type(exc).__name__,
            extra={"event": "ops.status_section_failed", "section": what, "connection": connection.name},
        )
        return None


def _rows_by_connection(rows: list[dict[str, Any]], default: str) -> dict[str, list[dict[str, Any]]]:
    """Rows by their `Connection` column; rows without one (written before connections) are the default's."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[str(row.get("Connection") or default)].append(row)
    return grouped
