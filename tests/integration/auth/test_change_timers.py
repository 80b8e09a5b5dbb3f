"""The subscription manager's timer as the Function app runs it: its real composition (job lanes, Key Vault,
Azurite tables) against the sandbox's BC webhooks; the notification key and clientState never leave Key Vault."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from azure.data.tables.aio import TableClient
from azure.storage.queue.aio import QueueClient

from bcjobs.changes import ChangeEvent
from sandbox import Sandbox
from sandbox.server import Listener, ServerThread, bind
from shared.auth import close_auth_services
from shared.bc.models import EntitySet
from shared.changes.compose import close_change_services
from shared.changes.directories import change_directories, close_change_directories
from shared.changes.log import TableChangeFeed, changes_table_name
from shared.changes.secrets import notify_secret_name
from shared.changes.subscriptions import SubscriptionRecord, SubscriptionUsage
from shared.changes.watch import Watch
from shared.connections.compose import close_registry_services
from shared.jobs import close_job_services, job_services
from shared.triggers import change_timers
from testkit.changes import change_event
from testkit.clock import ShiftedClock
from tests.integration.auth.conftest import Audit
from tests.integration.auth.test_timer_and_secrets import timer
from tests.integration.bc.test_change_feed_sandbox import NotificationRoute

pytestmark = pytest.mark.integration
OLD_ID = "c0a8e2b1-0000-0000-0000-000000000001"
YOUNG_ID = "c0a8e2b1-0000-0000-0000-000000000002"


@pytest.fixture
def route(sandbox: Sandbox) -> Iterator[tuple[NotificationRoute, str]]:
    """A stand-in for the receiver's route (handshake echo) on plain http://127.0.0.1."""
    receiver = NotificationRoute()
    sock = bind("127.0.0.1", 0)
    server = ServerThread([Listener("notifications", receiver.app(), sock, tls=False)], sandbox.tls)
    server.start()
    yield receiver, f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.stop()


@pytest.fixture
async def feed_app(
    auth_env: dict[str, str],
    route: tuple[NotificationRoute, str],
    monkeypatch: pytest.MonkeyPatch,
    audit: Audit,
    azurite_connection_string: str,
) -> AsyncIterator[dict[str, str]]:
    """The Function app's settings (client credentials, the route as notification base); services closed after."""
    from shared.settings import get_settings

    env = {**auth_env, "BC_AUTH_MODE": "client_credentials", "BC_NOTIFICATION_BASE_URL": route[1]}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        yield env
    finally:
        table = TableClient.from_connection_string(
            azurite_connection_string, f"{env['BC_TABLE_PREFIX']}subscriptions"
        )
        await audit.add_rows(table)
        await table.close()
        await close_change_directories()
        await close_change_services()
        await close_job_services()
        await close_registry_services()
        await close_auth_services()
        get_settings.cache_clear()


