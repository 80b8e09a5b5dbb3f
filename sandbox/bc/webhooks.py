"""BC's webhook sender: collect changes per subscription, debounce, POST one body per notification URL, and apply
BC's delivery outcome rules. Knobs and counters are `sandbox.bc.webhooks`.

Behaviour, each from codeunit 6154 "API Webhook Notification Send" (Base Application, mirrored in
github.com/StefanMaron/MSDyn365BC.Code.History; an older and a recent version agree on the retry rules; reference
bc-webhooks-connections-identities.md A3/A4) or Learn's "Working with webhooks" page:
- the job runs `delay_seconds` after the first change (Learn: "waits 30 seconds after the first change"); it first
  deletes expired subscriptions (DeleteExpiredSubscriptions), then groups every active subscription by notification
  URL and sends one POST per URL carrying all their pending items as `{"value": [...]}` (SendNotifications,
  GetPayloadPerNotificationUrl, FormatPayloadPerNotificationUrl), `Content-Type: application/json`, no BOM, with
  one new lower-case GUID as both `clientRequestId` and `x-ms-correlation-id` per POST (SendRequest in a recent
  Base App; reference A3, "Headers BC sends");
- 2xx: delivered. No answer, 408, 429 or 5xx (ShouldReschedule): the items are kept, each subscription's attempt
  number is raised and its retry comes GetDelayTimeForAttempt(attempt) later (1, 1, 1, 10, 100, 1,000 minutes for
  attempt 0..5+); a subscription whose attempt number exceeds 5 (GetMaxNumberOfAttempts) is deleted
  (DeleteSubscriptionsWithTooManyFailures), i.e. after the 6th failed POST. Any other status: the items are dropped
  and every subscription sharing that URL is deleted (DeleteNotifications + DeleteInvalidSubscriptions).
The sender runs on its own thread and event loop, so a slow receiver never holds BC's request handling.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from sandbox.bc.schema import ENTITY_TYPES
from sandbox.bc.store import Company, Row
from sandbox.bc.subscriptions import Item, Pending, Subscription, SubscriptionTable
from sandbox.clock import SandboxClock
from sandbox.config import SandboxConfig


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """The sender's settings in force, in effective sandbox seconds (the config's divided by bc_time_scale where
    it says so)."""

    delay_seconds: float
    max_notifications: int
    max_attempts: int
    retry_seconds: tuple[float, ...]  # by attempt number 0, 1, ..., the last for any higher number
    send_timeout_seconds: float
    handshake_timeout_seconds: float
    expiration_seconds: float
    max_subscriptions: int

    @classmethod
    def from_config(cls, config: SandboxConfig) -> WebhookSettings:
        """The config's values, time-scaled where the config says so."""
        scale = config.bc_time_scale
        return cls(
            delay_seconds=config.bc_webhook_delay_seconds / scale,
            max_notifications=config.bc_webhook_max_notifications,
            max_attempts=config.bc_webhook_max_attempts,
            retry_seconds=tuple(minutes * 60 / scale for minutes in config.bc_webhook_retry_minutes),
            send_timeout_seconds=config.bc_webhook_send_timeout_seconds,
            handshake_timeout_seconds=config.bc_webhook_handshake_timeout_seconds,
            expiration_seconds=config.bc_webhook_expiration_seconds,
            max_subscriptions=config.bc_webhook_max_subscriptions,
        )

    def retry_delay(self, attempt: int) -> float:
        """Seconds until the retry of items at this attempt number (codeunit 6154 GetDelayTimeForAttempt)."""
        return self.retry_seconds[min(attempt, len(self.retry_seconds) - 1)]


