"""What instrumented code calls: one function per fact, each recording the metrics of METRICS it feeds.

Cheap and never raising (they run on the request path); without Azure Monitor configured they cost a no-op call.
A job's metrics carry its `connection` (the open job scope's, shared.telemetry.dimensions.job_connection), so
alerts and charts split by connection.
BC request counts of the last window are also kept in-process (`recent_bc_requests`) for the admin page.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from shared.telemetry.dimensions import job_connection
from shared.telemetry.instruments import (
    RECONCILE_LAG,
    SUBSCRIPTIONS_ENVIRONMENT,
    SUBSCRIPTIONS_EXPIRY,
    SUBSCRIPTIONS_LIVE,
    bounded_code,
    current,
    operation_kind,
)

if TYPE_CHECKING:  # annotations only: `import function_app` builds no job model (issue 24, point 4)
    from bcjobs import Job, JobReport

THROTTLED = 429
RECENT_WINDOW_SECONDS = 300.0


def bc_request(method: str, status: int | None, duration_ms: float, bc_code: str | None) -> None:
    """One BC request answered (`status`) or failed in transport (`status` None)."""
    instruments = current()
    status_text = str(status) if status is not None else "none"
    connection = job_connection()
    instruments.bc_requests.add(
        1,
        {"method": method, "status": status_text, "bc_code": bounded_code(bc_code), "connection": connection},
    )
    instruments.bc_duration.record(
        max(0.0, duration_ms), {"method": method, "status": status_text, "connection": connection}
    )
    if status == THROTTLED:
        instruments.bc_throttled.add(1, {"method": method, "connection": connection})
    _recent.add(time.monotonic(), throttled=status == THROTTLED)


def pool_identity(connection: str, identity: str, change: str) -> None:
    """An identity left (`left`) or rejoined (`rejoined`) its connection's pool in this process."""
    current().pool_identity_changes.add(
        1, {"connection": connection, "identity": bounded_code(identity), "change": change}
    )


def throttle_waited(seconds: float) -> None:
    """A BC request got its throttle permit after waiting `seconds`."""
    current().throttle_wait.record(max(0.0, seconds) * 1000.0, {"connection": job_connection()})


def job_finished(
    state: str,
    operation: str | None,
    created_at: datetime | None,
    finished_at: datetime,
    connection: str | None = None,
) -> None:
    """A job reached terminal `state` (operation: the job row's summary or the operation's name; connection:
    the job's, else the open job scope's)."""
    instruments = current()
    attributes = {
        "state": state,
        "operation": operation_kind(operation),
        "connection": connection or job_connection(),
    }
    instruments.jobs_finished.add(1, attributes)
    if created_at is not None:
        instruments.job_duration.record(max(0.0, (finished_at - created_at).total_seconds()), attributes)


def job_retry(operation: str | None, reason: str) -> None:
    """A retry of a job was scheduled because of the product's error code `reason`."""
    current().job_retries.add(
        1,
        {
            "operation": operation_kind(operation),
            "reason": bounded_code(reason),
            "connection": job_connection(),
        },
    )


def token_refresh(connection: str, outcome: str, expires_on: datetime | None = None) -> None:
    """A refresh against Entra ended: refreshed (with the new expiry), failed or admin_needed."""
    current().token_refreshes.add(1, {"connection": connection, "outcome": outcome})
    if expires_on is not None:
        token_expiry(connection, expires_on)


def token_expiry(connection: str, expires_on: datetime) -> None:
    """The newest known access token of `connection` expires at `expires_on` (the gauge reports the rest)."""
    instruments = current()
    instruments.readings.note_token_expiry(connection, expires_on, instruments.clock.time())


def queue_sample(queue: str, depth: int, oldest_age_seconds: float) -> None:
    """The telemetry timer's reading of one queue."""
    instruments = current()
    instruments.readings.note_queue(queue, depth, oldest_age_seconds, instruments.clock.time())


def notification_received(outcome: str) -> None:
    """The notification receiver answered one request (`outcome`: a bounded word, see NOTIFICATIONS_RECEIVED)."""
    current().notifications_received.add(1, {"outcome": outcome})


