"""The demo's change feed steps (issue 22): the admin watches `customers`, BC subscribes to the app's receiver; a
BC user edits customers straight over BC's API; the demo, as the application, consumes `bc-changes` and checks
each edit arrived once with the right kind, and that the run's own customer creates came back marked as echoes.

The sandbox's webhook debounce is short (DemoOptions.bc_webhook_delay_seconds, BC's is 30 s: docs/changes.md) and
the subscription timer runs every few seconds (FEED_SETTINGS), so the demo needs no admin route to fire it.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.storage.queue import QueueClient

from bcjobs.changes import CHANGES_QUEUE, ChangeEvent
from bcjobs.connections import ConnectionsClient
from bcjobs.rows import report_from_row
from demo.context import DemoContext, DemoError
from demo.report import quantile
from localworld.bc import BcReader

WATCH = "customers"
SUBSCRIBE_WINDOW_SECONDS = 24  # the subscription timer's burst after the workers start (feed_settings)
# BC's debounce, then the expansion: the feed's functions run in processes of their own, which read BC at the
# throttle's reserve (10 % of the rate, about 1.9 reads a second: docs/performance.md, "The change feed"), so
# the run's ~130 changes take about 70 s to read after the jobs' flood; the wait ends as soon as all arrived.
ARRIVE_SECONDS = 180.0
POLL_SECONDS = 0.25


def feed_settings(base_url: str, now: datetime) -> dict[str, str]:
    """The app settings the feed needs here: BC notifies devhost itself (as `make dev` does), and the
    subscription timer fires every 2 s for a short while after the workers start (then not again within the hour), so BC
    subscribes before discovery and the timers' processes then leave the BC throttle's coordination row when idle
    instead of taking a share of the budget from the jobs for the whole run (shared/bc/throttle/shared_throttle.py,
    "Membership follows demand")."""
    return {"BC_NOTIFICATION_BASE_URL": base_url, "BC_SUBSCRIPTIONS_SCHEDULE": burst_schedule(now)}


def burst_schedule(now: datetime) -> str:
    """A 6-field NCRONTAB (UTC) firing every 2 s from 4 s to SUBSCRIBE_WINDOW_SECONDS after `now`; the fields'
    cross product may add fires in those minutes of the listed hours (an hour later at most: the demo is over by then)."""
    times = [now + timedelta(seconds=s) for s in range(4, SUBSCRIBE_WINDOW_SECONDS, 2)]
    fields = ({t.second for t in times}, {t.minute for t in times}, {t.hour for t in times})
    return " ".join(",".join(str(v) for v in sorted(f)) for f in fields) + " * * *"


@dataclass(frozen=True, slots=True)
class Arrival:
    """One event as the application took it off `bc-changes`, and when the queue received it."""

    event: ChangeEvent
    arrived: datetime


class FeedConsumer:
    """The application's consumer of `bc-changes`: takes every message, keeps each event once (by `id`: the
    queue is at-least-once) and counts the copies."""

    def __init__(self, context: DemoContext) -> None:
        if context.azurite is None:
            raise DemoError("Azurite is not running")
        self._queue = QueueClient.from_connection_string(
            context.azurite.connection_string, CHANGES_QUEUE, **context.storage_options()
        )
        self.events: dict[str, Arrival] = {}
        self.copies = 0

    def drain(self) -> None:
        """Take what is on the queue now."""
        for message in self._queue.receive_messages(messages_per_page=32, visibility_timeout=60):
            event = ChangeEvent.model_validate_json(base64.b64decode(message.content))
            arrived = message.inserted_on or datetime.now(UTC)
            if event.id in self.events:
                self.copies += 1
            else:
                self.events[event.id] = Arrival(event, arrived)
            self._queue.delete_message(message)

    def of(self, subject: str) -> list[Arrival]:
        return [a for a in self.events.values() if a.event.subject == subject]

    def close(self) -> None:
        self._queue.close()


def _connection(context: DemoContext) -> str:
    return context.app_environment.get("BC_CONNECTION_NAME", "default")


def admin_watches_customers(context: DemoContext) -> str:
    """The admin puts a watch on `customers` (PUT /api/connections/{name}/watches/customers); the subscription
    timer makes BC subscribe to the app's receiver (the handshake answered by the app)."""
    if context.sandbox is None:
        raise DemoError("the sandbox is not running")
    connection = _connection(context)
    with ConnectionsClient(context.base_url, context.function_key) as admin:
        watch = admin.put_watch(connection, WATCH, {"entitySet": "customers", "includeData": True})
    receiver = f"{context.base_url}/api/notifications/{connection}/"
    deadline = time.monotonic() + 10
    while True:
        listed = context.sandbox.admin("/bc/webhooks/subscriptions", {}).get("value", [])
        ours = [s for s in listed if str(s.get("notificationUrl", "")).startswith(receiver)]
        if ours:
            break
        if time.monotonic() > deadline:
            raise DemoError(
                "BC has no subscription to the app's receiver 10s after the watch (the subscription timer runs "
                f"every 2 s only for {SUBSCRIBE_WINDOW_SECONDS}s after the workers start: were they slow to start?)"
            )
        time.sleep(POLL_SECONDS)
    context.feed = FeedConsumer(context)
    context.cleanup.callback(context.feed.close)
    # The notification URL holds the receiver's key: never printed.
    return (
        f"PUT /api/connections/{connection}/watches/{WATCH} -> watch '{watch.name}' (entity data included); "
        f"the subscription timer (every 2 s just after the start here) -> BC subscribed ({ours[0].get('resource', '?')}, expires "
        f"{ours[0].get('expirationDateTime', '?')}), notifications to the app's receiver; BC's debounce "
        f"{context.options.bc_webhook_delay_seconds:g} s (30 s in BC)"
    )


