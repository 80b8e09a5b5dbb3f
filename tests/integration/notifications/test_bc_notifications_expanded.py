"""BC's own notifications, end to end up to the events: the sandbox's sender (codeunit 6154's behaviour) posts to
the receiver on devhost, the message lands on Azurite's `bc-notifications`, and the expansion reads the sandbox
through a low-priority client. Secrets and watches are in memory (subs' stores are not wired yet)."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from sandbox import Sandbox
from shared.bc import SharedThrottle, build_client
from shared.bc.models import STANDARD_API, EntitySet
from shared.bc.throttle import LowPriority
from shared.changes.expansion import Expansion
from shared.changes.feed import MemoryChangeFeed
from shared.changes.notifications import NotificationMessage
from shared.changes.watch import Watch
from shared.connections.connection import connection_from_settings
from shared.settings import Settings
from testkit.sandbox_tokens import SandboxTokenProvider
from tests.fakes.notifications import MemorySecrets, MemoryWatches, OneFeedLane, Secret
from tests.integration.auth.conftest import audit, auth_env  # noqa: F401 - fixtures
from tests.integration.bc.conftest import bc_settings, coordination, throttle, tokens  # noqa: F401 - fixtures
from tests.integration.notifications.test_receiver_over_devhost import Receiver, receiver  # noqa: F401

pytestmark = pytest.mark.integration
CUSTOMERS = EntitySet("customers")


async def _queued(receiver: Receiver, within: float = 30.0) -> list[NotificationMessage]:  # noqa: F811
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        found = await asyncio.to_thread(receiver.ours)
        if found:
            return [NotificationMessage.model_validate(body) for body in found]
        await asyncio.sleep(0.2)
    raise TimeoutError("no notification reached bc-notifications")


async def test_a_customer_created_updated_and_deleted_in_bc_becomes_its_events(
    receiver: Receiver,  # noqa: F811
    sandbox: Sandbox,
    bc_settings: Settings,  # noqa: F811
    tokens: SandboxTokenProvider,  # noqa: F811
    throttle: SharedThrottle,  # noqa: F811
) -> None:
    sandbox.bc.webhooks.settings(delay_seconds=0.5)
    client = build_client(bc_settings, tokens, LowPriority(throttle))
    state = secrets.token_hex(16)
    connection = connection_from_settings(bc_settings).model_copy(update={"name": receiver.connection})
    watch = Watch(connection=receiver.connection, name="customers", entity_set="customers")
    feed = MemoryChangeFeed()
    expansion = Expansion(
        MemorySecrets({receiver.connection: Secret(receiver.key, state)}),
        MemoryWatches({receiver.connection: [watch]}),
        OneFeedLane(connection, client),
        feed,
    )
    try:
        company = await client.company_id()
        resource = f"/api/v2.0/companies({company})/customers"
        body = {"notificationUrl": receiver.url(), "resource": resource, "clientState": state}
        await client.create_subscription(STANDARD_API, body)  # the sandbox's handshake hits the receiver
        created = await client.create(CUSTOMERS, {"displayName": "Feed test"})
        assert created.id is not None
        updated = await client.update(
            CUSTOMERS.key(created.id), {"displayName": "Feed test 2"}, etag=created.etag
        )
        for message in await _queued(receiver):
            await expansion.expand(message)
        await client.delete(CUSTOMERS.key(created.id))
        for message in await _queued(receiver):
            await expansion.expand(message)
    finally:
        await client.aclose()
    kinds = [(event.subject, event.bcchange.value, event.bcetag) for event in feed.sent]
    assert kinds == [(str(created.id), "created", updated.etag), (str(created.id), "deleted", None)]
    assert all(event.bcconnection == receiver.connection for event in feed.sent)
