"""The subscription manager: for one connection, the BC webhook subscriptions its watches need, kept alive.

Facts (reference (a); Learn dev-itpro/api-reference/v2.0/dynamics-subscriptions and the create/update/delete pages):
- a subscription lives 3 days and is renewed by PATCH with If-Match and the JSON body (MicrosoftDocs issue #2863);
  create and renew both make BC call the notification URL for a handshake (this same app: every call here is async,
  the event loop stays free to answer it);
- BC sends no lifecycle events: a subscription deleted by BC (expired, 5 failed deliveries, a 4xx, an environment
  copied or restored) is found only by listing BC's subscriptions;
- the 200-per-environment pool is shared with the customer's other subscribers (Power Automate): a subscription is
  ours only when its notificationUrl starts with `{base}/api/notifications/{connection}/`; no other is touched.

One run: ensure the connection's notification secret, list BC's subscriptions of every API route the watches use,
then per (watch, company) keep/renew/create, and delete ours that no watch needs (a removed watch, an old key, a
duplicate). Every failure is the subscription's own (counted, the next one is tried); the rows follow what BC has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from shared.bc.errors import BusinessCentralError, NotFoundError
from shared.bc.models import STANDARD_API, ApiRoute, Entity, JsonObject
from shared.changes.secrets import NotifySecret, NotifySecrets, notification_prefix, notification_url
from shared.changes.subscriptions import SubscriptionRecord, SubscriptionStore, SubscriptionUsage
from shared.changes.watch import Watch
from shared.clock import Clock, parse_iso_utc

# Renew when less than this is left of the 3 days: 1.5 days of margin for failed runs and BC outages.
RENEW_WHEN_LEFT = timedelta(hours=36)
ENVIRONMENT_LIMIT = 200  # subscriptions per environment, all subscribers (reference (a))
# The key segment of a notification URL, wherever a message quotes one.
_KEYED_URL = re.compile(r"(/api/notifications/[^/\s'\"]+/)[^\s'\"/?&]+")


class SubscriptionApi(Protocol):
    """What the manager uses of a lane's BusinessCentralClient."""

    async def company_id(self) -> UUID: ...

    async def subscriptions(self, api: ApiRoute = STANDARD_API) -> tuple[Entity, ...]: ...

    async def create_subscription(self, api: ApiRoute, body: JsonObject) -> Entity: ...

    async def renew_subscription(
        self, api: ApiRoute, subscription_id: str, body: JsonObject, *, etag: str
    ) -> Entity: ...

    async def delete_subscription(self, api: ApiRoute, subscription_id: str, *, etag: str | None) -> None: ...


@dataclass(frozen=True, slots=True)
class BcSubscription:
    """One subscription as BC lists it."""

    subscription_id: str
    notification_url: str
    resource: str
    expiration: datetime | None
    etag: str | None
    api: ApiRoute


@dataclass(frozen=True, slots=True)
class Need:
    """A subscription a watch needs: one per (watch, company)."""

    watch: Watch
    company_id: UUID
    resource: str
    api: ApiRoute


@dataclass(frozen=True, slots=True)
class ConnectionRun:
    """What one run did for one connection; `usage` is (ours, every subscriber's) per listed route."""

    connection: str
    created: int = 0
    renewed: int = 0
    kept: int = 0
    deleted: int = 0
    failures: tuple[str, ...] = ()
    ours: int = 0
    total: int = 0
    limit: int = ENVIRONMENT_LIMIT
    recreated: tuple[str, ...] = ()  # watches whose subscription BC had deleted: reconcile them at once
    unsubscribed: tuple[
        str, ...
    ] = ()  # enabled watches left without a live subscription (alert: no doorbell)
    expiries: tuple[tuple[str, datetime], ...] = ()  # (watch, earliest expiration) for the status page


@dataclass(frozen=True, slots=True)
class Lapsing:
    """A gone or disabled connection whose subscriptions no token could delete: rows dropped (BC's expiry passed),
    rows left, and when the last of them lapses."""

    connection: str
    reason: str
    dropped: int
    left: int
    until: datetime | None


@dataclass
class _Tally:
    created: int = 0
    renewed: int = 0
    kept: int = 0
    deleted: int = 0
    failures: list[str] = field(default_factory=list)
    live: dict[str, SubscriptionRecord] = field(default_factory=dict)
    recreated: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)  # rows already put during the run


def api_route(watch: Watch) -> ApiRoute:
    """The watch's API as the client's route."""
    if watch.api is None:
        return STANDARD_API
    publisher, group, version = watch.api.split("/")
    return ApiRoute(publisher, group, version)


def scrubbed(text: str, client_state: str | None = None) -> str:
    """A BC error may quote the notification URL (its key) or the request's clientState: neither is ever logged
    or kept (BC's handshake failure names the URL: sandbox/bc/subscription_api.py, as BC does)."""
    text = _KEYED_URL.sub(r"\1…", text)
    return text.replace(client_state, "…") if client_state else text