def _consumer(context: DemoContext) -> FeedConsumer:
    if not isinstance(context.feed, FeedConsumer):
        raise DemoError("no watch on customers (admin_watches_customers did not run)")
    return context.feed


def _until(consumer: FeedConsumer, arrived: Any, what: str) -> None:
    """Drain the queue until `arrived()` is true (a deadline, no fixed sleep)."""
    deadline = time.monotonic() + ARRIVE_SECONDS
    while True:
        consumer.drain()
        if arrived():
            return
        if time.monotonic() > deadline:
            raise DemoError(f"{what} did not arrive on {CHANGES_QUEUE} within {ARRIVE_SECONDS:.0f}s")
        time.sleep(POLL_SECONDS)


def bc_user_edits_customers(context: DemoContext) -> str:
    """A BC user creates 2 customers, updates one the run left alone and deletes one the run created, over BC's
    API (not through the app); the app receives each edit once, with its kind."""
    consumer = _consumer(context)
    edits: list[tuple[str, str, datetime]] = []  # (entity id, kind, BC's write time)
    with BcReader(context.sandbox_env) as bc:
        created = [bc.write("POST", "customers", {"displayName": f"Walk-in {n}"}) for n in (1, 2)]
        edits += [(str(c["id"]), "created", _modified(c)) for c in created]
        customer = _untouched_customer(context)
        updated = bc.write("PATCH", "customers", {"phoneNumber": "+1 555 0100"}, customer)
        edits += [(customer, "updated", _modified(updated))]
        gone = _a_created_customer(context)
        bc.write("DELETE", "customers", None, gone)
        edits += [(gone, "deleted", datetime.now(UTC))]
    _until(consumer, lambda: all(_versions(consumer, *e) for e in edits), "the BC user's edits")
    wrong = [
        f"{i} {k}: {_kinds(consumer, i)}" for i, k, at in edits if len(_versions(consumer, i, k, at)) != 1
    ]
    if wrong:
        raise DemoError(f"a BC-side edit did not arrive exactly once with its kind: {wrong}")
    latencies = [(_versions(consumer, i, k, at)[0].arrived - at).total_seconds() for i, k, at in edits]
    context.figures["feed_bc_user_edits"] = len(edits)
    context.figures["feed_bc_user_latency_max_seconds"] = round(max(latencies), 2)
    kinds = Counter(k for _, k, _ in edits)
    return (
        f"BC user: {kinds['created']} created, {kinds['updated']} updated, {kinds['deleted']} deleted over BC's API "
        f"-> {len(edits)} events on {CHANGES_QUEUE}, each once with its kind; "
        f"write -> event {min(latencies):.1f}-{max(latencies):.1f} s"
    )


def _untouched_customer(context: DemoContext) -> str:
    """A customer discovery found (the BC user's update is then a new version of it)."""
    customers = context.company.customers if context.company else []
    if not customers:
        raise DemoError("discovery found no customer for the BC user to update")
    return str(customers[-1]["id"])


