"""Issue 22's acceptance under storage trouble, through the real triggers: the app's storage (an Azurite of this
test's own, file-backed so a restart keeps the queues and rows) goes down for BC's 10 minutes scaled; the receiver
answers BC 503, BC retries on its schedule (scaled), and once storage is back the change arrives: nothing lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from localworld.azurite import Azurite
from sandbox import Sandbox
from shared.bc import BusinessCentralClient, SharedThrottle, build_client
from shared.settings import Settings
from testkit.sandbox_tokens import SandboxTokenProvider
from tests.integration.auth.test_change_feed_over_devhost import FeedHost, feed_host  # noqa: F401 - fixture
from tests.integration.bc.conftest import bc_settings, coordination, throttle, tokens  # noqa: F401 - fixtures
from tests.integration.changes.test_acceptance import COLD, CUSTOMERS, arrival, watch_and_subscribe

pytestmark = pytest.mark.integration
# BC's retry delays after failures 1..5 are +1, +1, +10, +100, +1,000 minutes (codeunit 6154; sandbox/README.md
# "Delivery outcome"); at a time scale of 60 a minute is a second, and the 10-minute outage is 10 s.
SCALE = 60.0
RETRY_MINUTES = (1, 1, 1, 10, 100, 1000)
OUTAGE_SECONDS = 10 * 60 / SCALE


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[Azurite]:
    """An Azurite of this test's own whose data lives in tmp_path (kept across its restart)."""
    server = Azurite(location=tmp_path / "azurite")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def azurite_connection_string(own_azurite: Azurite) -> str:
    """The app's storage for this module: the test's own Azurite (the session's is never stopped)."""
    assert own_azurite.endpoints is not None
    return own_azurite.endpoints.connection_string


@pytest.fixture
async def writer(
    bc_settings: Settings,  # noqa: F811
    tokens: SandboxTokenProvider,  # noqa: F811
    throttle: SharedThrottle,  # noqa: F811
) -> AsyncIterator[BusinessCentralClient]:
    """Another writer of BC, as in test_acceptance."""
    client = build_client(bc_settings, tokens, throttle)
    yield client
    await client.aclose()


async def test_a_change_bc_retried_through_a_storage_outage_arrives_once_storage_is_back(
    feed_host: FeedHost,  # noqa: F811
    sandbox: Sandbox,
    own_azurite: Azurite,
    writer: BusinessCentralClient,
    azurite_connection_string: str,
) -> None:
    await watch_and_subscribe(feed_host, {"customers": "customers"})
    sandbox.bc.webhooks.settings(
        delay_seconds=0.5, retry_seconds=tuple(m * 60 / SCALE for m in RETRY_MINUTES)
    )
    (subscription,) = sandbox.bc.webhooks.subscriptions()

    outage = asyncio.create_task(asyncio.to_thread(own_azurite.restart, down_seconds=OUTAGE_SECONDS))
    await asyncio.sleep(1.0)  # storage is down (restart stops it at once), then BC's debounce starts
    created = await writer.create(CUSTOMERS, {"displayName": "Waited Out The Outage"})
    await outage

    event, _ = await arrival(
        feed_host,
        azurite_connection_string,
        "customers",
        lambda e: e.subject == str(created.values["id"]),
        within=COLD + 20,
    )
    assert (event.bcchange.value, event.bcorigin.value) == ("created", "webhook")
    counters = sandbox.bc.webhooks.url_counters(subscription["notificationUrl"])
    assert counters.statuses[503] >= 2  # BC was told "storage trouble, retry", never a 4xx
    assert counters.rejected == 0
    assert [s["subscriptionId"] for s in sandbox.bc.webhooks.subscriptions()] == [
        subscription["subscriptionId"]
    ]
