"""The timers' work over connections: each connection's failure its own, re-created watches reconciled at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

from shared.bc import BusinessCentralClient
from shared.bc.errors import ServiceUnavailableError
from shared.bc.models import STANDARD_API, ApiRoute, BcEndpoint, Entity, EntitySet
from shared.bc.odata import ODataQuery
from shared.changes.feed import MemoryChangeFeed
from shared.changes.reconcile import Reconciler
from shared.changes.secrets import MemoryNotifySecrets
from shared.changes.subscription_manager import ConnectionRun, SubscriptionManager
from shared.changes.subscriptions import MemorySubscriptionStore
from shared.changes.upkeep import Upkeep, lane_clients, reconcile_policy
from shared.changes.watch import Watch
from shared.changes.watches import CachedWatches, MemoryWatchStore
from shared.changes.watermarks import MemoryWatermarkStore
from shared.connections import Connection, UnknownConnectionError
from shared.jobs.lanes import Lane
from shared.jobs.runner import JobRunner
from shared.settings import load_settings
from testkit.clock import ManualClock
from tests.unit.changes.test_subscription_manager import BASE, FakeBc


def connection(name: str) -> Connection:
    return Connection(
        name=name,
        tenant_id="22222222-2222-2222-2222-222222222222",
        environment="production",
        client_id="33333333-3333-3333-3333-333333333333",
    )


@dataclass
class FakeBcWithData(FakeBc):
    """FakeBc that also reads an (empty) entity set, and can fail its listing."""

    down: bool = False
    endpoint: BcEndpoint = field(default_factory=lambda: BcEndpoint("https://bc.example", "production"))
    reads: list[str] = field(default_factory=list)

    async def subscriptions(self, api: ApiRoute = STANDARD_API) -> tuple[Entity, ...]:
        if self.down:
            raise ServiceUnavailableError("BC is down for maintenance")
        return await super().subscriptions(api)

    async def pages(
        self, entity_set: EntitySet, query: ODataQuery | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[tuple[Entity, ...]]:
        self.reads.append(entity_set.name)
        yield ()


@dataclass
class FakeLanes:
    clients: dict[str, FakeBcWithData]

    @property
    def default(self) -> str:
        return "contoso"

    async def lane(self, name: str | None) -> Lane:
        if name not in self.clients:
            raise UnknownConnectionError(str(name))
        runner = JobRunner(cast(BusinessCentralClient, self.clients[name]))
        return Lane(connection(name), runner, cast(Any, None))


def world(*names: str) -> tuple[Upkeep, FakeLanes, MemoryWatchStore, MemoryWatermarkStore]:
    clock = ManualClock()
    store, subs, marks = MemoryWatchStore(), MemorySubscriptionStore(), MemoryWatermarkStore()
    lanes = FakeLanes({name: FakeBcWithData(clock) for name in names})
    manager = SubscriptionManager(subs, MemoryNotifySecrets(), BASE, clock)
    policy = reconcile_policy(load_settings({}))
    reconciler = Reconciler(MemoryChangeFeed(), marks, policy, clock)
    upkeep = Upkeep(CachedWatches(store, clock), subs, lane_clients(lanes), manager, reconciler)
    return upkeep, lanes, store, marks


async def test_one_connections_failure_leaves_the_others_managed() -> None:
    upkeep, lanes, store, _ = world("contoso", "fabrikam")
    for name in ("contoso", "fabrikam"):
        await store.put(Watch(connection=name, name="customers", entity_set="customers"))
    lanes.clients["contoso"].down = True

    failed = await upkeep.manage(connection("contoso"))
    managed = await upkeep.manage(connection("fabrikam"))

    assert failed.error is not None
    assert "maintenance" in failed.error
    assert isinstance(managed.result, ConnectionRun)
    assert managed.result.created == 1


async def test_a_connection_without_watches_or_subscriptions_costs_no_bc_call() -> None:
    upkeep, lanes, _, _ = world("contoso")
    outcome = await upkeep.manage(connection("contoso"))
    assert (outcome.result, outcome.error, lanes.clients["contoso"].calls) == (None, None, [])


async def test_a_recreated_subscription_reconciles_its_watch_at_once() -> None:
    upkeep, lanes, store, marks = world("contoso")
    await store.put(Watch(connection="contoso", name="customers", entity_set="customers"))
    await upkeep.manage(connection("contoso"))
    lanes.clients["contoso"].subs.clear()  # BC deleted it (environment copied)

    outcome = await upkeep.manage(connection("contoso"))

    assert isinstance(outcome.result, ConnectionRun)
    assert outcome.result.recreated == ("customers",)
    assert [o.subject for o in outcome.reconciled] == ["customers"]
    assert lanes.clients["contoso"].reads == ["customers"]
    assert await marks.mark("contoso", "customers") is not None


async def test_without_a_notification_base_the_error_names_the_setting() -> None:
    upkeep, _, _, _ = world("contoso")
    bare = Upkeep(upkeep.watches, upkeep.subscriptions, upkeep.clients, None, upkeep.reconciler)
    outcome = await bare.manage(connection("contoso"))
    assert outcome.error is not None
    assert "BC_NOTIFICATION_BASE_URL" in outcome.error


async def test_reconcile_all_covers_enabled_watches_only() -> None:
    upkeep, lanes, store, _ = world("contoso")
    await store.put(Watch(connection="contoso", name="customers", entity_set="customers"))
    await store.put(Watch(connection="contoso", name="items", entity_set="items", enabled=False))

    outcomes = await upkeep.reconcile_all(connection("contoso"))

    assert [o.subject for o in outcomes] == ["customers"]
    assert lanes.clients["contoso"].reads == ["customers"]
