"""Sandbox BC webhooks over httpx with real tokens, against a tiny local receiver: subscriptions and the handshake,
notifications after the debounce, collection, batching per URL, BC's delivery outcome rules and the knobs."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from localworld.polling import wait_until
from sandbox import Sandbox
from sandbox.server import Listener, ServerThread, bind

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Received:
    """One notification POST as the receiver saw it."""

    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def items(self) -> list[dict[str, Any]]:
        return list(self.body["value"])


class Receiver:
    """A notification URL: echoes validation tokens (unless told not to) and answers notifications with the
    statuses queued in `answers` (then `default`)."""

    def __init__(self) -> None:
        self.handshakes: list[str] = []
        self.notifications: list[Received] = []
        self.answers: deque[int] = deque()
        self.default = 202
        self.echo_token = True
        self.delay_seconds = 0.0
        self.handshake_delay_seconds = 0.0
        self.handshake_queries: list[str] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.endpoint, methods=["GET", "POST"])])

    async def endpoint(self, request: Request) -> Response:
        token = request.query_params.get("validationToken")
        if token is not None:
            self.handshakes.append(request.method)
            self.handshake_queries.append(request.url.query)
            if self.handshake_delay_seconds:
                await asyncio.sleep(self.handshake_delay_seconds)
            return PlainTextResponse(token if self.echo_token else "not the token")
        body = await request.body()
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        self.notifications.append(Received(dict(request.headers), json.loads(body)))
        return Response(status_code=self.answers.popleft() if self.answers else self.default)


@pytest.fixture
def serve(sandbox: Sandbox) -> Iterator[Callable[[], tuple[Receiver, str]]]:
    """Start receivers on plain http://127.0.0.1 (as the devhost serves); BC's debounce and retries made short."""
    sandbox.bc.webhooks.settings(delay_seconds=0.2, retry_seconds=(0.2,) * 6)
    servers: list[ServerThread] = []

    def start() -> tuple[Receiver, str]:
        receiver = Receiver()
        sock = bind("127.0.0.1", 0)
        server = ServerThread([Listener("receiver", receiver.app(), sock, tls=False)], sandbox.tls)
        server.start()
        servers.append(server)
        return receiver, f"http://127.0.0.1:{sock.getsockname()[1]}/bc/webhook"

    yield start
    for server in servers:
        server.stop()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll the sandbox's sender thread with a deadline (the local world's one polling helper)."""
    wait_until(condition, timeout=timeout, what="the sandbox's webhook sender", interval=0.02)


async def subscribe(bc: httpx.AsyncClient, api_root: str, company_url: str, url: str, entity_set: str) -> Any:
    resource = "/api/v2.0/" + company_url.split("/api/v2.0/", 1)[1] + f"/{entity_set}"
    response = await bc.post(
        f"{api_root}/subscriptions",
        json={"notificationUrl": url, "resource": resource, "clientState": "s3cret-state"},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_subscription_is_created_after_the_handshake_and_listed_with_its_etag(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    created = await subscribe(bc, api_root, company_url, url, "customers")
    assert receiver.handshakes == ["POST"]
    assert created["notificationUrl"] == url
    assert created["clientState"] == "s3cret-state"
    listed = (await bc.get(f"{api_root}/subscriptions")).json()["value"]
    assert [s["subscriptionId"] for s in listed] == [created["subscriptionId"]]
    assert listed[0]["@odata.etag"] == created["@odata.etag"]
    one = await bc.get(f"{api_root}/subscriptions('{created['subscriptionId']}')")
    assert one.status_code == 200
    assert one.headers["ETag"] == created["@odata.etag"]
    expires = datetime.fromisoformat(created["expirationDateTime"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - sandbox.clock.now() - 3 * 24 * 3600) < 60


async def test_a_failed_handshake_creates_no_subscription(
    bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    receiver.echo_token = False
    resource = "/api/v2.0/" + company_url.split("/api/v2.0/", 1)[1] + "/customers"
    response = await bc.post(f"{api_root}/subscriptions", json={"notificationUrl": url, "resource": resource})
    assert response.status_code == 400
    assert "validationToken" in response.json()["error"]["message"]
    assert (await bc.get(f"{api_root}/subscriptions")).json()["value"] == []


async def test_renew_and_delete_need_the_quoted_id_and_if_match(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    created = await subscribe(bc, api_root, company_url, url, "customers")
    sid, etag = created["subscriptionId"], created["@odata.etag"]
    assert (
        await bc.delete(f"{api_root}/subscriptions({sid})", headers={"If-Match": etag})
    ).status_code == 400
    assert (await bc.delete(f"{api_root}/subscriptions('{sid}')")).status_code == 400
    body = {"notificationUrl": url, "resource": created["resource"], "clientState": "s3cret-state"}
    no_body = await bc.patch(f"{api_root}/subscriptions('{sid}')", headers={"If-Match": etag})
    assert no_body.status_code == 400
    sandbox.clock.advance(1800)  # within the token's lifetime
    renewed = await bc.patch(f"{api_root}/subscriptions('{sid}')", json=body, headers={"If-Match": etag})
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["expirationDateTime"] > created["expirationDateTime"]
    assert len(receiver.handshakes) == 2
    stale = await bc.delete(f"{api_root}/subscriptions('{sid}')", headers={"If-Match": etag})
    assert stale.status_code == 409
    gone = await bc.delete(
        f"{api_root}/subscriptions('{sid}')", headers={"If-Match": renewed.json()["@odata.etag"]}
    )
    assert gone.status_code == 204
    assert (await bc.get(f"{api_root}/subscriptions")).json()["value"] == []


async def test_create_update_delete_arrive_in_one_post_after_the_debounce(
    bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    created = await subscribe(bc, api_root, company_url, url, "customers")
    customer = (await bc.post(f"{company_url}/customers", json={"displayName": "Webhook Ltd"})).json()
    for name in ("Webhook Ltd 2", "Webhook Ltd 3"):
        current = (await bc.get(f"{company_url}/customers({customer['id']})")).json()
        patched = await bc.patch(
            f"{company_url}/customers({customer['id']})",
            json={"displayName": name},
            headers={"If-Match": current["@odata.etag"]},
        )
        assert patched.status_code == 200
    current = (await bc.get(f"{company_url}/customers({customer['id']})")).json()
    await bc.delete(
        f"{company_url}/customers({customer['id']})", headers={"If-Match": current["@odata.etag"]}
    )
    wait_for(lambda: len(receiver.notifications) == 1)
    received = receiver.notifications[0]
    assert [item["changeType"] for item in received.items] == ["created", "updated", "deleted"]
    item = received.items[0]
    assert item["subscriptionId"] == created["subscriptionId"]
    assert item["clientState"] == "s3cret-state"
    assert item["resource"] == f"{created['resource']}({customer['id']})"
    assert set(item) == {
        "subscriptionId",
        "clientState",
        "expirationDateTime",
        "resource",
        "changeType",
        "lastModifiedDateTime",
    }
    assert received.headers["clientrequestid"] == received.headers["x-ms-correlation-id"]
    assert received.headers["content-type"] == "application/json"


async def test_a_line_change_notifies_its_order(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    await subscribe(bc, api_root, company_url, url, "salesOrders")
    order = (await bc.get(f"{company_url}/salesOrders?$top=1&$expand=salesOrderLines")).json()["value"][0]
    line = order["salesOrderLines"][0]
    patched = await bc.patch(
        f"{company_url}/salesOrders({order['id']})/salesOrderLines({line['id']})",
        json={"quantity": 7},
        headers={"If-Match": line["@odata.etag"]},
    )
    assert patched.status_code == 200, patched.text
    wait_for(lambda: len(receiver.notifications) == 1)
    items = receiver.notifications[0].items
    assert [(i["changeType"], i["resource"].rsplit("/", 1)[1]) for i in items] == [
        ("updated", f"salesOrders({order['id']})")
    ]


async def test_more_changes_than_the_threshold_become_one_collection(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    sandbox.bc.webhooks.settings(max_notifications=3, delay_seconds=1.0)
    receiver, url = serve()
    created = await subscribe(bc, api_root, company_url, url, "customers")
    for n in range(5):
        assert (
            await bc.post(f"{company_url}/customers", json={"displayName": f"Bulk {n}"})
        ).status_code == 201
    wait_for(lambda: len(receiver.notifications) == 1)
    [item] = receiver.notifications[0].items
    assert item["changeType"] == "collection"
    assert item["resource"].startswith(f"{created['resource']}?$filter=lastModifiedDateTime%20gt%20")


async def test_one_post_per_url_carries_every_subscription(
    bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    customers = await subscribe(bc, api_root, company_url, url, "customers")
    items = await subscribe(bc, api_root, company_url, url, "items")
    await bc.post(f"{company_url}/customers", json={"displayName": "Both 1"})
    await bc.post(f"{company_url}/items", json={"displayName": "Both 2"})
    wait_for(lambda: len(receiver.notifications) == 1)
    ids = {item["subscriptionId"] for item in receiver.notifications[0].items}
    assert ids == {customers["subscriptionId"], items["subscriptionId"]}


async def test_retryable_answers_are_retried_until_delivered(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    receiver.answers.extend([503, 429, 408])
    await subscribe(bc, api_root, company_url, url, "customers")
    await bc.post(f"{company_url}/customers", json={"displayName": "Retry me"})
    wait_for(lambda: len(receiver.notifications) == 4)
    # The receiver keeps a notification before it answers; the sender counts the delivery once the 200 is back.
    wait_for(lambda: sandbox.bc.webhooks.url_counters(url).delivered >= 1)
    assert all(r.items == receiver.notifications[0].items for r in receiver.notifications)
    counters = sandbox.bc.webhooks.url_counters(url)
    assert (counters.retried, counters.delivered) == (3, 1)
    assert len(sandbox.bc.webhooks.subscriptions()) == 1


async def test_a_subscription_is_deleted_after_the_sixth_failed_post(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    receiver.default = 500
    await subscribe(bc, api_root, company_url, url, "customers")
    await bc.post(f"{company_url}/customers", json={"displayName": "Never delivered"})
    wait_for(lambda: sandbox.bc.webhooks.subscriptions() == [])
    assert len(receiver.notifications) == 6
    assert sandbox.bc.webhooks.stats()["deleted"] == {"failures": 1}


async def test_any_other_status_deletes_every_subscription_of_that_url(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    bad, bad_url = serve()
    good, good_url = serve()
    bad.default = 404
    await subscribe(bc, api_root, company_url, bad_url, "customers")
    await subscribe(bc, api_root, company_url, bad_url, "items")
    kept = await subscribe(bc, api_root, company_url, good_url, "customers")
    await bc.post(f"{company_url}/customers", json={"displayName": "Blast radius"})
    wait_for(lambda: len(bad.notifications) == 1 and len(good.notifications) == 1)
    wait_for(lambda: len(sandbox.bc.webhooks.subscriptions()) == 1)
    assert sandbox.bc.webhooks.subscriptions()[0]["subscriptionId"] == kept["subscriptionId"]


async def test_no_answer_is_retried(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    sandbox.bc.webhooks.settings(send_timeout_seconds=0.3)
    receiver, url = serve()
    receiver.delay_seconds = 1.0
    await subscribe(bc, api_root, company_url, url, "customers")
    await bc.post(f"{company_url}/customers", json={"displayName": "Slow"})
    wait_for(lambda: sandbox.bc.webhooks.url_counters(url).no_answer >= 1)
    receiver.delay_seconds = 0.0
    wait_for(lambda: sandbox.bc.webhooks.url_counters(url).delivered == 1)


async def test_a_slow_receiver_does_not_hold_bc_requests(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    receiver.delay_seconds = 3.0
    await subscribe(bc, api_root, company_url, url, "customers")
    await bc.post(f"{company_url}/customers", json={"displayName": "Slow"})
    wait_for(lambda: _sending(sandbox, url))
    started = time.monotonic()
    assert (await bc.get(f"{company_url}/customers?$top=1")).status_code == 200
    assert time.monotonic() - started < 1.0


def _sending(sandbox: Sandbox, url: str) -> bool:
    # The POST is in flight when the items were taken from the subscription but no outcome is counted yet.
    listed = sandbox.bc.webhooks.subscriptions()
    return (
        bool(listed) and listed[0]["pendingItems"] == 0 and sandbox.bc.webhooks.url_counters(url).posts == 0
    )


async def test_knobs_lose_notifications_copy_the_environment_and_expire(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    created = await subscribe(bc, api_root, company_url, url, "customers")
    sandbox.bc.webhooks.lose_next(1)
    await bc.post(f"{company_url}/customers", json={"displayName": "Lost"})
    await bc.post(f"{company_url}/customers", json={"displayName": "Seen"})
    wait_for(lambda: len(receiver.notifications) == 1)
    assert len(receiver.notifications[0].items) == 1
    assert sandbox.bc.webhooks.stats()["lost"] == 1
    sandbox.bc.webhooks.expire(created["subscriptionId"])
    assert (await bc.get(f"{api_root}/subscriptions")).json()["value"] == []
    await subscribe(bc, api_root, company_url, url, "customers")
    assert sandbox.bc.webhooks.copy_environment(sandbox.tenant_id, "production") == 1
    assert (await bc.get(f"{api_root}/subscriptions")).json()["value"] == []


async def test_the_environment_holds_at_most_the_limit(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    sandbox.bc.webhooks.settings(max_subscriptions=2)
    _receiver, url = serve()
    await subscribe(bc, api_root, company_url, url, "customers")
    await subscribe(bc, api_root, company_url, url, "items")
    resource = "/api/v2.0/" + company_url.split("/api/v2.0/", 1)[1] + "/vendors"
    third = await bc.post(f"{api_root}/subscriptions", json={"notificationUrl": url, "resource": resource})
    assert third.status_code == 400
    assert "maximum number of subscriptions" in third.json()["error"]["message"]


async def test_a_custom_api_page_can_be_subscribed_through_its_own_route(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, serve: Any
) -> None:
    _receiver, url = serve()
    custom_root = api_root.replace("/api/v2.0", "/api/contoso/app/v1.0")
    resource = f"/api/contoso/app/v1.0/companies({sandbox.bc.company_id})/items"
    response = await bc.post(
        f"{custom_root}/subscriptions", json={"notificationUrl": url, "resource": resource}
    )
    assert response.status_code == 201, response.text
    mismatched = await bc.post(
        f"{api_root}/subscriptions", json={"notificationUrl": url, "resource": resource}
    )
    assert mismatched.status_code == 400


async def test_admin_endpoints_drive_the_webhook_knobs(
    sandbox: Sandbox, ca_context: Any, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    _receiver, url = serve()
    await subscribe(bc, api_root, company_url, url, "customers")
    admin = sandbox.env["SANDBOX_ADMIN_URL"]
    async with httpx.AsyncClient(verify=ca_context) as client:
        settings = await client.post(f"{admin}/bc/webhooks/settings", json={"delay_seconds": 0.1})
        assert settings.json()["delay_seconds"] == 0.1
        listed = (await client.post(f"{admin}/bc/webhooks/subscriptions", json={})).json()["value"]
        assert len(listed) == 1
        assert listed[0]["environment"] == "production"
        copied = await client.post(
            f"{admin}/bc/webhooks/copy-environment",
            json={"tenant_id": sandbox.tenant_id, "environment": "production"},
        )
        assert copied.json() == {"removed": 1}
        stats = (await client.get(f"{admin}/bc/webhooks/stats")).json()
        assert stats["deleted"] == {"copied": 1}


async def test_a_rolled_back_snapshot_batch_notifies_no_one(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    await subscribe(bc, api_root, company_url, url, "customers")
    company = sandbox.env["BC_COMPANY_ID"]

    def create(name: str) -> dict[str, Any]:
        return {"method": "POST", "url": f"companies({company})/customers", "body": {"displayName": name}}

    isolation = {"Isolation": "snapshot"}
    failed = {"requests": [create("Rolled back"), create("x" * 200)]}
    assert (await bc.post(f"{api_root}/$batch", json=failed, headers=isolation)).status_code == 200
    committed = {"requests": [create("Committed 1"), create("Committed 2")]}
    assert (await bc.post(f"{api_root}/$batch", json=committed, headers=isolation)).status_code == 200
    wait_for(lambda: len(receiver.notifications) == 1)
    assert [item["changeType"] for item in receiver.notifications[0].items] == ["created", "created"]


async def test_over_a_thousand_creates_in_one_window_arrive_as_one_collection(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    sandbox.bc.webhooks.settings(delay_seconds=3.0)
    receiver, url = serve()
    created = await subscribe(bc, api_root, company_url, url, "customers")
    company = sandbox.env["BC_COMPANY_ID"]
    for batch in range(11):
        operations = [
            {
                "method": "POST",
                "url": f"companies({company})/customers",
                "body": {"displayName": f"Bulk {batch}-{n}"},
            }
            for n in range(100)
        ]
        assert (await bc.post(f"{api_root}/$batch", json={"requests": operations})).status_code == 200
    assert receiver.notifications == [], "the debounce window closed before the writes ended"
    wait_for(lambda: len(receiver.notifications) == 1)
    [item] = receiver.notifications[0].items
    assert item["subscriptionId"] == created["subscriptionId"]
    assert item["changeType"] == "collection"
    first_created = min(
        c["lastModifiedDateTime"]
        for c in sandbox.bc.records("customers")
        if c["displayName"].startswith("Bulk")
    )
    since = item["resource"].rsplit("%20gt%20", 1)[1]
    assert since < first_created


async def test_a_handshake_slower_than_the_timeout_creates_nothing(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    sandbox.bc.webhooks.settings(handshake_timeout_seconds=0.3)
    receiver, url = serve()
    receiver.handshake_delay_seconds = 1.0
    resource = "/api/v2.0/" + company_url.split("/api/v2.0/", 1)[1] + "/customers"
    response = await bc.post(f"{api_root}/subscriptions", json={"notificationUrl": url, "resource": resource})
    assert response.status_code == 400
    assert sandbox.bc.webhooks.stats()["handshakes"] == {"failed": 1}


async def test_the_validation_token_joins_an_existing_query_string(
    bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    await subscribe(bc, api_root, company_url, f"{url}?code=abc", "customers")
    [query] = receiver.handshake_queries
    assert query.startswith("code=abc&validationToken=")


async def test_subscriptions_belong_to_their_environment(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str, company_url: str, serve: Any
) -> None:
    receiver, url = serve()
    other = sandbox.bc.environment(sandbox.tenant_id, "sandbox")
    other_root = api_root.replace("/production/", "/sandbox/")
    resource = f"/api/v2.0/companies({other.company_id})/customers"
    created = await bc.post(
        f"{other_root}/subscriptions", json={"notificationUrl": url, "resource": resource}
    )
    assert created.status_code == 201, created.text
    assert (await bc.get(f"{api_root}/subscriptions")).json()["value"] == []
    wrong_company = await bc.post(
        f"{api_root}/subscriptions", json={"notificationUrl": url, "resource": resource}
    )
    assert wrong_company.status_code == 404
    await bc.post(f"{company_url}/customers", json={"displayName": "Production only"})
    await bc.post(
        f"{other_root}/companies({other.company_id})/customers", json={"displayName": "Sandbox env"}
    )
    wait_for(lambda: len(receiver.notifications) == 1)
    [item] = receiver.notifications[0].items
    assert item["resource"].startswith(resource)
    assert sandbox.bc.webhooks.stats()["subscriptions"][f"{sandbox.tenant_id}/sandbox"] == 1
