"""Sandbox BC limits with httpx: the sliding window and in-flight/queue caps per identity, 429 only beyond them."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

import httpx
import jwt
import msal
import pytest

from sandbox import Sandbox
from tests.integration.sandbox.flows import delegated_tokens

pytestmark = pytest.mark.integration


def oid(token: str) -> str:
    """The identity BC counts a token against."""
    return str(jwt.decode(token, options={"verify_signature": False})["oid"])


async def test_window_allows_exactly_the_limit_then_429(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str, app_token: str
) -> None:
    """N requests in the window pass, the next gets 429 Application_TooManyRequests with Retry-After; later it passes."""
    sandbox.bc.limits(rate_limit=25, window_seconds=60)
    statuses = [(await bc.get(f"{company_url}/items", params={"$top": "1"})).status_code for _ in range(25)]
    assert statuses == [200] * 25
    refused = await bc.get(f"{company_url}/items", params={"$top": "1"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "Application_TooManyRequests"
    assert refused.json()["error"]["message"] == "Too many requests reached. Actual (26). Maximum (25)."
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    stats = sandbox.bc.stats()
    assert stats.peak_window_usage[oid(app_token)] == 25
    assert stats.count(429) == 1
    sandbox.clock.advance(60)
    assert (await bc.get(f"{company_url}/items", params={"$top": "1"})).status_code == 200


async def test_retry_after_on_429_can_be_switched_off(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """With the setting off, the 429 carries no Retry-After (clients must cope)."""
    sandbox.bc.limits(rate_limit=1, window_seconds=60, retry_after_on_429=False)
    assert (await bc.get(f"{company_url}/items", params={"$top": "1"})).status_code == 200
    refused = await bc.get(f"{company_url}/items", params={"$top": "1"})
    assert refused.status_code == 429
    assert "retry-after" not in refused.headers


async def test_in_flight_and_queue_caps(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str, app_token: str
) -> None:
    """5 run, 3 queue and succeed, the 9th and 10th concurrent requests get 429."""
    sandbox.bc.limits(max_in_flight=5, max_queue=3)
    sandbox.bc.latency(base_ms=400)
    responses = await asyncio.gather(
        *(bc.get(f"{company_url}/items", params={"$top": "1"}) for _ in range(10))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 8 + [429] * 2
    stats = sandbox.bc.stats()
    assert stats.peak_in_flight[oid(app_token)] == 5
    assert stats.peak_queued[oid(app_token)] == 3


async def test_queue_timeout_gives_503(sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str) -> None:
    """A request that waits in the queue longer than the (scaled) timeout gets 503 with Retry-After."""
    sandbox.bc.limits(max_in_flight=1, queue_timeout_seconds=0.1)
    sandbox.bc.latency(base_ms=400)
    first, second = await asyncio.gather(
        *(bc.get(f"{company_url}/items", params={"$top": "1"}) for _ in range(2))
    )
    assert sorted([first.status_code, second.status_code]) == [200, 503]
    assert "retry-after" in (first if first.status_code == 503 else second).headers


async def test_limits_are_per_identity(
    sandbox: Sandbox,
    bc: httpx.AsyncClient,
    company_url: str,
    msal_app: Callable[..., msal.ConfidentialClientApplication],
    ca_context: ssl.SSLContext,
) -> None:
    """When the app's window is full, the signed-in user (another oid) is still served."""
    sandbox.bc.limits(rate_limit=3, window_seconds=60)
    for _ in range(3):
        assert (await bc.get(f"{company_url}/items", params={"$top": "1"})).status_code == 200
    assert (await bc.get(f"{company_url}/items", params={"$top": "1"})).status_code == 429
    user = delegated_tokens(msal_app(), ca_context)["access_token"]
    async with httpx.AsyncClient(verify=ca_context, headers={"Authorization": f"Bearer {user}"}) as client:
        assert (await client.get(f"{company_url}/items", params={"$top": "1"})).status_code == 200
    assert sandbox.bc.stats().count(200, identity=oid(user)) == 1


async def test_default_limits_are_bcs(sandbox: Sandbox) -> None:
    """Out of the box: 6,000 per 300 s, 5 in flight, 95 queued, 8-minute queue timeout."""
    limits = sandbox.bc.current_limits()
    assert (limits.rate_limit, limits.window_seconds, limits.max_in_flight, limits.max_queue) == (
        6000,
        300,
        5,
        95,
    )
    assert limits.queue_timeout_seconds == 480
