"""Issue 22's acceptance with the app's host down, through the real triggers: devhost (function_app.py) is stopped
for BC's 10 minutes scaled, so BC's POSTs to the notification URL get no answer at all (connection refused). BC
retries on its schedule (codeunit 6154 treats "no response" like 408/429/5xx; reference
bc-webhooks-connections-identities.md A4; the sandbox's sender counts a refused connection as `no_answer`,
sandbox/README.md "Delivery outcome"), and once a host listens on the same URL again every change arrives, once.

The world is test_acceptance's (feed_host on the session's Azurite, its setup ~2 s); only the host is replaced."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

import function_app
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from localworld.polling import wait_until
from sandbox import Sandbox
from shared.bc import BusinessCentralClient, SharedThrottle, build_client
from shared.settings import Settings
from testkit.sandbox_tokens import SandboxTokenProvider
from tests.integration.auth.conftest import ROOT
from tests.integration.auth.test_change_feed_over_devhost import FeedHost, feed_host  # noqa: F401 - fixture
from tests.integration.bc.conftest import bc_settings, coordination, throttle, tokens  # noqa: F401 - fixtures
from tests.integration.changes.test_acceptance import COLD, CUSTOMERS, logged, watch_and_subscribe

pytestmark = pytest.mark.integration
# BC's retry delays after failures 1..5 are +1, +1, +10, +100, +1,000 minutes (codeunit 6154; sandbox/README.md
# "Delivery outcome"); at a time scale of 60 a minute is a second, and the 10-minute outage is 10 s. A change made
# as the host goes down is tried at +0.5 s (the debounce), +1.5 s, +2.5 s (refused), then +12.5 s: after the host is
# back at +10 s.
SCALE = 60.0
RETRY_MINUTES = (1, 1, 1, 10, 100, 1000)
OUTAGE_SECONDS = 10 * 60 / SCALE


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


def host_again(down: FeedHost) -> DevHost:
    """A new devhost for the same app on the same port (the notification URL BC holds)."""
    port = urlsplit(down.base_url).port
    config = load_host_config(ROOT / "host.json")
    return DevHost(function_app.app, down.env, host_config=config, port=port or 0, shutdown_grace=10)


async def test_changes_bc_retried_while_the_apps_host_was_down_arrive_once_it_is_back(
    feed_host: FeedHost,  # noqa: F811
    sandbox: Sandbox,
    writer: BusinessCentralClient,
    azurite_connection_string: str,
) -> None:
    await watch_and_subscribe(feed_host, {"customers": "customers"})
    sandbox.bc.webhooks.settings(
        delay_seconds=0.5, retry_seconds=tuple(m * 60 / SCALE for m in RETRY_MINUTES)
    )
    (subscription,) = sandbox.bc.webhooks.subscriptions()
    url = subscription["notificationUrl"]
    existing = sandbox.bc.records("customers")[0]

    await asyncio.to_thread(feed_host.host.stop)  # the workers exit, the port closes: connection refused
    down_at = time.monotonic()
    created = await writer.create(CUSTOMERS, {"displayName": "Made While The App Was Down"})
    current = await writer.get(CUSTOMERS.key(str(existing["id"])))
    updated = await writer.update(
        CUSTOMERS.key(str(existing["id"])), {"phoneNumber": "555-0199"}, etag=current.etag
    )
    await asyncio.to_thread(
        wait_until,
        lambda: sandbox.bc.webhooks.url_counters(url).no_answer >= 3,
        timeout=10,
        what="BC's retries",
    )
    await asyncio.to_thread(
        wait_until, lambda: time.monotonic() - down_at >= OUTAGE_SECONDS, timeout=15, what="the outage's end"
    )
    host = await asyncio.to_thread(host_again(feed_host).start)
    try:
        wanted = {str(created.values["id"]): "created", str(updated.values["id"]): "updated"}
        deadline = time.monotonic() + 2 * COLD
        while True:
            events = [
                e
                for e in await logged(feed_host, azurite_connection_string, "customers")
                if e.subject in wanted
            ]
            if {e.subject for e in events} == set(wanted) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
    finally:
        arrived = time.monotonic() - down_at
        await asyncio.to_thread(host.stop)

    assert {e.subject: e.bcchange.value for e in events} == wanted
    assert Counter(e.subject for e in events) == Counter(dict.fromkeys(wanted, 1))  # once each
    assert {e.bcorigin.value for e in events} == {"webhook"}
    counters = sandbox.bc.webhooks.url_counters(url)
    print(
        f"devhost down {OUTAGE_SECONDS:.0f} s: BC's POSTs {counters.posts}, unanswered {counters.no_answer}; "
        f"all arrived {arrived:.1f} s after it went down"
    )
    assert counters.no_answer >= 3  # the refused POSTs: retried,
    assert counters.rejected == 0  # never treated as a refusal (that deletes every subscription of the URL)
    assert counters.delivered >= 1
    assert [s["subscriptionId"] for s in sandbox.bc.webhooks.subscriptions()] == [
        subscription["subscriptionId"]
    ]
