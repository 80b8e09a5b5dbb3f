"""A token BC refuses costs this process at most one request per in-flight slot (issue 24, point 6), on the
sandbox's BC (which refuses a token it cannot validate with 401, as BC does) through the real client and throttle."""

from __future__ import annotations

import asyncio

import pytest

from sandbox import Sandbox
from shared.bc import BusinessCentralClient
from shared.bc.models import EntitySet
from testkit.sandbox_tokens import SandboxTokenProvider

pytestmark = pytest.mark.integration

CUSTOMERS = EntitySet("customers")
JOBS = 20
SLOTS = 5  # BC's in-flight requests per identity, which the throttle keeps


async def test_twenty_requests_holding_a_refused_token_cost_at_most_one_401_per_slot(
    bc: BusinessCentralClient, tokens: SandboxTokenProvider, sandbox: Sandbox
) -> None:
    """20 requests took a token BC refuses before any was sent; 5 go out at once and are refused, the 15 queued
    behind them swap the token before they are sent: every request succeeds, BC answers 401 at most 5 times."""
    await bc.list(CUSTOMERS, limit=1)  # joined the throttle, a good token cached
    refused_before = sandbox.bc.stats().count(401)
    sandbox.bc.latency(50.0, 0.0)  # the first five hold their slots while the rest queue for a permit
    tokens.poison_next(JOBS)

    pages = await asyncio.gather(*(bc.list(CUSTOMERS, limit=1) for _ in range(JOBS)))

    assert len(pages) == JOBS
    assert sandbox.bc.stats().count(401) - refused_before <= SLOTS
    assert tokens.replacement_calls <= JOBS
