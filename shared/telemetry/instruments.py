"""Every metric of the app, named and described once (METRICS), and the instruments created from that table.

Instruments come from the global OpenTelemetry API: before (or without) `configure_telemetry` they are no-ops, and
once Azure Monitor is configured the same instruments export to it (the API's proxy meter forwards). Tests bind
them to an SDK MeterProvider with an in-memory reader (`use_meter_provider`).

Gauges are observable: the timer and the token lifecycle note the latest reading (`Readings`), the exporter's
collection observes it. A reading older than READING_TTL is no longer reported, so a stopped sampler shows as a
gap, not as a frozen value.

Attribute values are bounded sets (HTTP methods and statuses, BC's error codes, job states and operations, queue
names, outcomes, connection names: as many as an admin registered): never an id, a URL or a message.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, MeterProvider, Observation

from shared.clock import Clock, SystemClock

METER_NAME = "bc_integration"
READING_TTL_SECONDS = 300.0
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class Kind(StrEnum):
    """Which OpenTelemetry instrument a metric is."""

    COUNTER = "counter"
    HISTOGRAM = "histogram"
    GAUGE = "observable_gauge"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: its name in customMetrics, instrument kind, unit, description and attribute names."""

    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...] = ()


BC_REQUESTS = MetricSpec(
    "bc.requests",
    Kind.COUNTER,
    "{request}",
    "BC API requests answered or failed in transport, by method, HTTP status ('none' without an answer), BC error code and connection",
    ("method", "status", "bc_code", "connection"),
)
BC_THROTTLED = MetricSpec(
    "bc.requests.throttled",
    Kind.COUNTER,
    "{request}",
    "BC API requests BC answered with 429 Too Many Requests, by method and connection",
    ("method", "connection"),
)
BC_DURATION = MetricSpec(
    "bc.request.duration",
    Kind.HISTOGRAM,
    "ms",
    "Time from sending a BC request to its last body byte (or the transport failure)",
    ("method", "status", "connection"),
)
THROTTLE_WAIT = MetricSpec(
    "bc.throttle.wait",
    Kind.HISTOGRAM,
    "ms",
    "Time a BC request waited for the shared throttle (a pause, an in-flight slot and a rate permit), by connection",
    ("connection",),
)
JOBS_FINISHED = MetricSpec(
    "bc.jobs.finished",
    Kind.COUNTER,
    "{job}",
    "Jobs that reached a terminal state, by state, operation and connection",
    ("state", "operation", "connection"),
)
JOB_DURATION = MetricSpec(
    "bc.job.duration",
    Kind.HISTOGRAM,
    "s",
    "Time from a job's first receipt to its terminal state, by state, operation and connection",
    ("state", "operation", "connection"),
)
JOB_RETRIES = MetricSpec(
    "bc.jobs.retries",
    Kind.COUNTER,
    "{retry}",
    "Job retries scheduled (a delayed copy back on bc-jobs), by operation, the product's error code and connection",
    ("operation", "reason", "connection"),
)
TOKEN_REFRESHES = MetricSpec(
    "bc.token.refreshes",
    Kind.COUNTER,
    "{refresh}",
    "Token refreshes against Entra ID, by connection and outcome (refreshed, failed, admin_needed)",
    ("connection", "outcome"),
)
TOKEN_EXPIRY = MetricSpec(
    "bc.token.expiry",
    Kind.GAUGE,
    "s",
    "Seconds until the newest known access token of the connection expires (negative: expired)",
    ("connection",),
)
QUEUE_DEPTH = MetricSpec(
    "bc.queue.depth",
    Kind.GAUGE,
    "{message}",
    "Approximate messages in a queue (bc-jobs includes delayed retries), sampled by the telemetry timer",
    ("queue",),
)
QUEUE_AGE = MetricSpec(
    "bc.queue.oldest_age",
    Kind.GAUGE,
    "s",
    "Age of the oldest visible message of a queue (0 when none is visible), sampled by the telemetry timer",
    ("queue",),
)
# The change feed's receiver and expansion (issue 22). No connection attribute on the receiver's: its route's
# connection is whatever the caller typed until the expansion checked it.
NOTIFICATIONS_RECEIVED = MetricSpec(
    "bc.notifications.received",
    Kind.COUNTER,
    "{request}",
    "Requests to the notification receiver, by outcome (handshake, queued, malformed, refused, too_large, "
    "storage_failed)",
    ("outcome",),
)
NOTIFICATION_ITEMS = MetricSpec(
    "bc.notifications.items",
    Kind.COUNTER,
    "{item}",
    "Notification items the expansion handled, by BC's change type and outcome (expanded, wrong_secret, "
    "no_connection, no_watch, malformed, dead_lettered)",
    ("change_type", "outcome"),
)
# The subscription manager's and reconciliation's facts (issue 22, point 7), noted by the timers (every 15 minutes
# by default), so their gauges are reported for FEED_READING_TTL_SECONDS: longer than a run's interval, shorter
# than the alerts' hour (shared/triggers/change_timers.py RECONCILE_BEHIND).
SUBSCRIPTIONS_LIVE = MetricSpec(
    "bc.subscriptions.live",
    Kind.GAUGE,
    "{subscription}",
    "BC webhook subscriptions of ours alive for the connection at the subscription manager's last run",
    ("connection",),
)
SUBSCRIPTIONS_EXPIRY = MetricSpec(
    "bc.subscriptions.expiry",
    Kind.GAUGE,
    "s",
    "Seconds until the connection's earliest-expiring subscription lapses unless renewed (negative: lapsed)",
    ("connection",),
)
SUBSCRIPTIONS_ENVIRONMENT = MetricSpec(
    "bc.subscriptions.environment",
    Kind.GAUGE,
    "{subscription}",
    "Subscriptions of every subscriber (ours and others', e.g. Power Automate) in the connection's BC environment, "
    "of BC's 200",
    ("connection",),
)
SUBSCRIPTION_CHANGES = MetricSpec(
    "bc.subscriptions.changes",
    Kind.COUNTER,
    "{subscription}",
    "What the subscription manager did, by connection and action (created, renewed, recreated, deleted, failed)",
    ("connection", "action"),
)
CHANGES_PUBLISHED = MetricSpec(
    "bc.changes.published",
    Kind.COUNTER,
    "{event}",
    "Change events published for the first time, by origin (webhook, reconciliation) and connection",
    ("origin", "connection"),
)
RECONCILE_LAG = MetricSpec(
    "bc.reconcile.lag",
    Kind.GAUGE,
    "s",
    "How far a watch's reconciliation watermark trails now, at its last run, by connection and watch",
    ("connection", "watch"),
)
FEED_READING_TTL_SECONDS = 3600.0
_FEED_GAUGES = (SUBSCRIPTIONS_LIVE, SUBSCRIPTIONS_EXPIRY, SUBSCRIPTIONS_ENVIRONMENT, RECONCILE_LAG)
# Identity pools (issue 23): an identity refused for authorization leaves its connection's pool, and rejoins.
POOL_IDENTITY_CHANGES = MetricSpec(
    "bc.pool.identity_changes",
    Kind.COUNTER,
    "{change}",
    "Identities leaving (refused credentials or consent) or rejoining a connection's pool in this process, by "
    "connection, identity and change (left, rejoined)",
    ("connection", "identity", "change"),
)

