"""The change feed end to end on devhost: the subscription timer (run here, as the host would) makes BC subscribe
to the product's own receiver route — the handshake answered by function_app.py on devhost — and a customer
created in BC then arrives in the change log through the receiver and the expansion, origin webhook."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from azure.data.tables.aio import TableClient
from azure.storage.queue.aio import QueueClient

import function_app
from bcjobs.changes import ChangeEvent
from bcjobs.connections import ConnectionsClient
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from localworld.ports import free_port
from sandbox import Sandbox
from shared.auth import close_auth_services
from shared.bc.models import EntitySet
from shared.changes.compose import close_change_services
from shared.changes.directories import close_change_directories
from shared.changes.log import TableChangeFeed, changes_table_name
from shared.connections.compose import close_registry_services
from shared.jobs import close_job_services, job_services
from shared.settings import get_settings
from shared.triggers import change_timers
from testkit.clock import ShiftedClock
from tests.integration.auth.conftest import ROOT, Audit
from tests.integration.auth.test_timer_and_secrets import timer

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class FeedHost:
    base_url: str
    function_key: str
    env: dict[str, str]
    host: DevHost  # stopped and replaced by a test taking the app down (test_acceptance_devhost)


@pytest.fixture
async def feed_host(
    auth_env: dict[str, str], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, audit: Audit
) -> AsyncIterator[FeedHost]:
    """function_app.py on devhost, client credentials, BC told to notify devhost itself; BC's debounce short."""
    del audit
    sandbox.bc.webhooks.settings(delay_seconds=0.2, retry_seconds=(0.2,) * 6)
    port, key = free_port(), secrets.token_urlsafe(16)
    env = {
        **auth_env,
        "BC_AUTH_MODE": "client_credentials",
        "BC_NOTIFICATION_BASE_URL": f"http://127.0.0.1:{port}",
        "DEVHOST_FUNCTION_KEY": key,
        "DEVHOST_MASTER_KEY": secrets.token_urlsafe(16),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    host = DevHost(
        function_app.app, env, host_config=load_host_config(ROOT / "host.json"), port=port, shutdown_grace=10
    )
    host.start()
    try:
        yield FeedHost(host.base_url, key, env, host)
    finally:
        for close in (close_change_directories, close_change_services, close_job_services, close_registry_services,
                      close_auth_services):  # fmt: skip
            await close()
        host.stop()
        get_settings.cache_clear()


async def logged(env: dict[str, str], connection_string: str, connection: str) -> list[ChangeEvent]:
    """The change log as a reader a minute from now sees it (past the log's settle time)."""
    async with (
        TableClient.from_connection_string(
            connection_string, changes_table_name(env["BC_TABLE_PREFIX"])
        ) as table,
        QueueClient.from_connection_string(connection_string, "unused") as queue,
    ):
        reader = TableChangeFeed(table, queue, ShiftedClock(timedelta(minutes=1)))
        return list((await reader.read(connection, "customers", None, 1000)).changes)


async def test_bc_subscribes_to_the_products_receiver_and_a_change_arrives_as_an_event(
    feed_host: FeedHost, sandbox: Sandbox, azurite_connection_string: str
) -> None:
    connection = feed_host.env["BC_CONNECTION_NAME"]
    with ConnectionsClient(feed_host.base_url, feed_host.function_key) as admin:
        admin.put_watch(connection, "customers", {"entitySet": "customers", "includeData": True})

    await change_timers.change_subscriptions(timer())
    (subscription,) = sandbox.bc.webhooks.subscriptions()
    assert subscription["notificationUrl"].startswith(f"{feed_host.base_url}/api/notifications/{connection}/")

    lanes = (await job_services()).lanes
    assert lanes is not None
    client = (await lanes.lane(connection)).runner.client
    created = await client.create(EntitySet("customers"), {"displayName": "Rang The Doorbell"})

    deadline = time.monotonic() + 60
    found: list[ChangeEvent] = []
    while not found:
        assert time.monotonic() < deadline, "no event for the customer in time"
        await asyncio.sleep(0.25)
        found = [e for e in await logged(feed_host.env, azurite_connection_string, connection)
                 if e.subject == str(created.id)]  # fmt: skip
    (event,) = found
    assert event.bcorigin.value == "webhook"
    assert event.data is not None
    assert event.data["entity"]["displayName"] == "Rang The Doorbell"
