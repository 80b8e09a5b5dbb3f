"""The timers' work over connections: each connection's failure its own, re-created watches reconciled at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, cast

from shared.auth.errors import ReauthorizationRequiredError
from shared.bc import BusinessCentralClient
from shared.bc.errors import ServiceUnavailableError
from shared.bc.models import STANDARD_API, ApiRoute, BcEndpoint, Entity, EntitySet
from shared.bc.odata import ODataQuery
from shared.changes.feed import MemoryChangeFeed
from shared.changes.reconcile import Reconciler
from shared.changes.secrets import MemoryNotifySecrets
from shared.changes.subscription_manager import ConnectionRun, Lapsing, SubscriptionManager
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
from tests.fakes.telemetry import capture
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
class NoTokenBc(FakeBcWithData):
    """A client whose token set is gone: every request fails before it is sent, as the token manager's do."""

    async def subscriptions(self, api: ApiRoute = STANDARD_API) -> tuple[Entity, ...]:
        raise ReauthorizationRequiredError("the grant is dead: sign in again at /api/auth/login")


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


async def test_a_disabled_connection_with_a_token_has_its_subscriptions_deleted() -> None:
    upkeep, lanes, store, _ = world("contoso")
    await store.put(Watch(connection="contoso", name="customers", entity_set="customers"))
    await upkeep.manage(connection("contoso"))
    disabled = connection("contoso").model_copy(update={"enabled": False})
    bc = lanes.clients["contoso"]
    retiring = replace(upkeep, retiring=lambda found: cast(BusinessCentralClient, bc))

    assert await retiring.retirees([disabled]) == [("contoso", disabled)]
    outcome = await retiring.retire("contoso", disabled)

    assert isinstance(outcome.result, ConnectionRun)
    assert (outcome.result.deleted, bc.subs) == (1, {})
    assert await upkeep.subscriptions.all("contoso") == []


async def test_a_disabled_connection_without_a_token_leaves_its_subscriptions_to_lapse_with_the_reason() -> (
    None
):
    upkeep, _, store, _ = world("contoso")
    await store.put(Watch(connection="contoso", name="customers", entity_set="customers"))
    await upkeep.manage(connection("contoso"))

    no_token = NoTokenBc(ManualClock())

    outcome = await replace(upkeep, retiring=lambda found: cast(BusinessCentralClient, no_token)).retire(
        "contoso", connection("contoso")
    )

    assert isinstance(outcome.result, Lapsing)
    assert (outcome.result.dropped, outcome.result.left) == (0, 1)
    assert "sign in again" in outcome.result.reason


async def test_a_subscription_run_and_a_reconciliation_are_measured() -> None:
    """bc.subscriptions.* from the manager's run (created, live, environment use), bc.reconcile.lag per watch."""
    upkeep, _, store, _ = world("contoso")
    await store.put(Watch(connection="contoso", name="customers", entity_set="customers"))
    with capture(ManualClock()) as captured:
        await upkeep.manage(connection("contoso"))
        await upkeep.reconcile_all(connection("contoso"))
        await upkeep.reconcile_all(connection("contoso"))  # the first run is the baseline: no lag yet
        assert captured.total("bc.subscriptions.changes", connection="contoso", action="created") == 1
        assert [p.value for p in captured.points("bc.subscriptions.live")] == [1.0]
        assert [p.value for p in captured.points("bc.subscriptions.environment")] == [1.0]
        assert [p.attributes for p in captured.points("bc.reconcile.lag")] == [
            {"connection": "contoso", "watch": "customers"}
        ]


async def test_subscriptions_are_managed_on_the_primary_identitys_client() -> None:
    """BC records a subscription's creator: with a pool, the manager's calls use the primary identity's client
    (`retiring`, ConnectionLanes.feed_client_of), not whichever identity the feed's reads get."""
    upkeep, lanes, store, _ = world("contoso")
    primary = FakeBcWithData(ManualClock())
    pooled = replace(upkeep, retiring=lambda found: cast(BusinessCentralClient, primary))
    await store.put(Watch(connection="contoso", name="customers", entity_set="customers"))

    outcome = await pooled.manage(connection("contoso"))

    assert isinstance(outcome.result, ConnectionRun)
    assert outcome.result.created == 1
    assert len(primary.subs) == 1
    assert lanes.clients["contoso"].subs == {}