METRICS: tuple[MetricSpec, ...] = (
    BC_REQUESTS,
    BC_THROTTLED,
    BC_DURATION,
    THROTTLE_WAIT,
    JOBS_FINISHED,
    JOB_DURATION,
    JOB_RETRIES,
    TOKEN_REFRESHES,
    TOKEN_EXPIRY,
    QUEUE_DEPTH,
    QUEUE_AGE,
    NOTIFICATIONS_RECEIVED,
    NOTIFICATION_ITEMS,
    SUBSCRIPTIONS_LIVE,
    SUBSCRIPTIONS_EXPIRY,
    SUBSCRIPTIONS_ENVIRONMENT,
    SUBSCRIPTION_CHANGES,
    CHANGES_PUBLISHED,
    RECONCILE_LAG,
    POOL_IDENTITY_CHANGES,
)


def bounded_code(code: str | None) -> str:
    """An error code fit for a metric attribute: BC's codes as they are, anything else 'none' or 'other'."""
    if not code:
        return "none"
    return code if _CODE.match(code) else "other"


def operation_kind(summary: str | None) -> str:
    """`create customers` -> `create`: the operation of a job row's summary ('unknown' when it has none)."""
    first = (summary or "").split(" ", 1)[0]
    return first if first.isalpha() and first.islower() else "unknown"


_Callback = Callable[[CallbackOptions], Iterable[Observation]]


