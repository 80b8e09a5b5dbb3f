"""Issue 22's acceptance through the real triggers: function_app.py on devhost (receiver route and the
`changes_expand` queue trigger) on Azurite, BC = the sandbox's faithful webhooks with a short debounce, and another
writer — its own client, its own throttle, no job — changing BC as a user would. The subscription timer runs here
as the host would run it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from azure.data.tables.aio import TableClient
from azure.storage.queue.aio import QueueClient

from bcjobs import JobState
from bcjobs.changes import ChangeEvent
from bcjobs.client import JobsClient
from bcjobs.connections import ConnectionsClient
from sandbox import Sandbox
from shared.bc import BusinessCentralClient, SharedThrottle, build_client
from shared.bc.models import BatchOperation, EntitySet, Method
from shared.changes.log import TableChangeFeed, changes_table_name
from shared.settings import Settings
from shared.triggers import change_timers
from testkit.clock import ShiftedClock
from testkit.sandbox_tokens import SandboxTokenProvider
from tests.integration.auth.test_change_feed_over_devhost import FeedHost, feed_host  # noqa: F401 - fixture
from tests.integration.auth.test_timer_and_secrets import timer
from tests.integration.bc.conftest import bc_settings, coordination, throttle, tokens  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration
CUSTOMERS = EntitySet("customers")
ORDERS = EntitySet("salesOrders")


@pytest.fixture
async def writer(
    bc_settings: Settings,  # noqa: F811
    tokens: SandboxTokenProvider,  # noqa: F811
    throttle: SharedThrottle,  # noqa: F811
) -> AsyncIterator[BusinessCentralClient]:
    """Another writer of BC (a user, a Power Automate flow): not the product's lane, no job, no echo journal."""
    client = build_client(bc_settings, tokens, throttle)
    yield client
    await client.aclose()


async def logged(host: FeedHost, connection_string: str, entity_set: str) -> list[ChangeEvent]:
    """Every event of the change log for `entity_set`, page by page, as a reader a minute from now sees it."""
    async with (
        TableClient.from_connection_string(
            connection_string, changes_table_name(host.env["BC_TABLE_PREFIX"])
        ) as t,
        QueueClient.from_connection_string(connection_string, "unused") as queue,
    ):
        reader = TableChangeFeed(t, queue, ShiftedClock(timedelta(minutes=1)))
        events: list[ChangeEvent] = []
        after: str | None = None
        while True:
            page = await reader.read(host.env["BC_CONNECTION_NAME"], entity_set, after, 1000)
            events.extend(page.changes)
            if not page.changes or page.next is None or page.next == after:
                return events
            after = page.next


Arrived = tuple[ChangeEvent, float]