def route_of(resource: str) -> ApiRoute:
    """The API route a subscription's resource lives under: `/api/{publisher}/{group}/{version}/companies(...)`."""
    at = resource.lower().find("api/")
    segments = resource[max(at, 0) :].split("/companies(", 1)[0].split("/")
    if len(segments) == 4 and segments[0] == "api":
        return ApiRoute(segments[1], segments[2], segments[3])
    return STANDARD_API


def resource_key(resource: str) -> str:
    """A resource compared the way BC accepts it: leading slash optional, absolute URLs too, case-insensitive."""
    lowered = resource.lower()
    at = lowered.find("api/")
    return lowered[at:] if at >= 0 else lowered.lstrip("/")


def parse_subscription(entity: Entity, api: ApiRoute) -> BcSubscription | None:
    """BC's subscription JSON; None for an item without an id or URL (never ours)."""
    values = entity.values
    sid, url, resource = (values.get(k) for k in ("subscriptionId", "notificationUrl", "resource"))
    if not (isinstance(sid, str) and isinstance(url, str) and isinstance(resource, str)):
        return None
    expiration = parse_iso_utc(values.get("expirationDateTime"))
    return BcSubscription(sid, url, resource, expiration, entity.etag, api)


class SubscriptionManager:
    """Creates, renews and deletes one connection's subscriptions per run (see the module's docstring)."""

    def __init__(self, store: SubscriptionStore, secrets: NotifySecrets, base: str, clock: Clock) -> None:
        self._store = store
        self._secrets = secrets
        self._base = base
        self._clock = clock

    def ours_prefix(self, connection: str) -> str:
        """What every notification URL of this connection starts with (whatever its key)."""
        return f"{notification_prefix(self._base)}{connection}/"

    async def run(self, connection: str, watches: list[Watch], bc: SubscriptionApi) -> ConnectionRun:
        """One pass over the connection's watches; raises only when BC's list cannot be read."""
        needs = await _needs(watches, bc)
        secret = await self._secrets.ensure(connection) if needs else None  # no watch: only clean up
        known = {r.subscription_id: r for r in await self._store.all(connection)}
        routes = {need.api for need in needs} | {route_of(r.resource) for r in known.values()}
        listed = await self._listing(routes, bc)
        ours = [s for s in listed if s.notification_url.startswith(self.ours_prefix(connection))]
        tally = _Tally()
        unused = await self._serve(connection, secret, needs, ours, known, bc, tally)
        await self._delete_unused(unused, bc, tally)
        await self._write_rows(connection, known, tally)
        report = _report(connection, tally, len(ours) - tally.deleted + tally.created, len(listed))
        served = {record.watch for record in tally.live.values()}
        usage = SubscriptionUsage(connection, report.ours, report.total, report.limit, self._clock.now())
        await self._store.note_usage(usage)
        return replace(report, unsubscribed=tuple(sorted({n.watch.name for n in needs} - served)))

    async def retire(self, connection: str, bc: SubscriptionApi) -> ConnectionRun:
        """A deleted or disabled connection, while its token still works: delete every subscription of ours in BC
        (DELETE with If-Match, the ETag just listed) and drop its rows; a failed delete keeps its row for the next
        run. The same run as a connection without watches: it never touches another subscriber's."""
        run = await self.run(connection, [], bc)
        if not await self._store.all(connection):
            await self._store.forget_usage(connection)  # nothing left: the status page drops the connection
        return run

    async def drop_lapsed(self, connection: str, reason: str) -> Lapsing:
        """When no token can delete them: BC lets each subscription lapse at its expiration (3 days at most after
        its last renewal), so a row is dropped once that passed; the others wait, with the reason."""
        now = self._clock.now()
        rows = await self._store.all(connection)
        lapsed = [row for row in rows if row.expiration <= now]
        for row in lapsed:
            await self._store.delete(connection, row.subscription_id)
        left = [row.expiration for row in rows if row.expiration > now]
        if not left:
            await self._store.forget_usage(connection)
        return Lapsing(connection, reason, len(lapsed), len(left), max(left, default=None))

    async def _listing(self, routes: set[ApiRoute], bc: SubscriptionApi) -> list[BcSubscription]:
        """BC's subscriptions under every route a watch uses or a row names (a removed custom-API watch's too)."""
        found: dict[str, BcSubscription] = {}
        for route in sorted({STANDARD_API, *routes}, key=lambda route: route.path):
            for entity in await bc.subscriptions(route):
                parsed = parse_subscription(entity, route)
                if parsed is not None:
                    found.setdefault(parsed.subscription_id, parsed)
        return list(found.values())

    async def _serve(
        self,
        connection: str,
        secret: NotifySecret | None,
        needs: list[Need],
        ours: list[BcSubscription],
        known: dict[str, SubscriptionRecord],
        bc: SubscriptionApi,
        tally: _Tally,
    ) -> list[BcSubscription]:
        """Keep, renew or create each need's subscription; what is left of `ours` is no longer needed."""
        if secret is None:
            return list(ours)
        url = notification_url(self._base, connection, secret)
        unused = list(ours)
        for need in needs:
            match = next(
                (s for s in unused if s.notification_url == url and _same(s.resource, need.resource)), None
            )
            if match is not None:
                unused.remove(match)
            body = {"notificationUrl": url, "resource": need.resource, "clientState": secret.client_state}
            await self._serve_one(connection, need, match, body, known, bc, tally)
        return unused

    async def _serve_one(
        self,
        connection: str,
        need: Need,
        current: BcSubscription | None,
        body: JsonObject,
        known: dict[str, SubscriptionRecord],
        bc: SubscriptionApi,
        tally: _Tally,
    ) -> None:
        try:
            if current is not None and not self._due(current):
                tally.kept += 1
                tally.live[current.subscription_id] = self._record(connection, need, current, known)
                return
            entity = await self._renew_or_create(need, current, body, bc, known, tally)
        except BusinessCentralError as exc:
            safe = scrubbed(str(exc), str(body["clientState"]))
            tally.failures.append(f"watch '{need.watch.name}' ({need.company_id}): {safe}")
            return
        written = parse_subscription(entity, need.api)
        if written is not None:
            record = tally.live[written.subscription_id] = self._record(connection, need, written, known)
            await self._store.put(record)  # at once: the receiver may look it up within BC's 30 s debounce
            tally.written.add(written.subscription_id)

    async def _renew_or_create(
        self,
        need: Need,
        current: BcSubscription | None,
        body: JsonObject,
        bc: SubscriptionApi,
        known: dict[str, SubscriptionRecord],
        tally: _Tally,
    ) -> Entity:
        if current is not None and current.etag is not None:
            try:
                renewed = await bc.renew_subscription(
                    need.api, current.subscription_id, body, etag=current.etag
                )
            except NotFoundError:
                pass  # BC deleted it between the list and the PATCH: create it again below
            else:
                tally.renewed += 1
                return renewed
        created = await bc.create_subscription(need.api, body)
        tally.created += 1
        if any(r.watch == need.watch.name and r.company_id == need.company_id for r in known.values()):
            tally.recreated.add(need.watch.name)  # we had one: BC deleted it, changes may have been missed
        return created

    async def _delete_unused(self, unused: list[BcSubscription], bc: SubscriptionApi, tally: _Tally) -> None:
        for subscription in unused:
            try:
                await bc.delete_subscription(
                    subscription.api, subscription.subscription_id, etag=subscription.etag
                )
            except NotFoundError:
                pass  # gone already
            except BusinessCentralError as exc:
                safe = scrubbed(str(exc))
                tally.failures.append(f"delete of subscription {subscription.subscription_id}: {safe}")
                continue
            tally.deleted += 1

    async def _write_rows(self, connection: str, known: dict[str, SubscriptionRecord], tally: _Tally) -> None:
        for record in tally.live.values():
            if record.subscription_id not in tally.written and known.get(record.subscription_id) != record:
                await self._store.put(record)
        for gone in set(known) - set(tally.live):
            await self._store.delete(connection, gone)

    def _due(self, subscription: BcSubscription) -> bool:
        expiration = subscription.expiration
        return expiration is None or expiration - self._clock.now() < RENEW_WHEN_LEFT

    def _record(
        self, connection: str, need: Need, seen: BcSubscription, known: dict[str, SubscriptionRecord]
    ) -> SubscriptionRecord:
        now = self._clock.now()
        expiration = seen.expiration or now
        before = known.get(seen.subscription_id)
        if before is not None:
            renewed = before.renewed_at if before.expiration == expiration else now
            return replace(before, expiration=expiration, etag=seen.etag, renewed_at=renewed, state="active")
        return SubscriptionRecord(
            connection, seen.subscription_id, need.watch.name, need.company_id, need.watch.entity_set,
            need.resource, expiration, seen.etag, now,
        )  # fmt: skip


async def _needs(watches: list[Watch], bc: SubscriptionApi) -> list[Need]:
    needs: list[Need] = []
    for watch in watches:
        if watch.enabled:
            company = watch.company_id or await bc.company_id()
            needs.append(Need(watch, company, watch.resource(company), api_route(watch)))
    return needs


def _same(listed: str, needed: str) -> bool:
    return resource_key(listed) == resource_key(needed)


def _report(connection: str, tally: _Tally, ours: int, total: int) -> ConnectionRun:
    earliest: dict[str, datetime] = {}
    for record in tally.live.values():
        if record.watch not in earliest or record.expiration < earliest[record.watch]:
            earliest[record.watch] = record.expiration
    return ConnectionRun(
        connection,
        created=tally.created,
        renewed=tally.renewed,
        kept=tally.kept,
        deleted=tally.deleted,
        failures=tuple(tally.failures),
        ours=ours,
        total=total - tally.deleted + tally.created,
        recreated=tuple(sorted(tally.recreated)),
        expiries=tuple(sorted(earliest.items())),
    )
