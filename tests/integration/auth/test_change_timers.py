"""The subscription manager's timer as the Function app runs it: its real composition (job lanes, Key Vault,
Azurite tables) against the sandbox's BC webhooks; the notification key and clientState never leave Key Vault."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from azure.data.tables.aio import TableClient

from sandbox import Sandbox
from sandbox.server import Listener, ServerThread, bind
from shared.auth import close_auth_services
from shared.changes.directories import change_directories, close_change_directories
from shared.changes.secrets import notify_secret_name
from shared.changes.watch import Watch
from shared.connections.compose import close_registry_services
from shared.jobs import close_job_services
from shared.triggers import change_timers
from tests.integration.auth.conftest import Audit
from tests.integration.auth.test_timer_and_secrets import timer
from tests.integration.bc.test_change_feed_sandbox import NotificationRoute

pytestmark = pytest.mark.integration


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
