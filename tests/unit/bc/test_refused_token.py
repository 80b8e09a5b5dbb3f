"""A token BC refused costs one request per in-flight slot, not one per request queued behind them (issue 24,
point 6): requests that took the token before the refusal swap it before they are sent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest

from shared.bc.errors import AuthenticationError
from shared.bc.models import EntitySet
from shared.bc.sender import RefusalCount
from shared.tokens import AccessToken, RefusedTokens, token_digest
from tests.unit.bc.fakes import bc_error, json_response, make_client

CUSTOMERS = EntitySet("customers")
CUSTOMER_ID = UUID("33333333-3333-3333-3333-333333333333")
SLOTS = 2
CALLERS = 10


class SlotThrottle:
    """BC's in-flight slots as a semaphore: a request waits for a permit while `SLOTS` others are out."""

    def __init__(self, slots: int) -> None:
        self._slots = asyncio.Semaphore(slots)
        self.permits = 0

    @contextlib.asynccontextmanager
    async def permit(self) -> AsyncIterator[None]:
        """Hold one slot."""
        async with self._slots:
            self.permits += 1
            yield

    async def pause(self, seconds: float) -> None:
        """Never asked for here."""


async def test_requests_queued_behind_a_refusal_swap_the_token_instead_of_sending_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """10 requests took token-1, 2 slots: BC refuses the 2 in flight; the 8 waiting for a permit get a
    replacement before they are sent, so BC answers 401 twice and 200 ten times, and one log line says so."""
    answers: list[int] = []
    arrived, refuse = asyncio.Event(), asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer token-1":
            if sum(1 for status in answers if status == 0) + 1 >= SLOTS:
                arrived.set()
            answers.append(0)
            await refuse.wait()  # both slots hold token-1 while the other requests queue for a permit
            answers[answers.index(0)] = 401
            return bc_error(401, "Authentication_InvalidCredentials", "The token has expired")
        answers.append(200)
        return json_response(200, {"id": str(CUSTOMER_ID)})

    throttle = SlotThrottle(SLOTS)
    h = make_client(handler, throttle=throttle)  # type: ignore[arg-type]  # MockTransport awaits async handlers
    caplog.set_level(logging.INFO, logger="shared.bc.sender")
    calls = asyncio.gather(*(h.client.get(CUSTOMERS.key(CUSTOMER_ID)) for _ in range(CALLERS)))
    async with asyncio.timeout(5):
        await arrived.wait()
        refuse.set()
        await calls

    assert answers.count(401) == SLOTS
    assert answers.count(200) == CALLERS
    # The 8 that waited took a permit, saw the token refused meanwhile and gave it back unsent (a slot held for
    # no request, never a request BC refuses): 2 sends of token-1, 8 given back, 10 sends of a replacement.
    assert throttle.permits == SLOTS + (CALLERS - SLOTS) + CALLERS
    assert [record.getMessage().split(": ")[1] for record in caplog.records] == [
        f"{SLOTS + 1} requests since, {SLOTS} of them refused"
    ]


async def test_a_provider_handing_out_refused_tokens_gets_its_401_after_two_swaps() -> None:
    """The swap is bounded: a provider whose replacements are refused too ends in one 401 per try, not a loop."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Authorization"])
        return bc_error(401, "Authentication_InvalidCredentials", "nope")

    h = make_client(handler)
    with pytest.raises(AuthenticationError):
        await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    assert sent == ["Bearer token-1", "Bearer token-2"]


def test_refused_tokens_are_remembered_by_digest_and_only_the_newest_are_kept() -> None:
    """The memory holds digests, never a token, and forgets the oldest beyond its capacity."""
    refused = RefusedTokens(capacity=2)
    for value in ("secret-1", "secret-2", "secret-3"):
        refused.note(AccessToken(value, expires_on=_far()))

    assert "secret-1" not in refused
    assert "secret-2" in refused
    assert AccessToken("secret-3", expires_on=_far()) in refused
    assert refused.digests() == {token_digest("secret-2"), token_digest("secret-3")}
    assert not any("secret" in digest for digest in refused.digests())


def test_a_refusal_ends_at_the_first_success_and_counts_what_it_cost() -> None:
    """Answers before any 401 cost nothing; from the first 401 to the first 2xx every answer is counted."""
    count = RefusalCount()
    assert [count.count(status) for status in (200, 503)] == [None, None]
    assert [count.count(status) for status in (401, 503, 401)] == [None, None, None]
    cost = count.count(201)
    assert cost is not None
    assert (cost.requests, cost.refused) == (4, 2)
    assert count.count(200) is None  # over: the next refusal starts again


def _far() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)
