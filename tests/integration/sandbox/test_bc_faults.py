"""Sandbox BC fault injection with httpx: dropped connections, ambiguous writes, 408/429/502/503/504, rates, spikes."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from sandbox import Sandbox

pytestmark = pytest.mark.integration

CORRELATION = re.compile(r"  CorrelationId:  [0-9a-f-]{36}\.$")


async def test_dropped_connection_then_service_continues(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """A drop closes the connection without a response; the next request is served."""
    sandbox.bc.fail_next(1, "drop")
    with pytest.raises(httpx.TransportError):
        await bc.get(f"{company_url}/items", params={"$top": "1"})
    assert (await bc.get(f"{company_url}/items", params={"$top": "1"})).status_code == 200
    assert sandbox.bc.stats().count(0) == 1


# What httpx raises when the server closes the connection without answering: no response object at all.
CONNECTION_LOST = (httpx.RemoteProtocolError, httpx.ReadError)


async def test_ambiguous_write_is_applied_but_unanswered(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """The customer is created, yet the client only sees a dropped connection (a transport error, no response)."""
    sandbox.bc.fail_next(1, "ambiguous_write")
    with pytest.raises(CONNECTION_LOST):
        await bc.post(f"{company_url}/customers", json={"number": "AMB-1", "displayName": "Maybe"})
    assert any(c["number"] == "AMB-1" for c in sandbox.bc.records("customers"))
    again = await bc.post(f"{company_url}/customers", json={"number": "AMB-1", "displayName": "Maybe"})
    assert again.status_code == 409
    stats = sandbox.bc.stats()
    assert stats.faults_injected == {"ambiguous_write": 1}
    assert stats.count(0) == 1  # recorded as a dropped connection


async def test_ambiguous_writes_by_rate_commit_every_write_and_spare_reads(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """rate_ambiguous_write=1: every write commits and then loses its connection; reads are answered."""
    sandbox.bc.faults(rate_ambiguous_write=1.0)
    for n in range(3):
        with pytest.raises(CONNECTION_LOST):
            await bc.post(f"{company_url}/vendors", json={"displayName": f"Rate {n}"})
        assert (await bc.get(f"{company_url}/vendors", params={"$top": "1"})).status_code == 200
    names = {v["displayName"] for v in sandbox.bc.records("vendors")}
    assert {"Rate 0", "Rate 1", "Rate 2"} <= names
    assert sandbox.bc.stats().faults_injected == {"ambiguous_write": 3}


async def test_ambiguous_write_waits_for_a_write(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """A queued ambiguous-write fault lets reads through and hits the next write."""
    sandbox.bc.fail_next(1, "ambiguous_write")
    assert (await bc.get(f"{company_url}/items", params={"$top": "1"})).status_code == 200
    with pytest.raises(httpx.TransportError):
        await bc.post(f"{company_url}/vendors", json={"displayName": "Lost reply"})
    assert any(v["displayName"] == "Lost reply" for v in sandbox.bc.records("vendors"))


@pytest.mark.parametrize(("kind", "status"), [("502", 502), ("503", 503), ("504", 504), ("429", 429)])
async def test_forced_error_faults(
    kind: str, status: int, sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """Forced 429/502/503/504 answer with that status (all but 504 with Retry-After) and change nothing."""
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


async def test_timeout_408_commits_the_write_then_answers_with_bcs_error_body(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """A forced 408 runs the write first: the client gets 408 in BC's error shape, yet the customer exists."""
    sandbox.bc.fail_next(1, "408")
    response = await bc.post(f"{company_url}/customers", json={"number": "T408", "displayName": "Timed out"})
    assert response.status_code == 408
    error = response.json()["error"]
    assert error["code"] == "RequestTimeout"
    assert CORRELATION.search(error["message"])
    assert "retry-after" not in response.headers
    assert [c["displayName"] for c in sandbox.bc.records("customers") if c["number"] == "T408"] == [
        "Timed out"
    ]
    assert sandbox.bc.stats().faults_injected == {"408": 1}


async def test_timeouts_408_by_rate_hit_reads_and_writes(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """rate_408=1: a PATCH answers 408 but its change is applied; a GET answers 408 too."""
    item = sandbox.bc.records("items")[0]
    sandbox.bc.faults(rate_408=1.0)
    url = f"{company_url}/items({item['id']})"
    patched = await bc.patch(url, json={"displayName": "Changed anyway"}, headers={"If-Match": "*"})
    assert patched.status_code == 408
    assert (await bc.get(url)).status_code == 408
    assert [i["displayName"] for i in sandbox.bc.records("items") if i["id"] == item["id"]] == [
        "Changed anyway"
    ]
    assert sandbox.bc.stats().faults_injected == {"408": 2}


async def test_bad_gateway_502_by_rate_carries_retry_after_and_changes_nothing(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """rate_502=1 with retry_after_seconds=3: every request is 502 with Retry-After: 3; no write lands."""
    before = len(sandbox.bc.records("vendors"))
    sandbox.bc.faults(rate_502=1.0, retry_after_seconds=3)
    for _ in range(2):
        response = await bc.post(f"{company_url}/vendors", json={"displayName": "Never"})
        assert response.status_code == 502
        assert response.headers["retry-after"] == "3"
        assert response.json()["error"]["code"] == "BadGateway"
    assert len(sandbox.bc.records("vendors")) == before
    assert sandbox.bc.stats().faults_injected == {"502": 2}


async def test_bad_gateway_keeps_retry_after_when_429s_drop_it(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """retry_after_seconds=None removes Retry-After from 429 only: BC documents one on every 502/503."""
    sandbox.bc.faults(retry_after_seconds=None)
    sandbox.bc.fail_next(1, "502")
    response = await bc.get(f"{company_url}/items", params={"$top": "1"})
    assert response.status_code == 502
    assert response.headers["retry-after"] == str(sandbox.config.bc_retry_after_seconds_503)


async def test_429_without_retry_after_forced_and_by_rate(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """retry_after_seconds=None: injected 429s, forced or drawn, carry BC's 429 body and no Retry-After."""
    sandbox.bc.faults(retry_after_seconds=None)
    sandbox.bc.fail_next(1, "429")
    forced = await bc.get(f"{company_url}/items", params={"$top": "1"})
    sandbox.bc.faults(rate_429=1.0)
    drawn = await bc.get(f"{company_url}/items", params={"$top": "1"})
    for response in (forced, drawn):
        assert response.status_code == 429
        assert "retry-after" not in response.headers
        assert response.json()["error"]["code"] == "Application_TooManyRequests"
    assert sandbox.bc.stats().faults_injected == {"429": 2}