@dataclass(slots=True)
class UrlCounters:
    """Notification POSTs to one URL and how they ended."""

    posts: int = 0
    delivered: int = 0  # 2xx
    retried: int = 0  # no answer, 408, 429, 5xx
    no_answer: int = 0  # of retried: timeout or connection failure
    rejected: int = 0  # any other status: every subscription of the URL deleted
    items: int = 0  # items in delivered POSTs
    statuses: Counter[int] = field(default_factory=Counter)  # 0 = no answer


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification POST to make: the URL, the body, the subscriptions sharing the URL, the items taken."""

    table: SubscriptionTable
    url: str
    body: bytes
    subscription_ids: tuple[str, ...]
    taken: dict[str, Pending]
    processing: float
    item_count: int


def _modified_at(row: Row) -> float | None:
    """The row's lastModifiedDateTime as epoch seconds (what BC puts in the item: the record's SystemModifiedAt),
    so a `collection` filter compares like with like."""
    value = row.data.get("lastModifiedDateTime")
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _retryable(status: int | None) -> bool:
    """Codeunit 6154 ShouldReschedule: no response, 5xx, 408 or 429."""
    return status is None or 500 <= status <= 599 or status in (408, 429)


class WebhookControl:
    """Every environment's subscriptions, the sender's settings, knobs and counters. Guarded by BcControl.lock."""

    def __init__(self, config: SandboxConfig, clock: SandboxClock, lock: threading.RLock) -> None:
        self._config = config
        self._clock = clock
        self.clock = clock
        self.lock = lock
        self.tables: dict[tuple[str, str], SubscriptionTable] = {}
        # Trusted for https notification URLs: the system's CAs plus the sandbox CA (set by Sandbox); plain
        # http://127.0.0.1 works too, as the devhost serves locally.
        self.tls_context: ssl.SSLContext | bool = True
        self._settings = WebhookSettings.from_config(config)
        self._stamp = 5000
        self._lose = 0
        self._lost = 0
        self._urls: dict[str, UrlCounters] = {}
        self._deleted: Counter[str] = Counter()
        self._handshakes: Counter[str] = Counter()

    # --- environments ------------------------------------------------------------------------------------------
    def table_for(self, tenant_id: str, environment: str) -> SubscriptionTable:
        """The environment's subscription table (made on first use)."""
        key = (tenant_id.lower(), environment)
        if key not in self.tables:
            self.tables[key] = SubscriptionTable(tenant_id, environment)
        return self.tables[key]

    def _table(self, tenant_id: str, environment: str) -> SubscriptionTable:
        table = self.tables.get((tenant_id.lower(), environment))
        if table is None:
            raise ValueError(f"no BC environment {tenant_id}/{environment}")
        return table

    # --- the change listener (BcStore.listener) ------------------------------------------------------------
    def record(
        self, table: SubscriptionTable, company: Company, set_name: str, row: Row, change_type: str
    ) -> None:
        """A row changed: add it to every matching subscription's pending items and schedule the job."""
        entity = ENTITY_TYPES.get(set_name)
        if entity is None:
            return
        key = str(row.data["id"])
        if entity.parent is not None:  # a line change notifies its header (Learn, "Supported entities")
            set_name, key, change_type = entity.parent, str(row.data.get("documentId")), "updated"
        subscriptions = table.matching(company.id, set_name)
        if not subscriptions:
            return
        if self._lose > 0:
            self._lose -= 1
            self._lost += 1
            return
        now = self._clock.now()
        moment = _modified_at(row) if change_type != "deleted" and entity.parent is None else None
        for subscription in subscriptions:
            subscription.pending.add(Item(key, change_type, moment or now), self._settings.max_notifications)
        table.schedule(now + self._settings.delay_seconds)

    # --- knobs -----------------------------------------------------------------------------------------------
    def settings(self, **changes: Any) -> WebhookSettings:
        """Change the sender's settings (WebhookSettings fields, effective seconds); returns those in force."""
        with self.lock:
            if "retry_seconds" in changes:
                changes["retry_seconds"] = tuple(float(s) for s in changes["retry_seconds"])
            self._settings = dataclasses.replace(self._settings, **changes)
            return self._settings

    def current_settings(self) -> WebhookSettings:
        """The settings in force."""
        with self.lock:
            return self._settings

    def lose_next(self, count: int) -> None:
        """Drop the next `count` subscribed changes without notifying anyone, as BC does for changes by users who
        cannot schedule job queue entries (Learn, "Supported entities", last note) or when the sending job crashes
        (microsoft/BCApps#8549)."""
        with self.lock:
            self._lose += count

    def copy_environment(self, tenant_id: str, environment: str) -> int:
        """The environment was copied or restored onto itself: data stays, every subscription is gone (Learn,
        tenant-admin-center-backup-restore: webhooks are cleaned up). Returns how many were removed."""
        with self.lock:
            removed = self._table(tenant_id, environment).clear()
            self._deleted["copied"] += removed
            return removed

    def expire(self, subscription_id: str) -> None:
        """Make a subscription's expirationDateTime now: the next sender pass deletes it."""
        with self.lock:
            for table in self.tables.values():
                found = table.subscriptions.get(subscription_id)
                if found is not None:
                    found.expiration = self._clock.now() - 0.001
                    return
        raise ValueError(f"no subscription {subscription_id!r}")

    def subscriptions(
        self, tenant_id: str | None = None, environment: str | None = None
    ) -> list[dict[str, Any]]:
        """Every subscription (of one environment when named) as GET shows it, plus tenant, environment and the
        number of pending items and failed attempts."""
        with self.lock:
            self.sweep_expired()
            return [
                {
                    **s.to_json(),
                    "tenant": table.tenant_id,
                    "environment": table.environment,
                    "pendingItems": len(s.items()),
                    "attempt": s.attempt,
                }
                for table in self.tables.values()
                if (tenant_id is None or table.tenant_id.lower() == tenant_id.lower())
                and (environment is None or table.environment == environment)
                for s in table.subscriptions.values()
            ]

    def stats(self) -> dict[str, Any]:
        """Counters: POSTs per notification URL by outcome, subscriptions per environment, lost changes,
        handshakes and deletions by reason."""
        with self.lock:
            return {
                "urls": {
                    url: {**dataclasses.asdict(c), "statuses": {str(k): v for k, v in c.statuses.items()}}
                    for url, c in self._urls.items()
                },
                "subscriptions": {
                    f"{t.tenant_id}/{t.environment}": len(t.subscriptions) for t in self.tables.values()
                },
                "lost": self._lost,
                "lose_pending": self._lose,
                "handshakes": dict(self._handshakes),
                "deleted": dict(self._deleted),
            }

    def url_counters(self, url: str) -> UrlCounters:
        """A copy of one notification URL's counters (zeros if it never got a POST)."""
        with self.lock:
            return dataclasses.replace(self._urls.get(url, UrlCounters()))

    def reset(self) -> None:
        """No subscriptions, counters cleared, settings back to the config's."""
        with self.lock:
            for table in self.tables.values():
                table.clear()
            self._settings = WebhookSettings.from_config(self._config)
            self._lose = self._lost = 0
            self._urls.clear()
            self._deleted.clear()
            self._handshakes.clear()

    # --- used by the subscriptions API -------------------------------------------------------------------------
    def next_stamp(self) -> int:
        """A new ETag stamp for a subscription."""
        with self.lock:
            self._stamp += 1
            return self._stamp

    def count_handshake(self, ok: bool) -> None:
        """Count a handshake by outcome."""
        with self.lock:
            self._handshakes["succeeded" if ok else "failed"] += 1

    def count_deleted(self, reason: str) -> None:
        """Count a deleted subscription by reason (api, expired, failures, rejected, copied)."""
        with self.lock:
            self._deleted[reason] += 1

    # --- used by the sender ------------------------------------------------------------------------------------
    def sweep_expired(self) -> None:
        """Delete expired subscriptions (codeunit 6154 DeleteExpiredSubscriptions)."""
        with self.lock:
            now = self._clock.now()
            for table in self.tables.values():
                for expired in [s for s in table.subscriptions.values() if s.expiration < now]:
                    del table.subscriptions[expired.subscription_id]
                    self._deleted["expired"] += 1

    def due_deliveries(self) -> list[Delivery]:
        """The POSTs of every environment whose job is due, taking their pending items."""
        with self.lock:
            now = self._clock.now()
            self.sweep_expired()
            deliveries: list[Delivery] = []
            for table in self.tables.values():
                if table.job_at is not None and table.job_at <= now:
                    table.job_at = None
                    deliveries.extend(self._deliveries(table, now))
            return deliveries

    def _deliveries(self, table: SubscriptionTable, now: float) -> list[Delivery]:
        by_url: dict[str, list[Subscription]] = {}
        for subscription in table.subscriptions.values():
            by_url.setdefault(subscription.notification_url, []).append(subscription)
        deliveries = []
        for url, subscriptions in by_url.items():
            items = [item for s in subscriptions for item in s.items()]
            if not items:
                continue
            taken = {s.subscription_id: s.pending for s in subscriptions if s.pending}
            for subscription in subscriptions:
                subscription.pending = Pending()
            body = json.dumps({"value": items}).encode()
            ids = tuple(s.subscription_id for s in subscriptions)
            deliveries.append(Delivery(table, url, body, ids, taken, now, len(items)))
        return deliveries

    def apply(self, delivery: Delivery, status: int | None) -> None:
        """Apply a POST's outcome (module docstring)."""
        with self.lock:
            counters = self._urls.setdefault(delivery.url, UrlCounters())
            counters.posts += 1
            counters.statuses[status or 0] += 1
            if status is not None and 200 <= status <= 299:
                counters.delivered += 1
                counters.items += delivery.item_count
                for sid in delivery.taken:
                    found = delivery.table.subscriptions.get(sid)
                    if found is not None:
                        found.attempt, found.next_attempt = 0, 0.0
            elif _retryable(status):
                counters.retried += 1
                counters.no_answer += status is None
                self._reschedule(delivery)
            else:
                counters.rejected += 1
                for sid in delivery.subscription_ids:
                    if delivery.table.subscriptions.pop(sid, None) is not None:
                        self._deleted["rejected"] += 1

    def _reschedule(self, delivery: Delivery) -> None:
        settings, table = self._settings, delivery.table
        for sid, pending in delivery.taken.items():
            found = table.subscriptions.get(sid)
            if found is None:
                continue
            newer, found.pending = found.pending, pending
            found.pending.merge(newer, settings.max_notifications)
            if found.next_attempt <= delivery.processing:
                found.attempt += 1
                found.next_attempt = delivery.processing + settings.retry_delay(found.attempt)
            if found.attempt > settings.max_attempts:
                del table.subscriptions[sid]
                self._deleted["failures"] += 1
                continue
            table.schedule(found.next_attempt)


class WebhookSender:
    """Runs the sender jobs on a daemon thread with its own event loop."""

    def __init__(self, control: WebhookControl, tick_seconds: float = 0.02) -> None:
        self._control = control
        self._tick = tick_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="sandbox-webhooks", daemon=True)

    def start(self) -> None:
        """Start sending."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the POST in progress (if any)."""
        self._stop.set()
        self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        # trust_env=False: a proxy from the environment must not sit between BC and a local receiver.
        async with httpx.AsyncClient(verify=self._control.tls_context, trust_env=False) as client:
            while not self._stop.is_set():
                for delivery in self._control.due_deliveries():
                    self._control.apply(delivery, await self._post(client, delivery))
                await asyncio.sleep(self._tick)

    async def _post(self, client: httpx.AsyncClient, delivery: Delivery) -> int | None:
        correlation = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "clientRequestId": correlation,
            "x-ms-correlation-id": correlation,
        }
        timeout = self._control.current_settings().send_timeout_seconds
        try:
            response = await client.post(
                delivery.url, content=delivery.body, headers=headers, timeout=timeout
            )
        except httpx.HTTPError:
            return None
        return response.status_code
