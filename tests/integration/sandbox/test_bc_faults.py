"""Sandbox BC fault injection with httpx: dropped connections, ambiguous writes, 503/504, rates, spikes."""

from __future__ import annotations

import time

import httpx
import pytest

from sandbox import Sandbox

pytestmark = pytest.mark.integration


async def test_dropped_connection_then_service_continues(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """A drop closes the connection without a response; the next request is served."""
    sandbox.bc.fail_next(1, "drop")
    with pytest.raises(httpx.TransportError):
        await bc.get(f"{company_url}/items", params={"$top": "1"})
    assert (await bc.get(f"{company_url}/items", params={"$top": "1"})).status_code == 200
    assert sandbox.bc.stats().count(0) == 1


async def test_ambiguous_write_is_applied_but_unanswered(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """The customer is created, yet the client only sees a dropped connection."""
    sandbox.bc.fail_next(1, "ambiguous_write")
    with pytest.raises(httpx.TransportError):
        await bc.post(f"{company_url}/customers", json={"number": "AMB-1", "displayName": "Maybe"})
    assert any(c["number"] == "AMB-1" for c in sandbox.bc.records("customers"))
    again = await bc.post(f"{company_url}/customers", json={"number": "AMB-1", "displayName": "Maybe"})
    assert again.status_code == 409


async def test_ambiguous_write_waits_for_a_write(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """A queued ambiguous-write fault lets reads through and hits the next write."""
    sandbox.bc.fail_next(1, "ambiguous_write")
    assert (await bc.get(f"{company_url}/items", params={"$top": "1"})).status_code == 200
    with pytest.raises(httpx.TransportError):
        await bc.post(f"{company_url}/vendors", json={"displayName": "Lost reply"})
    assert any(v["displayName"] == "Lost reply" for v in sandbox.bc.records("vendors"))


@pytest.mark.parametrize(("kind", "status"), [("503", 503), ("504", 504), ("429", 429)])
async def test_forced_error_faults(
    kind: str, status: int, sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """Forced 429/503/504 answer with that status (503 and 429 with Retry-After) and change nothing."""
    before = len(sandbox.bc.records("customers"))
    sandbox.bc.fail_next(1, kind)
    response = await bc.post(f"{company_url}/customers", json={"displayName": "Never"})
    assert response.status_code == status
    assert ("retry-after" in response.headers) is (status != 504)
    assert len(sandbox.bc.records("customers")) == before
    assert sandbox.bc.stats().faults_injected == {kind: 1}


async def test_fault_rates_are_drawn_per_request(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """rate_503=0.5 fails about half the requests (seeded, so repeatable) and the rest succeed."""
    sandbox.bc.faults(rate_503=0.5)
    statuses = [(await bc.get(f"{company_url}/items", params={"$top": "1"})).status_code for _ in range(40)]
    assert set(statuses) == {200, 503}
    assert 8 <= statuses.count(503) <= 32


async def test_latency_spike_delays_one_response(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """A forced spike delays that response by spike_ms."""
    sandbox.bc.faults(spike_ms=300)
    sandbox.bc.fail_next(1, "spike")
    started = time.monotonic()
    response = await bc.get(f"{company_url}/items", params={"$top": "1"})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
