"""What the status page shows, gathered from its sources: connection, jobs, failures, queues, throttle.

Every source is a small Protocol (Azure implementations in shared.ops.sources); a source that fails leaves its
section with a plain reason instead of failing the page, so the page answers while storage or Key Vault is down.
Nothing here holds a token or a secret: the connection status is the token lifecycle's secret-free view.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bcjobs import JobState
from bcjobs.rows import report_from_row
from shared.auth import ConnectionStatus
from shared.changes.feed_status import FeedStatus

if TYPE_CHECKING:  # per_connection builds on this module's values
    from shared.ops.per_connection import ConnectionView

logger = logging.getLogger(__name__)

JOB_ROW_LIMIT = 5000  # rows of the last day read at most (the page says when there were more)
FAILURES_SHOWN = 10
FAILED_STATES = (JobState.FAILED, JobState.DEAD_LETTERED, JobState.EXPIRED, JobState.REJECTED)


@dataclass(frozen=True, slots=True)
class QueueReading:
    """One queue: approximate depth and the age of its oldest visible message (None: none visible)."""

    name: str
    depth: int
    oldest_age_seconds: float | None


@dataclass(frozen=True, slots=True)
class ThrottleRow:
    """The shared throttle's coordination row: live members and the pause every instance honours."""

    members: int
    paused_until: datetime | None


@dataclass(frozen=True, slots=True)
class ThrottleUsage:
    """The identity's budget, who shares it and what this process sent in the last window."""

    requests: int
    window_seconds: float
    safety_margin: float
    max_in_flight: int
    members: int | None
    paused_until: datetime | None
    sent_here: int
    throttled_here: int

    @property
    def budget(self) -> int:
        """Requests per window after the safety margin."""
        return int(self.requests * (1 - self.safety_margin))


@dataclass(frozen=True, slots=True)
class Failure:
    """A job that ended badly, with what BC support needs to find the request."""

    job_id: str
    state: str
    operation: str
    finished_at: datetime | None
    code: str | None
    bc_code: str | None
    status: int | None
    client_request_id: str | None
    bc_request_id: str | None
    message: str
    connection: str | None = None  # the job's connection (None: a row written before connections existed)


@dataclass(frozen=True, slots=True)
class JobCounts:
    """Jobs by state among rows updated in the last hour and in the last day."""

    hour: Mapping[str, int]
    day: Mapping[str, int]
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the page shows; a section is None when its source failed (`problems` says why)."""

    generated_at: datetime
    connection: ConnectionStatus | None
    jobs: JobCounts | None
    failures: Sequence[Failure]
    queues: Sequence[QueueReading]
    throttle: ThrottleUsage | None
    problems: Mapping[str, str] = field(default_factory=dict)
    # One line per connection when the registry holds more than the settings' one (shared.ops.per_connection).
    connections: Sequence[ConnectionView] = ()
    # The change feed's subscriptions and usage (shared.changes.feed_status); None: unreadable or not read.
    change_feed: FeedStatus | None = None


class ConnectionSource(Protocol):
    """The token lifecycle's status (shared.auth TokenManager.status)."""

    async def status(self) -> ConnectionStatus:
        """The connection's health, without the token."""
        ...


class JobRows(Protocol):
    """Job rows updated since a moment."""

    async def updated_since(self, since: datetime, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` rows and whether there were more."""
        ...


class QueueSource(Protocol):
    """Queue depth and age."""

    async def reading(self, name: str, now: datetime) -> QueueReading:
        """One queue's reading."""
        ...


class ThrottleSource(Protocol):
    """The coordination row and the configured limits."""

    async def row(self, now: datetime) -> ThrottleRow | None:
        """The row (None when no process has used the throttle yet)."""
        ...

    def usage(self, row: ThrottleRow | None, sent_here: int, throttled_here: int) -> ThrottleUsage:
        """The limits with the row's figures."""
        ...


@dataclass
class Sources:
    """Where the page's data comes from."""

    connection: ConnectionSource
    jobs: JobRows
    queues: QueueSource
    throttle: ThrottleSource
    queue_names: Sequence[str]


async def collect(sources: Sources, now: datetime, recent: tuple[int, int]) -> Snapshot:
    """Read every source (each failure noted, never raised); `recent`: this process's (requests, 429s)."""
    return (await read_sources(sources, now, recent))[0]


async def read_sources(
    sources: Sources, now: datetime, recent: tuple[int, int]
) -> tuple[Snapshot, tuple[list[dict[str, Any]], bool] | None]:
    """The snapshot and the job rows it was made from (None: unreadable), every source read in parallel."""
    problems: dict[str, str] = {}
    connection, rows, row, *readings = await asyncio.gather(
        _guard("connection", sources.connection.status(), problems),
        _guard("jobs", sources.jobs.updated_since(now - timedelta(days=1), JOB_ROW_LIMIT), problems),
        _guard("throttle", sources.throttle.row(now), problems),
        *(
            _guard(f"queue {name}", sources.queues.reading(name, now), problems)
            for name in sources.queue_names
        ),
    )
    jobs, failures = (None, []) if rows is None else summarize(rows[0], rows[1], now)
    queues = [reading for reading in readings if reading is not None]
    throttle = sources.throttle.usage(row, *recent)
    return Snapshot(now, connection, jobs, failures, queues, throttle, problems), rows


def summarize(rows: list[dict[str, Any]], truncated: bool, now: datetime) -> tuple[JobCounts, list[Failure]]:
    """Counts by state for the hour and the day, and the latest failures first."""
    hour_ago = now - timedelta(hours=1)
    day: Counter[str] = Counter()
    hour: Counter[str] = Counter()
    failures: list[Failure] = []
    for row in rows:
        state = str(row.get("State") or "unknown")
        day[state] += 1
        updated = row.get("UpdatedAt")
        if isinstance(updated, datetime) and updated >= hour_ago:
            hour[state] += 1
        if state in {s.value for s in FAILED_STATES}:
            failures.append(_failure(row))
    failures.sort(key=lambda f: f.finished_at or now, reverse=True)
    return JobCounts(dict(hour), dict(day), truncated), failures[:FAILURES_SHOWN]


def _failure(row: dict[str, Any]) -> Failure:
    try:
        report = report_from_row(row)
    except (KeyError, ValueError) as exc:
        return Failure(
            str(row.get("PartitionKey")),
            str(row.get("State")),
            "",
            None,
            None,
            None,
            None,
            None,
            None,
            str(exc),
        )
    error = report.error
    return Failure(
        job_id=report.job_id,
        state=report.state.value,
        operation=report.operation or "",
        finished_at=report.finished_at or report.updated_at,
        code=error.code if error else None,
        bc_code=error.bc_code if error else None,
        status=error.status if error else None,
        client_request_id=error.client_request_id if error else None,
        bc_request_id=error.bc_request_id if error else None,
        message=error.message if error else "",
        connection=report.connection,
    )


async def _guard(section: str, call: Any, problems: dict[str, str]) -> Any:
    """Await `call`; on any failure note a plain reason for the page (the cause goes to the log)."""
    try:
        return await call
    except Exception as exc:  # noqa: BLE001 - a page section must not take the page down
        problems[section] = f"could not be read ({type(exc).__name__}); the app's log has the details"
        logger.warning(
            "status page: %s could not be read: %s",
            section,
            type(exc).__name__,
            extra={"event": "ops.status_section_failed", "section": section},
        )
        return None