async def test_the_timer_subscribes_a_watch_with_a_key_only_key_vault_holds(
    feed_app: dict[str, str],
    route: tuple[NotificationRoute, str],
    sandbox: Sandbox,
    audit: Audit,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver, base = route
    connection = feed_app["BC_CONNECTION_NAME"]
    await (await change_directories()).watches.put(
        Watch(connection=connection, name="customers", entity_set="customers")
    )

    with caplog.at_level(logging.INFO):
        await change_timers.change_subscriptions(timer())
        await change_timers.change_subscriptions(timer())  # the second run keeps it

    stored = json.loads(sandbox.vault.peek(notify_secret_name(connection)) or "{}")
    audit.extra_secrets.update({stored["key"], stored["clientState"]})
    (subscription,) = sandbox.bc.webhooks.subscriptions()
    assert subscription["notificationUrl"] == f"{base}/api/notifications/{connection}/{stored['key']}"
    assert receiver.handshakes == [connection]
    runs = [r for r in caplog.records if getattr(r, "event", None) == "changes.subscriptions"]
    assert [(vars(r)["subs_created"], vars(r)["subs_kept"], vars(r)["ours"]) for r in runs] == [
        (1, 0, 1),
        (0, 1, 1),
    ]


async def settled_log(env: dict[str, str], connection_string: str, connection: str) -> list[ChangeEvent]:
    """The change log as a reader a minute from now sees it (past the log's settle time)."""
    async with (
        TableClient.from_connection_string(
            connection_string, changes_table_name(env["BC_TABLE_PREFIX"])
        ) as table,
        QueueClient.from_connection_string(connection_string, "unused") as queue,
    ):
        reader = TableChangeFeed(table, queue, ShiftedClock(timedelta(minutes=1)))
        return list((await reader.read(connection, "customers", None, 1000)).changes)


async def test_the_reconcile_timer_publishes_a_change_bc_never_notified_into_the_change_log(
    feed_app: dict[str, str],
    sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
    azurite_connection_string: str,
) -> None:
    connection = feed_app["BC_CONNECTION_NAME"]
    watch = Watch(connection=connection, name="customers", entity_set="customers", include_data=True)
    await (await change_directories()).watches.put(watch)
    await change_timers.change_subscriptions(timer())
    await change_timers.change_reconcile(timer())  # the baseline

    sandbox.bc.webhooks.lose_next(1)
    sandbox.clock.advance(5)
    client = (await (await job_services()).lanes.lane(connection)).runner.client  # type: ignore[union-attr]
    lost = await client.create(EntitySet("customers"), {"displayName": "Healed By The Timer"})
    with caplog.at_level(logging.INFO):
        await change_timers.change_reconcile(timer())

    logged = await settled_log(feed_app, azurite_connection_string, connection)
    event = next(e for e in logged if e.subject == str(lost.id))
    assert event.bcorigin.value == "reconciliation"
    assert event.data is not None
    assert event.data["entity"]["displayName"] == "Healed By The Timer"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_refused_handshake_is_an_alert_whose_text_holds_no_key(
    feed_app: dict[str, str],
    route: tuple[NotificationRoute, str],
    sandbox: Sandbox,
    audit: Audit,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver, _ = route
    receiver.echo = False
    connection = feed_app["BC_CONNECTION_NAME"]
    await (await change_directories()).watches.put(
        Watch(connection=connection, name="customers", entity_set="customers")
    )

    with caplog.at_level(logging.INFO):
        await change_timers.change_subscriptions(timer())

    stored = json.loads(sandbox.vault.peek(notify_secret_name(connection)) or "{}")
    audit.extra_secrets.update({stored["key"], stored["clientState"]})  # checked in every record at teardown
    assert sandbox.bc.webhooks.subscriptions() == []
    events = [vars(r).get("event") for r in caplog.records if r.levelno >= logging.WARNING]
    assert "changes.subscription_failed" in events
    assert "changes.watch_unsubscribed" in events
    failure = next(r for r in caplog.records if vars(r).get("event") == "changes.subscription_failed")
    assert "status=400" in failure.getMessage()  # BC refused it after the failed handshake
    assert stored["key"] not in failure.getMessage()


async def test_the_retention_timer_deletes_what_is_older_than_the_retention(
    feed_app: dict[str, str], caplog: pytest.LogCaptureFixture, azurite_connection_string: str
) -> None:
    connection = feed_app["BC_CONNECTION_NAME"]
    async with (
        TableClient.from_connection_string(
            azurite_connection_string, changes_table_name(feed_app["BC_TABLE_PREFIX"])
        ) as table,
        QueueClient.from_connection_string(
            azurite_connection_string, feed_app["BC_TABLE_PREFIX"].lower() + "-retention"
        ) as queue,  # its own: the events are not what this test reads
    ):
        old = TableChangeFeed(table, queue, ShiftedClock(-timedelta(days=8)))
        await old.ensure()
        await old.publish([change_event(OLD_ID, connection=connection)])
        young = TableChangeFeed(table, queue, ShiftedClock(-timedelta(days=1)))
        await young.publish([change_event(YOUNG_ID, connection=connection)])
        await queue.delete_queue()

    with caplog.at_level(logging.INFO):
        await change_timers.change_retention(timer())

    runs = {
        vars(r)["table"]: vars(r) for r in caplog.records if getattr(r, "event", None) == "changes.retention"
    }
    assert (runs["changes"]["deleted"], runs["changes"]["failed"], runs["echoes"]["failed"]) == (2, 0, 0)
    assert [e.subject for e in await settled_log(feed_app, azurite_connection_string, connection)] == [
        YOUNG_ID
    ]


async def test_the_subscriptions_of_a_deleted_connection_are_dropped_once_bc_let_them_lapse(
    feed_app: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    store = (await change_directories()).subscriptions
    lapsed = datetime.now(UTC) - timedelta(minutes=1)
    await store.put(
        SubscriptionRecord("gone", "0" * 32, "customers", uuid4(), "customers", "/x", lapsed, None, lapsed)
    )
    await store.note_usage(SubscriptionUsage("gone", 1, 9, 200, lapsed))

    with caplog.at_level(logging.INFO):
        await change_timers.change_subscriptions(timer())

    (run,) = [r for r in caplog.records if getattr(r, "event", None) == "changes.subscriptions_lapsing"]
    assert (vars(run)["connection"], vars(run)["dropped"], vars(run)["left"]) == ("gone", 1, 0)
    rows, usages = await store.everything()
    assert [r.connection for r in rows] == []
    assert "gone" not in [u.connection for u in usages]  # the status page forgets the connection
