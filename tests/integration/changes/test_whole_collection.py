"""An entity set without `lastModifiedDateTime` over the sandbox (its custom API page `shipmentTrackings`): BC
sends a `collection` as the bare URL (reference (a) A3), the expansion reads the set whole and publishes only what
changed, and reconciliation's whole read (on the id comparison's schedule) publishes nothing twice and finds the
delete. The watermarks live in Table storage (Azurite), as in the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from azure.data.tables.aio import TableClient

from sandbox import Sandbox
from shared.bc import BusinessCentralClient
from shared.bc.errors import NotFoundError
from shared.bc.models import ApiRoute, BatchOperation, EntitySet, Method
from shared.changes.expansion import Expansion
from shared.changes.feed import MemoryChangeFeed
from shared.changes.notifications import NotificationMessage
from shared.changes.reconcile import ReconcilePolicy, Reconciler
from shared.changes.resources import parse_item
from shared.changes.watch import Watch
from shared.changes.watermarks import TableWatermarkStore
from shared.connections import Connection
from shared.settings import Settings
from testkit.clock import ManualClock
from tests.fakes.notifications import MemoryWatches, OneFeedLane
from tests.integration.bc.conftest import (  # noqa: F401 - fixtures
    bc,
    bc_settings,
    coordination,
    recorder,
    throttle,
    tokens,
)
from tests.integration.bc.test_change_feed_sandbox import (  # noqa: F401 - route: a fixture
    NotificationRoute,
    parts,
    route,
    until,
)

pytestmark = pytest.mark.integration
API = "contoso/app/v1.0"
TRACKINGS = EntitySet("shipmentTrackings", api=ApiRoute("contoso", "app", "v1.0"))
POLICY = ReconcilePolicy(overlap=timedelta(seconds=1), deletes_every=timedelta(hours=24))


@pytest.fixture
async def marks(azurite_connection_string: str, unique_name: str) -> AsyncIterator[TableWatermarkStore]:
    """Reconciliation's watermarks in a table of this test's own."""
    async with TableClient.from_connection_string(azurite_connection_string, unique_name) as table:
        store = TableWatermarkStore(table)
        await store.ensure()
        yield store
        await table.delete_table()


async def test_the_sandboxs_custom_page_has_no_modified_field_and_is_not_part_of_v2(
    bc: BusinessCentralClient,  # noqa: F811
) -> None:
    created = await bc.create(TRACKINGS, {"orderNumber": "S-ORD101001", "carrier": "DHL"})

    assert "lastModifiedDateTime" not in created.values
    assert created.etag
    with pytest.raises(NotFoundError):
        await bc.list(EntitySet("shipmentTrackings"), limit=1)


async def test_a_bare_collection_and_whole_reads_publish_each_change_once_and_find_the_delete(
    sandbox: Sandbox,
    bc: BusinessCentralClient,  # noqa: F811
    bc_settings: Settings,  # noqa: F811
    route: tuple[NotificationRoute, str],  # noqa: F811
    marks: TableWatermarkStore,
) -> None:
    receiver, base = route
    manager, _, secrets, _ = parts(sandbox, base)
    connection = bc_settings.auth.connection_name
    watch = Watch(
        connection=connection, name="tracking", entity_set="shipmentTrackings", api=API, include_data=True
    )
    await manager.run(connection, [watch], bc)
    kept, changed, doomed = [(await bc.create(TRACKINGS, {"carrier": c})) for c in ("DHL", "UPS", "GLS")]
    await until(lambda: sum(len(n["value"]) for n in receiver.notifications) == 3)  # each its own `created`
    receiver.notifications.clear()
    clock, feed = ManualClock(), MemoryChangeFeed()
    reconciler = Reconciler(feed, marks, POLICY, clock)
    baseline = await reconciler.reconcile(watch, bc_settings.bc.environment, bc)
    assert (baseline.baseline, baseline.read) == (True, 3)

    # Above the (lowered) threshold inside one debounce window: one `collection` item, the bare URL.
    sandbox.bc.webhooks.settings(delay_seconds=1.0, max_notifications=2)
    await bc.update(TRACKINGS.key(str(changed.id)), {"status": "Shipped"}, etag=changed.etag)
    new = [BatchOperation(Method.POST, TRACKINGS, {"carrier": f"Bulk {n}"}) for n in range(3)]
    await bc.batch(new)
    await until(lambda: bool(receiver.notifications))
    (item,) = receiver.notifications[0]["value"]
    assert item["changeType"] == "collection"
    assert item["resource"].endswith(
        "/shipmentTrackings"
    )  # no `$filter`: the page has no lastModifiedDateTime
    parsed = parse_item(item)
    assert parsed is not None
    assert parsed.target.since is None

    secret = await secrets.get(connection)
    assert secret is not None
    lane = Connection(
        name=connection,
        tenant_id=sandbox.env["BC_TENANT_ID"],
        environment=bc_settings.bc.environment,
        client_id=sandbox.env["BC_CLIENT_ID"],
        company_id=await bc.company_id(),
    )
    expansion = Expansion(
        secrets, MemoryWatches({connection: [watch]}), OneFeedLane(lane, bc), feed, None, marks
    )
    message = NotificationMessage(
        connection=connection,
        key=urlsplit(receiver_url(sandbox)).path.rsplit("/", 1)[1],
        received_at=datetime.now(UTC),
        value=[item],
    )
    expanded = await expansion.expand(message)
    assert expanded.new == 4  # the 3 created and the 1 updated; the 2 unchanged are skipped
    assert str(kept.id) not in {event.subject for event in feed.sent}

    await bc.delete(TRACKINGS.key(str(doomed.id)), etag=doomed.etag)
    clock.advance(POLICY.deletes_every)
    run = await reconciler.reconcile(watch, bc_settings.bc.environment, bc)

    assert (run.read, run.published, run.seen, run.deleted) == (5, 0, 4, 1)
    subjects = [event.subject for event in feed.sent]
    assert len(subjects) == len(set(subjects)) == 5  # each change once: 4 versions and the tombstone
    assert {event.bcorigin.value for event in feed.sent} == {"webhook", "reconciliation"}


def receiver_url(sandbox: Sandbox) -> str:
    """The notification URL BC holds for the one subscription."""
    (subscription,) = sandbox.bc.webhooks.subscriptions()
    return str(subscription["notificationUrl"])