async def arrival(
    host: FeedHost,
    connection_string: str,
    entity_set: str,
    wanted: Callable[[ChangeEvent], bool],
    within: float,
) -> Arrived:
    """The first logged event `wanted` accepts and the seconds it took to appear; fails after `within` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        found = [e for e in await logged(host, connection_string, entity_set) if wanted(e)]
        if found:
            return found[0], time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"no matching {entity_set} event within {within} s")


async def watch_and_subscribe(host: FeedHost, watches: dict[str, str]) -> None:
    """Watches through the product's HTTP API, then the subscription timer once (BC's handshake hits devhost)."""
    with ConnectionsClient(host.base_url, host.function_key) as admin:
        for name, entity_set in watches.items():
            admin.put_watch(
                host.env["BC_CONNECTION_NAME"], name, {"entitySet": entity_set, "includeData": True}
            )
    await change_timers.change_subscriptions(timer())


# Beyond BC's debounce an event waits for the `changes_expand` queue poll (host.json maxPollingInterval 10 s: idle
# polling backs off up to it) and a read; a cold worker's first read also waits to join the connection's throttle
# (shared/bc/throttle/plan.py: 1.5 heartbeats + 1 s = 16 s) so that it never exceeds the lane's share of BC.
WARM = 12.0
COLD = WARM + 16.0 + 5.0
UPDATES = 8  # spaced updates of one customer: the latency samples


async def test_changes_by_another_writer_arrive_as_events_within_the_debounce_and_a_poll(
    feed_host: FeedHost,  # noqa: F811
    sandbox: Sandbox,
    writer: BusinessCentralClient,
    azurite_connection_string: str,
) -> None:
    """Created, updated (several times: the latency samples), deleted: one event each, each waited for, since BC merges an `updated` into a pending item of
    the same entity within one debounce window (codeunit 6154; reference (a)). Then an order's line changed: the
    order's event (BC notifies a line change as its header's `updated`)."""
    debounce = sandbox.bc.webhooks.current_settings().delay_seconds
    await watch_and_subscribe(feed_host, {"customers": "customers", "orders": "salesOrders"})

    def arrive(
        kind: str, subject: str, within: float, entity_set: str = "customers", etag: str | None = None
    ) -> Awaitable[Arrived]:
        def wanted(e: ChangeEvent) -> bool:
            return (e.subject, e.bcchange.value) == (subject, kind) and etag in (None, e.bcetag)

        return arrival(feed_host, azurite_connection_string, entity_set, wanted, debounce + within)

    created = await writer.create(CUSTOMERS, {"displayName": "Made In BC"})
    subject = str(created.values["id"])
    event, _ = await arrive("created", subject, COLD)
    assert (event.bcorigin.value, event.bcecho) == ("webhook", None)
    assert event.data is not None
    assert event.data["entity"]["displayName"] == "Made In BC"

    figures: list[
        tuple[float, int]
    ] = []  # per warm change: seconds beyond the debounce, BC requests the feed sent
    updated = created
    for n in range(UPDATES):
        updated = await writer.update(
            CUSTOMERS.key(subject), {"displayName": f"Renamed {n}"}, etag=updated.etag
        )
        sent = sandbox.bc.stats().count()
        event, seconds = await arrive("updated", subject, WARM, etag=updated.etag)
        figures.append((seconds - debounce, sandbox.bc.stats().count() - sent))
    await writer.delete(CUSTOMERS.key(subject), etag=updated.etag)
    sent = sandbox.bc.stats().count()
    _, seconds = await arrive("deleted", subject, WARM)
    figures.append((seconds - debounce, sandbox.bc.stats().count() - sent))
    kinds = [e.bcchange.value for e in await logged(feed_host, azurite_connection_string, "customers")
             if e.subject == subject]  # fmt: skip
    assert kinds == ["created", *["updated"] * UPDATES, "deleted"]
    print(f"beyond the debounce (s), BC requests per change: {figures}")
    assert [requests for _, requests in figures] == [1] * UPDATES + [
        0
    ]  # one GET per update, none for a delete

    order = (await writer.list(ORDERS, limit=1))[0]
    lines = ORDERS.key(str(order.values["id"])).child("salesOrderLines")
    line = (await writer.list(lines, limit=1))[0]
    await writer.update(lines.key(str(line.values["id"])), {"quantity": 7}, etag=line.etag)
    event, _ = await arrive("updated", str(order.values["id"]), WARM, "salesOrders")
    assert event.bcentityset == "salesOrders"


async def test_1500_customers_changed_in_one_window_are_one_collection_and_each_logged_once(
    feed_host: FeedHost,  # noqa: F811
    sandbox: Sandbox,
    writer: BusinessCentralClient,
    azurite_connection_string: str,
) -> None:
    """Above BC's 1,000-item threshold the pending items collapse into one `collection` (reference (a)); the
    expansion's paged `lastModifiedDateTime gt` read must still give every customer exactly one event."""
    await watch_and_subscribe(feed_host, {"customers": "customers"})
    sandbox.bc.webhooks.settings(delay_seconds=6.0)  # long enough for 15 $batch requests of 100
    (subscription,) = sandbox.bc.webhooks.subscriptions()
    operations = [BatchOperation(Method.POST, CUSTOMERS, {"displayName": f"Bulk {n}"}) for n in range(1500)]
    results = await writer.batch(operations)
    ids = {str(r.entity.values["id"]) for r in results if r.entity is not None}
    assert len(ids) == 1500

    sent, started = sandbox.bc.stats().count(), time.monotonic()
    while True:
        events = [
            e for e in await logged(feed_host, azurite_connection_string, "customers") if e.subject in ids
        ]
        # A bound on waiting, not a latency claim (nothing asserts `took`): 45 s was within 2 s of a serial run on a
        # loaded 2-core machine and too short beside other pytest-xdist workers; 90 s stays under pytest-timeout's
        # 120 s. Correctness is asserted below.
        if {e.subject for e in events} == ids or time.monotonic() - started > 90:
            break
        await asyncio.sleep(0.5)
    took, requests = time.monotonic() - started, sandbox.bc.stats().count() - sent
    print(
        f"collection of 1,500: all logged {took:.1f} s after the last write, {requests} BC requests by the feed"
    )
    assert Counter(Counter(e.subject for e in events).values()) == {1: 1500}
    assert len({e.id for e in events}) == 1500
    counters = sandbox.bc.webhooks.url_counters(subscription["notificationUrl"])
    assert (counters.delivered, counters.items) == (1, 1)  # one POST carrying one `collection` item


async def test_a_jobs_own_update_of_a_watched_customer_arrives_marked_as_that_jobs_echo(
    feed_host: FeedHost,  # noqa: F811
    sandbox: Sandbox,
    azurite_connection_string: str,
) -> None:
    """The job runs on devhost's job trigger, which journals the version it wrote; BC's notification of it is
    expanded into an event whose `bcecho` names the job (the only way to know: BC does not say who changed it)."""
    await watch_and_subscribe(feed_host, {"customers": "customers"})
    customer = str(sandbox.bc.records("customers")[0]["id"])
    job_id = f"echo-{uuid.uuid4().hex[:8]}"
    job = {
        "jobId": job_id,
        "operation": "update",
        "entitySet": "customers",
        "id": customer,
        "data": {"phoneNumber": "555-0122"},
    }
    prefix = feed_host.env["BC_TABLE_PREFIX"]
    with JobsClient.from_connection_string(azurite_connection_string, table_prefix=prefix) as jobs:
        jobs.create_queues()
        jobs.enqueue(job)
        report = await asyncio.to_thread(jobs.wait, job_id, 60, 0.2)
    assert report.state == JobState.SUCCEEDED

    debounce = sandbox.bc.webhooks.current_settings().delay_seconds
    event, _ = await arrival(
        feed_host, azurite_connection_string, "customers", lambda e: e.subject == customer, debounce + COLD
    )
    assert (event.bcchange.value, event.bcecho) == ("updated", job_id)