def _a_created_customer(context: DemoContext) -> str:
    """A customer the run created whose `created` echo has arrived (so its delete is the next version)."""
    consumer = _consumer(context)

    def echoes() -> list[str]:
        return [
            a.event.subject
            for a in consumer.events.values()
            if a.event.bcecho and a.event.bcchange.value == "created"
        ]

    _until(consumer, lambda: bool(echoes()), "an echo of the run's creates")
    return echoes()[0]


def _modified(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record["lastModifiedDateTime"]).replace("Z", "+00:00"))


def _kinds(consumer: FeedConsumer, subject: str) -> list[str]:
    return [a.event.bcchange.value for a in consumer.of(subject)]


def _versions(consumer: FeedConsumer, subject: str, kind: str, at: datetime) -> list[Arrival]:
    """The events of this edit: its entity and kind, and for a write its version (BC's lastModifiedDateTime;
    the entity may have had events before, from the run or the reconciliation of the new watch)."""
    return [
        a
        for a in consumer.of(subject)
        if a.event.bcchange.value == kind and (kind == "deleted" or a.event.time == at)
    ]


def the_apps_own_creates_come_back_as_echoes(context: DemoContext) -> str:
    """Every customer the run's create jobs made arrives as an event marked `bcecho` (the job that wrote it);
    the one whose answer BC lost may not be: its job journals the version only once it has reconciled it."""
    consumer = _consumer(context)
    kinds = context.workload.kinds if context.workload else {}
    reports = [report_from_row(row) for row in context.rows.values()]
    created = {
        r.result.id: r.job_id
        for r in reports
        if kinds.get(r.job_id) == "create customer" and r.result is not None and r.result.id
    }
    reconciled = {r.job_id for r in reports if r.result is not None and r.result.reconciled}
    _until(
        consumer,
        lambda: all(consumer.of(e) for e in created),
        f"the events of the run's {len(created)} creates",
    )
    unmarked = [job for e, job in created.items() if not any(a.event.bcecho for a in consumer.of(e))]
    if set(unmarked) - reconciled:
        raise DemoError(f"events of the run's own creates not marked as echoes: {sorted(unmarked)}")
    own = sum(1 for e, job in created.items() if any(a.event.bcecho == job for a in consumer.of(e)))
    context.figures |= _figures(consumer) | {
        "feed_debounce_seconds": context.options.bc_webhook_delay_seconds,
        "feed_unmarked_after_lost_answer": len(unmarked),
    }
    late = (
        f"; {len(unmarked)} unmarked: {', '.join(unmarked)} met the lost answer, and BC's notification was "
        "expanded before the job reconciled the write and journaled its version"
    ) * bool(unmarked)
    return (
        f"{len(created)} customers created by the run's jobs -> {len(created)} events, "
        f"{len(created) - len(unmarked)} marked as echoes ({own} naming their create job){late}"
        f"\n      {_describe(context.figures)}"
    )


def _figures(consumer: FeedConsumer) -> dict[str, Any]:
    """Events received, by origin, echoes, and BC's write (the event's `time`; a delete's arrival has none) to
    the event's arrival on the queue."""
    arrivals = list(consumer.events.values())
    latencies = [
        (a.arrived - a.event.time).total_seconds() for a in arrivals if a.event.bcchange.value != "deleted"
    ]
    p50, p95 = quantile(latencies, 0.5), quantile(latencies, 0.95)
    return {
        "feed_events": len(arrivals),
        "feed_events_by_origin": dict(Counter(a.event.bcorigin.value for a in arrivals)),
        "feed_echoes": sum(1 for a in arrivals if a.event.bcecho),
        "feed_copies": consumer.copies,
        "feed_latency_p50_seconds": None if p50 is None else round(p50, 2),
        "feed_latency_p95_seconds": None if p95 is None else round(p95, 2),
    }


def _describe(figures: dict[str, Any]) -> str:
    origins = ", ".join(f"{k} {v}" for k, v in figures["feed_events_by_origin"].items())
    return (
        f"feed: {figures['feed_events']} events ({origins}), {figures['feed_echoes']} echoes, "
        f"BC write -> event p50 {figures['feed_latency_p50_seconds']} s / p95 {figures['feed_latency_p95_seconds']} s"
    )
