"""A disabled or deleted connection's BC subscriptions against the sandbox's faithful webhooks: deleted with
If-Match while the connection's token works (never another subscriber's), else left to BC's 3-day expiry with
their rows dropped once it passed."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import pytest

from sandbox import Sandbox
from shared.bc import BusinessCentralClient
from shared.bc.models import STANDARD_API
from shared.changes.subscription_manager import Lapsing
from shared.changes.upkeep import Upkeep, lane_clients
from shared.changes.watch import Watch
from shared.changes.watches import CachedWatches, MemoryWatchStore
from shared.jobs.lanes import Lanes
from shared.settings import Settings
from tests.integration.bc.test_change_feed_sandbox import NotificationRoute, parts, route  # noqa: F401

pytestmark = pytest.mark.integration


def _ours(sandbox: Sandbox) -> int:
    return sum(cast(dict[str, int], sandbox.bc.webhooks.stats()["subscriptions"]).values())


async def test_a_disabled_connections_subscriptions_are_deleted_and_anothers_kept(
    sandbox: Sandbox,
    bc: BusinessCentralClient,
    bc_settings: Settings,
    route: tuple[NotificationRoute, str],  # noqa: F811 - the imported fixture
) -> None:
    _, base = route
    manager, store, _, _ = parts(sandbox, base)
    connection = bc_settings.auth.connection_name
    watch = Watch(connection=connection, name="customers", entity_set="customers")
    await manager.run(connection, [watch], bc)
    company = await bc.company_id()
    theirs = {
        "notificationUrl": f"{base}/api/notifications/a-power-automate-flow/k",
        "resource": watch.resource(company),
        "clientState": "theirs",
    }
    await bc.create_subscription(STANDARD_API, theirs)

    run = await manager.retire(connection, bc)

    assert (run.deleted, run.failures, run.ours, run.total) == (1, (), 0, 1)
    assert (await store.all(connection), store.usages) == ([], {})  # the status page forgets it
    assert _ours(sandbox) == 1  # the other subscriber's stays
    assert sandbox.bc.webhooks.stats()["deleted"] == {"api": 1}


async def test_a_deleted_connections_rows_are_dropped_once_bc_let_them_lapse(
    sandbox: Sandbox,
    bc: BusinessCentralClient,
    bc_settings: Settings,
    route: tuple[NotificationRoute, str],  # noqa: F811 - the imported fixture
) -> None:
    _, base = route
    manager, store, _, clock = parts(sandbox, base)
    connection = bc_settings.auth.connection_name
    await manager.run(connection, [Watch(connection=connection, name="c", entity_set="customers")], bc)
    upkeep = Upkeep(
        CachedWatches(MemoryWatchStore(), clock), store, lane_clients(cast(Lanes, None)), manager, None, None
    )

    assert await upkeep.retirees([]) == [(connection, None)]  # rows, and no such connection any more
    first = (await upkeep.retire(connection, None)).result
    sandbox.clock.advance(timedelta(days=3, minutes=1).total_seconds())
    later = (await upkeep.retire(connection, None)).result

    assert isinstance(first, Lapsing)
    assert isinstance(later, Lapsing)
    assert (first.dropped, first.left, later.dropped, later.left) == (0, 1, 1, 0)
    assert "deleted" in first.reason
    assert await store.all(connection) == []
