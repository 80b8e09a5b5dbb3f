"""The subscription manager keeps each watch's BC subscription alive and never touches anyone else's."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from shared.bc.errors import RequestValidationError
from shared.bc.models import STANDARD_API, ApiRoute, Entity, JsonObject
from shared.changes.secrets import MemoryNotifySecrets
from shared.changes.subscription_manager import RENEW_WHEN_LEFT, SubscriptionManager, route_of
from shared.changes.subscriptions import MemorySubscriptionStore
from shared.changes.watch import Watch
from testkit.clock import ManualClock

BASE = "https://app.example.net"
COMPANY = UUID("aaaaaaaa-0000-0000-0000-000000000001")
OTHER_COMPANY = UUID("aaaaaaaa-0000-0000-0000-000000000002")
LIFETIME = timedelta(days=3)


@dataclass
class FakeBc:
    """BC's subscriptions API in memory (one environment)."""

    clock: ManualClock
    subs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # resources whose create fails
    quote_url: bool = False  # the refusal quotes the URL and state, as BC's handshake failure does
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def company_id(self) -> UUID:
        return COMPANY

    async def subscriptions(self, api: ApiRoute = STANDARD_API) -> tuple[Entity, ...]:
        self.calls.append(("list", api.path))
        return tuple(Entity.from_json(dict(sub)) for sub in self.subs.values())

    async def create_subscription(self, api: ApiRoute, body: JsonObject) -> Entity:
        self.calls.append(("create", str(body["resource"])))
        if body["resource"] in self.refuse:
            quoted = f" '{body['notificationUrl']}' state {body['clientState']}" if self.quote_url else ""
            raise RequestValidationError(f"BadRequest_SubscriptionLimitReached{quoted}")
        sid = f"{next(self._ids):032x}"
        self.subs[sid] = {"subscriptionId": sid, **body}
        return self._touch(sid)

    async def renew_subscription(
        self, api: ApiRoute, subscription_id: str, body: JsonObject, *, etag: str
    ) -> Entity:
        self.calls.append(("renew", subscription_id))
        assert etag == self.subs[subscription_id]["@odata.etag"]
        assert set(body) == {"notificationUrl", "resource", "clientState"}
        return self._touch(subscription_id)

    async def delete_subscription(self, api: ApiRoute, subscription_id: str, *, etag: str | None) -> None:
        self.calls.append(("delete", subscription_id))
        del self.subs[subscription_id]

    def foreign(self, sid: str, url: str) -> None:
        self.subs[sid] = {"subscriptionId": sid, "notificationUrl": url, "resource": "/api/v2.0/x"}
        self._touch(sid)

    def _touch(self, sid: str) -> Entity:
        expiry = self.clock.now() + LIFETIME
        self.subs[sid].update(
            {"expirationDateTime": expiry.isoformat(), "@odata.etag": f'W/"{next(self._ids)}"'}
        )
        return Entity.from_json(self.subs[sid])

    def of(self, kind: str) -> list[str]:
        return [target for call, target in self.calls if call == kind]


def watch(name: str, entity_set: str = "customers", company: UUID | None = None) -> Watch:
    return Watch(connection="contoso", name=name, entity_set=entity_set, company_id=company)


def world() -> tuple[SubscriptionManager, FakeBc, MemorySubscriptionStore, MemoryNotifySecrets, ManualClock]:
    clock = ManualClock()
    store, secrets = MemorySubscriptionStore(), MemoryNotifySecrets()
    return SubscriptionManager(store, secrets, BASE, clock), FakeBc(clock), store, secrets, clock


async def test_each_watch_gets_one_subscription_per_company_with_our_url_and_state() -> None:
    manager, bc, store, secrets, _ = world()
    watches = [watch("customers"), watch("orders", "salesOrders", OTHER_COMPANY)]

    run = await manager.run("contoso", watches, bc)

    secret = await secrets.get("contoso")
    assert secret is not None
    assert (run.created, run.ours, run.total) == (2, 2, 2)
    assert sorted(bc.of("create")) == [
        f"/api/v2.0/companies({COMPANY})/customers",
        f"/api/v2.0/companies({OTHER_COMPANY})/salesOrders",
    ]
    for sub in bc.subs.values():
        assert sub["notificationUrl"] == f"{BASE}/api/notifications/contoso/{secret.key}"
        assert sub["clientState"] == secret.client_state
    rows = await store.all("contoso")
    assert {(r.watch, r.company_id) for r in rows} == {("customers", COMPANY), ("orders", OTHER_COMPANY)}
    found = await store.find("contoso", rows[0].subscription_id)
    assert found == rows[0]


async def test_a_subscription_is_kept_then_renewed_once_less_than_36_hours_are_left() -> None:
    manager, bc, store, _, clock = world()
    await manager.run("contoso", [watch("customers")], bc)

    clock.advance(LIFETIME - RENEW_WHEN_LEFT - timedelta(minutes=1))
    kept = await manager.run("contoso", [watch("customers")], bc)
    clock.advance(timedelta(minutes=2))
    renewed = await manager.run("contoso", [watch("customers")], bc)

    assert (kept.kept, kept.renewed, renewed.renewed, renewed.created) == (1, 0, 1, 0)
    assert renewed.expiries == (("customers", clock.now() + LIFETIME),)
    (row,) = await store.all("contoso")
    assert row.renewed_at == clock.now()
    assert row.expiration == clock.now() + LIFETIME


