"""The subscription manager and reconciliation against the sandbox's faithful BC webhooks, through the product's
BC client: the handshake answered on our notification route, renewal before the 3 days end, re-creation after an
environment copy, and a lost notification healed by reconciliation.

Until the receiver route merges (`receiver` helper), a minimal endpoint here answers the handshake on
`/api/notifications/{connection}/{key}` (BC's rule: 200 with the token as text/plain) and records notifications.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bcjobs.changes import change_id
from sandbox import Sandbox
from sandbox.server import Listener, ServerThread, bind
from shared.bc import BusinessCentralClient
from shared.bc.models import EntitySet
from shared.changes.feed import MemoryChangeFeed
from shared.changes.reconcile import ReconcilePolicy, Reconciler
from shared.changes.secrets import MemoryNotifySecrets
from shared.changes.subscription_manager import SubscriptionManager
from shared.changes.subscriptions import MemorySubscriptionStore
from shared.changes.watch import Watch
from shared.changes.watermarks import MemoryWatermarkStore
from shared.settings import Settings

pytestmark = pytest.mark.integration

CUSTOMERS = EntitySet("customers")


class SandboxTime:
    """shared.clock.Clock on the sandbox's clock, so "2.5 days later" is the same instant for BC and the manager."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._sandbox.clock.now(), UTC)

    def time(self) -> float:
        return self._sandbox.clock.now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class NotificationRoute:
    """The notification route's minimal stand-in: handshake echo, notifications recorded."""

    def __init__(self) -> None:
        self.handshakes: list[str] = []
        self.notifications: list[dict[str, Any]] = []
        self.echo = True  # False: answer the handshake wrongly (BC then refuses the subscription)

    def app(self) -> Starlette:
        path = "/api/notifications/{connection}/{key}"
        return Starlette(routes=[Route(path, self.endpoint, methods=["GET", "POST"])])

    async def endpoint(self, request: Request) -> Response:
        token = request.query_params.get("validationToken")
        if token is not None:
            self.handshakes.append(request.path_params["connection"])
            return PlainTextResponse(token if self.echo else "not the token")
        self.notifications.append(json.loads(await request.body()))
        return Response(status_code=202)


@pytest.fixture
def route(sandbox: Sandbox) -> Iterator[tuple[NotificationRoute, str]]:
    """The route on plain http://127.0.0.1 (as the devhost serves it); BC's debounce made short."""
    sandbox.bc.webhooks.settings(delay_seconds=0.2, retry_seconds=(0.2,) * 6)
    receiver = NotificationRoute()
    sock = bind("127.0.0.1", 0)
    server = ServerThread([Listener("notifications", receiver.app(), sock, tls=False)], sandbox.tls)
    server.start()
    yield receiver, f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.stop()


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Poll with a deadline."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def parts(
    sandbox: Sandbox, base: str
) -> tuple[SubscriptionManager, MemorySubscriptionStore, MemoryNotifySecrets, SandboxTime]:
    store, secrets, clock = MemorySubscriptionStore(), MemoryNotifySecrets(), SandboxTime(sandbox)
    return SubscriptionManager(store, secrets, base, clock), store, secrets, clock


async def test_a_watch_gets_a_subscription_whose_notifications_carry_our_state_and_known_id(
    sandbox: Sandbox, bc: BusinessCentralClient, bc_settings: Settings, route: tuple[NotificationRoute, str]
) -> None:
    receiver, base = route
    manager, store, secrets, _ = parts(sandbox, base)
    connection = bc_settings.auth.connection_name
    watch = Watch(connection=connection, name="customers", entity_set="customers")

    run = await manager.run(connection, [watch], bc)
    await bc.create(CUSTOMERS, {"displayName": "Seen By A Webhook"})
    await until(lambda: bool(receiver.notifications))

    assert (run.created, run.ours, receiver.handshakes) == (1, 1, [connection])
    item = receiver.notifications[0]["value"][0]
    secret = await secrets.get(connection)
    assert secret is not None
    assert secret.matches_state(item["clientState"])
    found = await store.find(connection, item["subscriptionId"])
    assert found is not None
    assert found.watch == "customers"