def notification_items(change_type: str, outcome: str, count: int = 1) -> None:
    """The expansion handled `count` items of BC's `change_type` (bounded: anything else counts as `other`)."""
    kind = change_type if change_type in _CHANGE_TYPES else "other"
    current().notification_items.add(count, {"change_type": kind, "outcome": outcome})


_CHANGE_TYPES = frozenset({"created", "updated", "deleted", "collection"})


def subscriptions_managed(
    connection: str, actions: dict[str, int], live: int, environment: int, earliest: datetime | None
) -> None:
    """One subscription manager run for a connection: what it did (action -> count, e.g. created, renewed,
    recreated, deleted, failed), ours alive, every subscriber's in the environment, our earliest expiry."""
    instruments = current()
    for action, count in actions.items():
        if count:
            instruments.subscription_changes.add(count, {"connection": connection, "action": action})
    noted_at = instruments.clock.time()
    readings = instruments.readings
    readings.note_feed(SUBSCRIPTIONS_LIVE.name, {"connection": connection}, float(live), noted_at)
    readings.note_feed(
        SUBSCRIPTIONS_ENVIRONMENT.name, {"connection": connection}, float(environment), noted_at
    )
    if earliest is not None:
        expiry = earliest.timestamp()
        readings.note_feed(
            SUBSCRIPTIONS_EXPIRY.name, {"connection": connection}, expiry, noted_at, relative=True
        )


def changes_published(origin: str, connection: str, count: int = 1) -> None:
    """`count` change events published for the first time (origin: webhook or reconciliation)."""
    current().changes_published.add(count, {"origin": origin, "connection": connection})


def reconcile_lag(connection: str, watch: str, seconds: float) -> None:
    """A watch's reconciliation ended with its watermark `seconds` behind now."""
    instruments = current()
    attributes = {"connection": connection, "watch": watch}
    instruments.readings.note_feed(
        RECONCILE_LAG.name, attributes, max(0.0, seconds), instruments.clock.time()
    )


class RecentRequests:
    """BC requests this process sent in the last window (10-second buckets): the admin page's throttle usage."""

    def __init__(self, window: float = RECENT_WINDOW_SECONDS, bucket: float = 10.0) -> None:
        self._window = window
        self._bucket = bucket
        self._lock = threading.Lock()
        self._buckets: deque[list[float]] = deque()  # [bucket start, requests, throttled]

    def add(self, now: float, *, throttled: bool) -> None:
        """Count one request at monotonic time `now`."""
        start = now - now % self._bucket
        with self._lock:
            if not self._buckets or self._buckets[-1][0] != start:
                self._buckets.append([start, 0.0, 0.0])
            self._buckets[-1][1] += 1
            self._buckets[-1][2] += 1 if throttled else 0
            self._trim(now)

    def counts(self, now: float) -> tuple[int, int]:
        """(requests, throttled) in the window ending at `now`."""
        with self._lock:
            self._trim(now)
            return int(sum(b[1] for b in self._buckets)), int(sum(b[2] for b in self._buckets))

    def _trim(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] + self._bucket <= now - self._window:
            self._buckets.popleft()


_recent = RecentRequests()


def recent_bc_requests() -> tuple[int, int]:
    """(requests, 429s) this process sent to BC in the last RECENT_WINDOW_SECONDS."""
    return _recent.counts(time.monotonic())


class _Queues(Protocol):
    """What the job pipeline sends (shared.jobs.queues.JobQueues; restated to keep this package below jobs)."""

    async def requeue(self, job: Job, delay_seconds: float) -> None: ...

    async def publish(self, report: JobReport) -> None: ...


class FinishedReports:
    """Counts every terminal report published through it as a finished job (the dead-letter handler's queues:
    it publishes once per job it moves to `dead_lettered`)."""

    def __init__(self, inner: _Queues) -> None:
        self._inner = inner

    async def requeue(self, job: Job, delay_seconds: float) -> None:
        """Pass through."""
        await self._inner.requeue(job, delay_seconds)

    async def publish(self, report: JobReport) -> None:
        """Publish, then count."""
        await self._inner.publish(report)
        if report.state.terminal and report.finished_at is not None:
            job_finished(
                report.state.value, report.operation, report.created_at, report.finished_at, report.connection
            )
