"""BC's notification receiver through the real trigger: function_app.py on devhost, the queue on Azurite.

Only the receiver (and health) run, so the test reads `bc-notifications` before any expansion takes a message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

import function_app
from bcjobs.changes import NOTIFICATIONS_QUEUE
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from localworld.ports import free_port
from shared.settings import get_settings
from tests.integration.auth.conftest import ROOT, audit, auth_env  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration
COMPANY = "11111111-1111-1111-1111-111111111111"


@dataclass
class Receiver:
    base_url: str
    connection: str
    key: str
    queue: QueueClient

    def url(self, connection: str | None = None, key: str | None = None) -> str:
        return f"{self.base_url}/api/notifications/{connection or self.connection}/{key or self.key}"

    def ours(self) -> list[dict[str, Any]]:
        """The queued messages of this test's connection (received and deleted; none while no queue exists)."""
        found: list[dict[str, Any]] = []
        try:
            messages = list(self.queue.receive_messages(messages_per_page=32, visibility_timeout=60))
        except ResourceNotFoundError:
            return []
        for message in messages:
            body = json.loads(base64.b64decode(message.content))
            if body["connection"] == self.connection:
                found.append(body)
                self.queue.delete_message(message)
        return found


def _serve(env: dict[str, str]) -> DevHost:
    keys = {
        "DEVHOST_FUNCTION_KEY": secrets.token_urlsafe(16),
        "DEVHOST_MASTER_KEY": secrets.token_urlsafe(16),
    }
    get_settings.cache_clear()
    host = DevHost(
        function_app.app,
        {**env, **keys},
        host_config=load_host_config(ROOT / "host.json"),
        port=free_port(),
        shutdown_grace=10,
        functions=["changes_receiver", "health"],
    )
    host.start()
    return host


@pytest.fixture
def receiver(auth_env: dict[str, str], audit: object) -> Iterator[Receiver]:  # noqa: F811
    del audit
    host = _serve(auth_env)
    queue = QueueClient.from_connection_string(auth_env["JobsStorage"], NOTIFICATIONS_QUEUE)
    try:
        yield Receiver(host.base_url, f"r{uuid.uuid4().hex[:12]}", secrets.token_hex(16), queue)
    finally:
        queue.close()
        host.stop()
        get_settings.cache_clear()


@pytest.fixture
def storage_down(auth_env: dict[str, str], audit: object) -> Iterator[str]:  # noqa: F811
    """A receiver whose storage account answers nothing (a port no one listens on): its base URL."""
    del audit
    dead = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{free_port()}", auth_env["JobsStorage"])
    host = _serve({**auth_env, "JobsStorage": dead})
    try:
        yield host.base_url
    finally:
        host.stop()
        get_settings.cache_clear()


def _item(n: int, state: str = "f" * 32) -> dict[str, str]:
    return {
        "subscriptionId": uuid.uuid4().hex,
        "clientState": state,
        "expirationDateTime": "2026-01-08T08:00:00Z",
        "resource": f"api/v2.0/companies({COMPANY})/customers({uuid.UUID(int=n)})",
        "changeType": "updated",
        "lastModifiedDateTime": "2026-01-05T08:00:00Z",
    }


def test_a_cold_receiver_answers_bcs_handshake_with_the_token_within_bcs_5_seconds(
    receiver: Receiver,
) -> None:
    """The first request starts the HTTP worker (a cold start); GET and POST both get 200 text/plain + token."""
    token = "Tok en+/=?&é"
    started = time.monotonic()
    first = httpx.post(receiver.url(), params={"validationToken": token}, timeout=10)
    cold = time.monotonic() - started
    second = httpx.get(receiver.url(), params={"validationToken": token}, timeout=10)
    for answer in (first, second):
        assert answer.status_code == 200
        assert answer.text == token
        assert answer.headers["content-type"].startswith("text/plain")
    assert cold < 5.0
    assert receiver.ours() == []


def test_a_notification_is_queued_with_bcs_correlation_id_and_answered_202(receiver: Receiver) -> None:
    correlation = str(uuid.uuid4())
    answer = httpx.post(
        receiver.url(),
        json={"value": [_item(1), _item(2)]},
        headers={"x-ms-correlation-id": correlation, "clientRequestId": correlation},
        timeout=10,
    )
    assert answer.status_code == 202
    [message] = receiver.ours()
    assert (message["key"], message["correlationId"]) == (receiver.key, correlation)
    assert [item["resource"] for item in message["value"]] == [_item(1)["resource"], _item(2)["resource"]]


def _garbage(rng: random.Random, receiver: Receiver, n: int) -> tuple[str, str, bytes]:
    """One of the hostile requests: wrong state, unknown ids, garbage, huge bodies, impossible routes."""
    kind = n % 6
    body = json.dumps({"value": [_item(n, state=uuid.uuid4().hex)]}).encode()
    if kind == 0:
        return "POST", receiver.url(), body  # wrong clientState: queued, dropped by the expansion
    if kind == 1:
        return "POST", receiver.url(key=secrets.token_hex(16)), body  # wrong key
    if kind == 2:
        return (
            "POST",
            receiver.url(connection=f"x{uuid.uuid4().hex[:8]}"),
            rng.randbytes(rng.randint(0, 3000)),
        )
    if kind == 3:
        return "POST", receiver.url(), b'{"value": [' + b"1," * rng.randint(0, 500) + b"{}]}"
    if kind == 4:
        return "GET", receiver.url(connection="NOT_a.name", key="not-a-key"), b""
    return "POST", receiver.url(), b"{" * (5 * 1024 * 1024 if n % 60 == 5 else 20_000)  # absurd, then deep


async def _send_all(receiver: Receiver, count: int) -> list[int]:
    rng = random.Random(22)
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(n: int) -> int:
            method, url, body = _garbage(rng, receiver, n)
            async with gate:
                return (await client.request(method, url, content=body)).status_code

        return list(await asyncio.gather(*(one(n) for n in range(count))))


def test_a_thousand_hostile_requests_get_no_4xx_and_no_5xx(receiver: Receiver) -> None:
    statuses = asyncio.run(_send_all(receiver, 1000))
    assert {status for status in statuses if not 200 <= status < 300} == set()
    queued = receiver.ours()
    # Only BC-shaped bodies on a possible route are queued (the wrong-state ones, for the expansion to drop).
    assert all(message["connection"] == receiver.connection for message in queued)


def test_storage_trouble_is_a_503_and_the_handshake_still_answers(storage_down: str) -> None:
    """With storage unreachable a notification gets 503 (BC retries it), and the handshake, which touches no
    storage, still gets its token."""
    url = f"{storage_down}/api/notifications/contoso/{secrets.token_hex(16)}"
    handshake = httpx.post(url, params={"validationToken": "t"}, timeout=30)
    notification = httpx.post(url, json={"value": [_item(1)]}, timeout=60)
    assert (handshake.status_code, handshake.text) == (200, "t")
    assert notification.status_code == 503
    assert notification.headers["Retry-After"] == "60"