class Readings:
    """The latest value of each gauge series, noted by whoever learns it, observed at collection time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token_expiry: dict[str, tuple[datetime, float]] = {}
        self._queues: dict[tuple[str, str], tuple[float, float]] = {}
        # (metric, attributes) -> (value, noted_at, relative): a relative value is an epoch the gauge reports as
        # seconds from the collection's now (an expiry)
        self._feed: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float, bool]] = {}

    def note_token_expiry(self, connection: str, expires_on: datetime, noted_at: float) -> None:
        """The newest access token of `connection` expires at `expires_on`."""
        with self._lock:
            self._token_expiry[connection] = (expires_on, noted_at)

    def note_queue(self, queue: str, depth: int, oldest_age_seconds: float, noted_at: float) -> None:
        """A queue sample."""
        with self._lock:
            self._queues[(queue, QUEUE_DEPTH.name)] = (float(depth), noted_at)
            self._queues[(queue, QUEUE_AGE.name)] = (max(0.0, oldest_age_seconds), noted_at)

    def note_feed(
        self,
        metric: str,
        attributes: dict[str, str],
        value: float,
        noted_at: float,
        *,
        relative: bool = False,
    ) -> None:
        """A reading of one of the feed's gauges (relative: `value` is an epoch, reported as seconds from now)."""
        with self._lock:
            self._feed[(metric, tuple(sorted(attributes.items())))] = (value, noted_at, relative)

    def feed_values(self, metric: str, now_epoch: float) -> list[tuple[dict[str, str], float]]:
        """(attributes, value) of `metric` for every reading younger than FEED_READING_TTL_SECONDS."""
        with self._lock:
            items = list(self._feed.items())
        return [
            (dict(attributes), value - now_epoch if relative else value)
            for (name, attributes), (value, noted_at, relative) in items
            if name == metric and now_epoch - noted_at <= FEED_READING_TTL_SECONDS
        ]

    def token_expiries(self, now: datetime, now_epoch: float) -> list[tuple[str, float]]:
        """(connection, seconds until expiry) for every fresh reading."""
        with self._lock:
            items = list(self._token_expiry.items())
        return [
            (connection, (expires_on - now).total_seconds())
            for connection, (expires_on, noted_at) in items
            if now_epoch - noted_at <= READING_TTL_SECONDS
        ]

    def queue_values(self, metric: str, now_epoch: float) -> list[tuple[str, float]]:
        """(queue, value) of `metric` for every fresh sample."""
        with self._lock:
            items = list(self._queues.items())
        return [
            (queue, value)
            for (queue, name), (value, noted_at) in items
            if name == metric and now_epoch - noted_at <= READING_TTL_SECONDS
        ]


def _counter(meter: Meter, spec: MetricSpec) -> Counter:
    return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)


def _histogram(meter: Meter, spec: MetricSpec) -> Histogram:
    return meter.create_histogram(spec.name, unit=spec.unit, description=spec.description)


def _gauge(meter: Meter, spec: MetricSpec, callback: _Callback) -> None:
    meter.create_observable_gauge(
        spec.name, callbacks=[callback], unit=spec.unit, description=spec.description
    )


class Instruments:
    """The instruments of METRICS on one meter; gauges observe `readings`."""

    def __init__(self, meter: Meter, readings: Readings, clock: Clock) -> None:
        self.readings = readings
        self.clock = clock
        self.bc_requests = _counter(meter, BC_REQUESTS)
        self.bc_throttled = _counter(meter, BC_THROTTLED)
        self.bc_duration = _histogram(meter, BC_DURATION)
        self.throttle_wait = _histogram(meter, THROTTLE_WAIT)
        self.jobs_finished = _counter(meter, JOBS_FINISHED)
        self.job_duration = _histogram(meter, JOB_DURATION)
        self.job_retries = _counter(meter, JOB_RETRIES)
        self.token_refreshes = _counter(meter, TOKEN_REFRESHES)
        self.notifications_received = _counter(meter, NOTIFICATIONS_RECEIVED)
        self.notification_items = _counter(meter, NOTIFICATION_ITEMS)
        self.pool_identity_changes = _counter(meter, POOL_IDENTITY_CHANGES)
        _gauge(meter, TOKEN_EXPIRY, self._observe_token_expiry)
        self.subscription_changes = _counter(meter, SUBSCRIPTION_CHANGES)
        self.changes_published = _counter(meter, CHANGES_PUBLISHED)
        for spec in (QUEUE_DEPTH, QUEUE_AGE):
            _gauge(meter, spec, self._queue_observer(spec.name))
        for spec in _FEED_GAUGES:
            _gauge(meter, spec, self._feed_observer(spec.name))

    def _observe_token_expiry(self, options: CallbackOptions) -> Iterable[Observation]:
        del options
        now = self.clock.now()
        return [
            Observation(seconds, {"connection": connection})
            for connection, seconds in self.readings.token_expiries(now, now.timestamp())
        ]

    def _queue_observer(self, metric: str) -> _Callback:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            del options
            now = self.clock.now().timestamp()
            return [
                Observation(value, {"queue": queue})
                for queue, value in self.readings.queue_values(metric, now)
            ]

        return observe

    def _feed_observer(self, metric: str) -> _Callback:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            del options
            now = self.clock.now().timestamp()
            return [
                Observation(value, attributes) for attributes, value in self.readings.feed_values(metric, now)
            ]

        return observe


_state_lock = threading.Lock()
_current: Instruments | None = None


def current() -> Instruments:
    """The instruments in use (created on the global API's meter on first use)."""
    global _current
    with _state_lock:
        if _current is None:
            _current = Instruments(metrics.get_meter(METER_NAME), Readings(), SystemClock())
        return _current


def use_meter_provider(provider: MeterProvider | None, clock: Clock | None = None) -> Instruments:
    """Create the instruments anew with fresh readings on `provider` (None: the global API); returns them."""
    global _current
    meter = provider.get_meter(METER_NAME) if provider is not None else metrics.get_meter(METER_NAME)
    with _state_lock:
        _current = Instruments(meter, Readings(), clock or SystemClock())
        return _current