async def test_a_subscription_past_two_and_a_half_days_is_renewed_never_lapsed(
    sandbox: Sandbox, bc: BusinessCentralClient, bc_settings: Settings, route: tuple[NotificationRoute, str]
) -> None:
    receiver, base = route
    manager, store, _, clock = parts(sandbox, base)
    connection = bc_settings.auth.connection_name
    watch = Watch(connection=connection, name="customers", entity_set="customers")
    await manager.run(connection, [watch], bc)

    sandbox.clock.advance(timedelta(days=2.5).total_seconds())
    run = await manager.run(connection, [watch], bc)

    assert (run.renewed, run.created) == (1, 0)
    assert len(receiver.handshakes) == 2  # the PATCH called back into the route
    (row,) = await store.all(connection)
    assert row.expiration - clock.now() > timedelta(days=2.9)
    assert sandbox.bc.webhooks.stats()["deleted"].get("expired", 0) == 0


async def test_an_environment_copy_is_healed_by_recreating_and_naming_the_watch(
    sandbox: Sandbox, bc: BusinessCentralClient, bc_settings: Settings, route: tuple[NotificationRoute, str]
) -> None:
    _, base = route
    manager, _, _, _ = parts(sandbox, base)
    connection = bc_settings.auth.connection_name
    watch = Watch(connection=connection, name="customers", entity_set="customers")
    await manager.run(connection, [watch], bc)

    removed = sandbox.bc.webhooks.copy_environment(sandbox.env["BC_TENANT_ID"], sandbox.env["BC_ENVIRONMENT"])
    run = await manager.run(connection, [watch], bc)

    assert removed == 1
    assert (run.created, run.recreated) == (1, ("customers",))


async def test_a_lost_notification_is_published_by_reconciliation(
    sandbox: Sandbox, bc: BusinessCentralClient, bc_settings: Settings, route: tuple[NotificationRoute, str]
) -> None:
    receiver, base = route
    manager, _, _, clock = parts(sandbox, base)
    connection = bc_settings.auth.connection_name
    watch = Watch(connection=connection, name="customers", entity_set="customers", include_data=True)
    await manager.run(connection, [watch], bc)
    feed = MemoryChangeFeed()
    policy = ReconcilePolicy(overlap=timedelta(seconds=1), deletes_every=timedelta(days=1))
    reconciler = Reconciler(feed, MemoryWatermarkStore(), policy, clock)
    await reconciler.reconcile(watch, bc_settings.bc.environment, bc)  # the baseline

    sandbox.bc.webhooks.lose_next(1)
    sandbox.clock.advance(5)
    lost = await bc.create(CUSTOMERS, {"displayName": "Never Notified"})
    run = await reconciler.reconcile(watch, bc_settings.bc.environment, bc)

    assert run.published >= 1
    event = next(e for e in feed.sent if e.subject == str(lost.id))
    assert event.bcorigin.value == "reconciliation"
    assert event.data is not None
    assert event.data["entity"]["displayName"] == "Never Notified"
    assert receiver.notifications == []  # BC never told anyone


async def test_reconciliation_without_data_still_hashes_the_etag_as_the_webhook_path_does(
    sandbox: Sandbox, bc: BusinessCentralClient, bc_settings: Settings
) -> None:
    connection = bc_settings.auth.connection_name
    watch = Watch(connection=connection, name="customers", entity_set="customers")  # no data: $select=id,...
    feed = MemoryChangeFeed()
    policy = ReconcilePolicy(overlap=timedelta(seconds=1), deletes_every=timedelta(days=1))
    reconciler = Reconciler(feed, MemoryWatermarkStore(), policy, SandboxTime(sandbox))
    await reconciler.reconcile(watch, bc_settings.bc.environment, bc)

    sandbox.clock.advance(5)
    created = await bc.create(CUSTOMERS, {"displayName": "Selected Few"})
    await reconciler.reconcile(watch, bc_settings.bc.environment, bc)

    event = next(e for e in feed.sent if e.subject == str(created.id))
    company = str(await bc.company_id())
    assert created.etag is not None
    assert event.id == change_id(connection, company, "customers", str(created.id), created.etag)