async def test_subscriptions_of_other_subscribers_are_never_touched_but_counted() -> None:
    manager, bc, _, secrets, _ = world()
    bc.foreign("f1", "https://prod-01.westeurope.logic.azure.com/workflows/1")
    bc.foreign("f2", "https://other-app.example.net/api/notifications/contoso/abc")
    bc.foreign("f3", f"{BASE}/api/notifications/fabrikam/abc")  # another connection of this deployment

    run = await manager.run("contoso", [], bc)

    assert bc.of("delete") == []
    assert (run.ours, run.total, run.limit) == (0, 3, 200)
    assert await secrets.get("contoso") is None  # no watch: no notification secret made


async def test_what_bc_deleted_is_recreated_and_its_watch_named_for_reconciliation() -> None:
    manager, bc, store, _, _ = world()
    await manager.run("contoso", [watch("customers"), watch("items", "items")], bc)
    customers = next(r for r in await store.all("contoso") if r.watch == "customers")
    del bc.subs[customers.subscription_id]  # environment copied, or five failed deliveries

    run = await manager.run("contoso", [watch("customers"), watch("items", "items")], bc)

    assert (run.created, run.kept, run.recreated) == (1, 1, ("customers",))
    assert await store.find("contoso", customers.subscription_id) is None
    assert len(await store.all("contoso")) == 2


async def test_a_removed_watch_loses_its_subscription_and_row() -> None:
    manager, bc, store, _, _ = world()
    await manager.run("contoso", [watch("customers"), watch("items", "items")], bc)

    run = await manager.run("contoso", [watch("customers")], bc)

    assert run.deleted == 1
    assert [r.watch for r in await store.all("contoso")] == ["customers"]
    assert len(bc.subs) == 1


async def test_one_failed_create_is_reported_and_the_others_still_made() -> None:
    manager, bc, store, _, _ = world()
    bc.refuse.add(f"/api/v2.0/companies({COMPANY})/customers")

    run = await manager.run("contoso", [watch("customers"), watch("items", "items")], bc)

    assert run.created == 1
    assert run.unsubscribed == ("customers",)  # the alert: this watch has no doorbell
    assert len(run.failures) == 1
    assert "customers" in run.failures[0]
    assert [r.watch for r in await store.all("contoso")] == ["items"]


async def test_a_disabled_watch_needs_no_subscription() -> None:
    manager, bc, _, _, _ = world()
    run = await manager.run("contoso", [watch("customers").model_copy(update={"enabled": False})], bc)
    assert (run.created, bc.subs) == (0, {})


async def test_a_removed_custom_api_watch_loses_its_subscription_under_its_own_route() -> None:
    manager, bc, store, _, _ = world()
    custom = Watch(connection="contoso", name="things", entity_set="things", api="Contoso/app/v1.0")
    await manager.run("contoso", [custom], bc)

    run = await manager.run("contoso", [], bc)

    assert run.deleted == 1
    assert ("list", "api/Contoso/app/v1.0") in bc.calls[-3:]
    assert await store.all("contoso") == []


def test_the_route_of_a_resource_keeps_the_custom_apis_spelling() -> None:
    assert route_of(f"/api/Contoso/app/v1.0/companies({COMPANY})/things").path == "api/Contoso/app/v1.0"
    assert route_of(f"api/v2.0/companies({COMPANY})/customers") == STANDARD_API
    assert (
        route_of(f"https://bc.example/v2.0/t/production/api/v2.0/companies({COMPANY})/items") == STANDARD_API
    )


async def test_a_bc_error_quoting_the_notification_url_never_carries_the_key_or_state() -> None:
    manager, bc, _, secrets, _ = world()
    bc.refuse.add(f"/api/v2.0/companies({COMPANY})/customers")
    bc.quote_url = True

    run = await manager.run("contoso", [watch("customers")], bc)

    secret = await secrets.get("contoso")
    assert secret is not None
    (failure,) = run.failures
    assert "/api/notifications/contoso/…" in failure
    assert secret.key not in failure
    assert secret.client_state not in failure


async def test_each_new_subscription_is_findable_before_the_next_is_created() -> None:
    manager, bc, store, _, _ = world()
    rows_seen: list[int] = []
    create = bc.create_subscription

    async def observed(api: ApiRoute, body: JsonObject) -> Entity:
        rows_seen.append(len(await store.all("contoso")))  # what the receiver could find at this moment
        return await create(api, body)

    bc.create_subscription = observed  # type: ignore[method-assign]
    await manager.run(
        "contoso", [watch("customers"), watch("items", "items"), watch("vendors", "vendors")], bc
    )

    assert rows_seen == [0, 1, 2]
