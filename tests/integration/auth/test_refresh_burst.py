"""A burst of POST /api/auth/refresh against function_app.py on devhost: refreshes coalesce (issue 10, point 4)."""

from __future__ import annotations

import asyncio
import json
import ssl
import time

import httpx
import pytest

from sandbox import Sandbox
from shared.auth.keyvault import secret_name
from shared.auth.timing import REFRESH_MIN_AGE
from shared.settings import Settings
from tests.integration.auth.conftest import AppHost, Audit, sign_in_over_http

pytestmark = pytest.mark.integration

BURST = 200
CONCURRENCY = 20


async def _burst(app: AppHost) -> list[int]:
    """BURST refreshes, CONCURRENCY at a time; the status codes."""
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.headers(), timeout=60) as client:

        async def one() -> int:
            async with gate:
                return (await client.post("/api/auth/refresh")).status_code

        return await asyncio.gather(*(one() for _ in range(BURST)))


async def test_two_hundred_refreshes_twenty_at_a_time_cost_one_entra_call_and_one_write(
    app_host: AppHost, sandbox: Sandbox, sandbox_tls: ssl.SSLContext, settings: Settings, audit: Audit
) -> None:
    """200 POST /api/auth/refresh, 20 concurrent: one refresh per 30 s window, not 200 (Entra calls, KV writes)."""
    sign_in_over_http(app_host, sandbox_tls, audit)
    calls, writes = sandbox.entra.token_calls["refresh_token"], sandbox.vault.writes
    started = time.monotonic()

    statuses = await _burst(app_host)

    elapsed = time.monotonic() - started
    windows = 1 + int(elapsed // REFRESH_MIN_AGE.total_seconds())  # 1 unless the burst took over 30 s
    assert statuses == [200] * BURST
    assert sandbox.entra.token_calls["refresh_token"] - calls <= windows
    assert sandbox.vault.writes - writes <= windows
    versions = sandbox.vault.secrets[secret_name(settings.auth.connection_name)].versions
    assert len(versions) <= 1 + windows  # the sign-in's version and the burst's refresh(es)
    stored = json.loads(versions[-1].value)
    assert stored["grant_type"] == "refresh_token"
