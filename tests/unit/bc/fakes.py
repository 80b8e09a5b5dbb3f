"""Test doubles behind the BC client's own seams: token provider, throttle (coordination store: tests/fakes)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx

from shared.bc.client import BusinessCentralClient
from shared.bc.models import BcEndpoint
from shared.bc.retry import RetryPolicy
from shared.bc.sender import MemoryRecorder, RequestSender, Throttle
from shared.tokens import DEFAULT_MIN_VALIDITY, AccessToken
from testkit.clock import ManualClock

BASE = "https://bc.test"
TENANT = "11111111-1111-1111-1111-111111111111"
COMPANY = UUID("22222222-2222-2222-2222-222222222222")
API_ROOT = f"{BASE}/v2.0/{TENANT}/production/api/v2.0"


class CountingTokens:
    """A TokenProvider handing out "token-1", "token-2", ...; counts calls, remembers what was rejected."""

    def __init__(self) -> None:
        self._serial = 1
        self.token_calls = 0
        self.replacement_calls = 0
        self.rejected: list[AccessToken] = []

    def _current(self) -> AccessToken:
        return AccessToken(f"token-{self._serial}", datetime.now(UTC) + timedelta(hours=1))

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        """The current token."""
        self.token_calls += 1
        return self._current()

    async def replacement_for(self, rejected: AccessToken) -> AccessToken:
        """A newer token."""
        self.replacement_calls += 1
        self.rejected.append(rejected)
        self._serial += 1
        return self._current()


@dataclass
class RecordingThrottle:
    """A throttle that lets everything through and remembers permits (and how many are held) and pauses."""

    pauses: list[float] = field(default_factory=list)
    permits: int = 0
    held: int = 0

    @contextlib.asynccontextmanager
    async def permit(self) -> AsyncIterator[None]:
        """Count the permit while it is held."""
        self.permits += 1
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1

    async def pause(self, seconds: float) -> None:
        """Remember the pause."""
        self.pauses.append(seconds)


Handler = Callable[[httpx.Request], httpx.Response]


def json_response(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """An httpx response with a JSON body (or none)."""
    content = b"" if body is None else json.dumps(body).encode()
    all_headers = {"content-type": "application/json", **(headers or {})}
    return httpx.Response(status, content=content, headers=all_headers)


def bc_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """BC's error body shape (as the sandbox sends it: sandbox/bc/errors.py)."""
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


@dataclass
class Harness:
    """A client wired to a MockTransport handler, with every seam observable."""

    client: BusinessCentralClient
    tokens: CountingTokens
    throttle: RecordingThrottle
    recorder: MemoryRecorder
    clock: ManualClock
    requests: list[httpx.Request]


def make_client(
    handler: Handler,
    *,
    policy: RetryPolicy | None = None,
    company_id: UUID | None = COMPANY,
    company_name: str | None = None,
    page_size: int = 100,
    tokens: CountingTokens | None = None,
    agent: str | None = None,
    throttle: Throttle | None = None,
) -> Harness:
    """A BusinessCentralClient whose HTTP goes to `handler`; every request is also kept."""
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    slots = throttle
    tokens, recording_throttle, recorder, clock = (
        tokens or CountingTokens(),
        RecordingThrottle(),
        MemoryRecorder(),
        ManualClock(),
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(recording))
    sender = RequestSender(
        http,
        tokens,
        slots or recording_throttle,
        policy=policy or RetryPolicy(jitter=0.0),
        recorder=recorder,
        clock=clock,
        agent=agent,
    )
    endpoint = BcEndpoint(BASE, "production", TENANT, company_id=company_id, company_name=company_name)
    client = BusinessCentralClient(sender, endpoint, page_size=page_size)
    return Harness(client, tokens, recording_throttle, recorder, clock, seen)
