"""RequestSender: one BC request end to end: token -> throttle -> send -> record -> map errors -> retry.

A BcRequest is one logical request; each try of it (the retry policy's in-request retries, retry.py) gets its
own client-request-id (a uuid), and the correlation headers of the answer are kept on the error and in the
Interaction handed to the Recorder. ("Attempt" is the job layer's word for a run that reached BC; a retry
inside one request is a *try*.)

The token comes from the TokenProvider *before* a throttle permit is taken (design: token -> throttle -> BC
call), so a slow token refresh never holds one of the identity's in-flight slots; the permit is then held from
before the send until the body is read, so "in flight" means exactly what BC counts. A 401 gets one newer
token than the rejected one (again outside the throttle) and one resend under a permit of its own; a second
401 is an AuthenticationError. This module is the only code that touches the Authorization header.

A refused token is refused for every request that carries it (expired at BC's clock, revoked), so the sender
remembers it (shared.tokens.RefusedTokens, by digest): a request whose token BC refused while it waited for its
permit gives the permit back unsent and swaps the token first (issue 24, point 6). Once BC refuses a token, a
process spends at most one request per in-flight slot on it, not one per job queued behind them. When BC accepts
a token again, one log line (event bc.token_recovered) says what the refusal cost: requests and 401s since it.

Whatever the provider raises becomes TokenAcquisitionError, chaining the original: shared/bc cannot know
shared/auth's error types (the token seam, shared/tokens.py), only that no token came and, through
TokenProviderError.transient, whether waiting helps (TokenRefusedError, not retriable, when it does not).

The Recorder hook: an Interaction holds no body, no query string and no header value other than correlation
ids, so nothing secret (a token, customer data from a filter) can reach the job's audit log through it.

Headers BC's telemetry attributes (reference bc-facts.md §3e; Learn "Analyzing incoming web service request
telemetry", learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/telemetry-webservices-trace:
signal RT0008 logs `userAgent`/`httpHeaders` and `clientRequestId`): every try carries `User-Agent:
bcjobs/{version} (connection={name}; identity={name})` beside its client-request-id, so the customer's admin can
tell this product's requests, and which connection and identity sent them, from the other apps'. Both names match
[a-z0-9-] (shared/connections/connection.py): no secret, no tenant data. Every GET also carries
`Data-Access-Intent: ReadOnly` (bc-facts.md §3b; Learn "Tips for connecting apps", devenv-connect-apps-tips, and
"Read scale-out", database-read-scale-out-overview): BC may serve it from a read-only replica, off the primary's
load; BC refuses the header on a write, so no other method ever sends it. One rule here, for every read — but
a replica "can lag behind a recently committed write" and Learn says to avoid read-only intent for a read that
"requires primary-database consistency for a decision" (learn.microsoft.com/training/modules/
implement-application-programming-interfaces/route-read-only-workloads; the 2021 wave 2 release plan,
"odata-read-only-intent": "some small latency between different replicas"): a job's read that decides a write
(the natural-key lookup of an upsert, the check after an ambiguous write) sets BcRequest.primary and goes without it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import httpx

from shared import telemetry
from shared.bc.errors import (
    CLIENT_REQUEST_ID,
    BusinessCentralError,
    Correlation,
    RequestTimeoutError,
    ServiceUnavailableError,
    TokenAcquisitionError,
    TokenRefusedError,
    correlation_of,
    error_code_of,
    error_from_response,
    json_body,
)
from shared.bc.models import IDEMPOTENT_METHODS, JsonValue, Method
from shared.bc.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from shared.clock import Clock, SystemClock
from shared.tokens import DEFAULT_MIN_VALIDITY, AccessToken, RefusedTokens, TokenProvider, TokenProviderError

logger = logging.getLogger(__name__)

# The product's version (pyproject.toml's and bcjobs/pyproject.toml's `version`, which a unit test keeps equal to
# this): a constant, since the deployment packs neither pyproject.toml (.funcignore) nor any distribution's metadata.
PRODUCT_VERSION = "0.1.0"
USER_AGENT = "User-Agent"
DATA_ACCESS_INTENT = "Data-Access-Intent"
READ_ONLY_INTENT = "ReadOnly"

# Connection failures where the request surely never left this process (safe to repeat any method).
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Swaps of a token refused while its request waited for a permit, per send; then it goes as it is (a provider
# that keeps handing out refused tokens gets its 401, which names the problem).
_MAX_SWAPS = 2


@dataclass(frozen=True, slots=True)
class Interaction:
    """One HTTP exchange with BC (status is None when no answer came; `error` then names what happened)."""

    method: str
    path: str
    status: int | None
    duration_ms: float
    try_number: int  # the in-request try (1 = first send), not the job's attempt
    client_request_id: str
    request_id: str | None = None
    ms_correlation_x: str | None = None
    bc_error_code: str | None = None
    error: str | None = None


def user_agent(connection: str | None = None, identity: str | None = None) -> str:
    """`bcjobs/{version} (connection={connection}; identity={identity})`; just the product when no connection."""
    product = f"bcjobs/{PRODUCT_VERSION}"
    if connection is None:
        return product
    return f"{product} (connection={connection}; identity={identity or 'primary'})"


def request_headers(bc_request: BcRequest, request_id: str, agent: str) -> dict[str, str]:
    """The headers of one try: ours, then the caller's, then the read-intent rule (ReadOnly on a GET that may be
    served by a replica, never else)."""
    headers = {
        "Accept": "application/json",
        CLIENT_REQUEST_ID: request_id,
        USER_AGENT: agent,
        **bc_request.headers,
    }
    for name in [name for name in headers if name.lower() == DATA_ACCESS_INTENT.lower()]:
        del headers[name]
    if bc_request.method is Method.GET and not bc_request.primary:
        headers[DATA_ACCESS_INTENT] = READ_ONLY_INTENT
    return headers


class Recorder(Protocol):
    """Receives interactions; must be cheap and must not raise (it runs on the request path)."""

    def record(self, interaction: Interaction) -> None:
        """Take one interaction."""
        ...


class NullRecorder:
    """Drops everything (the default)."""

    def record(self, interaction: Interaction) -> None:
        """Ignore the interaction."""


class MemoryRecorder:
    """Keeps interactions in a list (tests, and the job layer's per-job audit buffer)."""

    def __init__(self) -> None:
        self.interactions: list[Interaction] = []

    def record(self, interaction: Interaction) -> None:
        """Append the interaction."""
        self.interactions.append(interaction)


@dataclass(frozen=True, slots=True)
class RefusalCost:
    """What one refusal cost a sender: BC requests from the first 401 to the first 2xx (both counted), the
    401s among them, and the seconds in between."""

    requests: int
    refused: int
    seconds: float


class RefusalCount:
    """Counts a sender's answers from BC's first 401 until it accepts a token again (then starts over)."""

    def __init__(self) -> None:
        self._requests = 0
        self._refused = 0
        self._since = 0.0

    def count(self, status: int) -> RefusalCost | None:
        """Count one answer; the cost of the refusal when this answer ends it (a 2xx after a 401)."""
        if self._refused == 0 and status != httpx.codes.UNAUTHORIZED:
            return None
        if self._refused == 0:
            self._since = time.monotonic()
        self._requests += 1
        if status == httpx.codes.UNAUTHORIZED:
            self._refused += 1
        if not 200 <= status < 300:
            return None
        cost = RefusalCost(self._requests, self._refused, time.monotonic() - self._since)
        self._requests = self._refused = 0
        return cost


class Throttle(Protocol):
    """What the sender needs from a throttle (SharedThrottle implements it)."""

    def permit(self) -> AbstractAsyncContextManager[None]:
        """Wait for, then hold, a permit: one in-flight slot, taken at this process's pace."""
        ...

    async def pause(self, seconds: float) -> None:
        """Stop every instance sending for `seconds`."""
        ...


@dataclass(frozen=True, slots=True)
class BcRequest:
    """One logical BC request (each retry is another try of it)."""

    method: Method
    url: str
    params: Mapping[str, str] = field(default_factory=dict)
    body: JsonValue = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # A GET whose answer decides a write: read from BC's primary database, not a replica (the module's docstring).
    primary: bool = False

    @property
    def idempotent(self) -> bool:
        """GET and DELETE may be repeated after an ambiguous failure."""
        return self.method in IDEMPOTENT_METHODS


class RequestSender:
    """Sends BcRequests with a bearer token, through the throttle, recording each try, retrying per policy."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenProvider,
        throttle: Throttle,
        *,
        min_validity: timedelta = DEFAULT_MIN_VALIDITY,
        policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        recorder: Recorder | None = None,
        clock: Clock | None = None,
        new_request_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        agent: str | None = None,
    ) -> None:
        self._http = http
        self._tokens = tokens
        self._min_validity = min_validity
        self._throttle = throttle
        self._policy = policy
        self._recorder = recorder or NullRecorder()
        self._clock = clock or SystemClock()
        self._new_request_id = new_request_id
        self._agent = agent or user_agent()
        self._refused = RefusedTokens()  # tokens BC answered 401 to, by digest: swapped before they are sent
        self._refusal = RefusalCount()

    async def aclose(self) -> None:
        """Close the HTTP client's connections."""
        await self._http.aclose()

    async def send(self, bc_request: BcRequest) -> httpx.Response:
        """The 2xx response (body read), or the typed error once the policy stops retrying."""
        waited = 0.0
        try_number = 0
        while True:
            try_number += 1
            try:
                return await self._try(bc_request, try_number)
            except BusinessCentralError as error:
                if (pause := self._policy.pause_for(error)) is not None:
                    await self._throttle.pause(pause)
                delay = self._policy.next_delay(
                    error, try_number=try_number, waited=waited, idempotent=bc_request.idempotent
                )
                if delay is None:
                    raise
                await self._clock.sleep(delay)
                waited += delay

    async def _try(self, bc_request: BcRequest, try_number: int) -> httpx.Response:
        request_id = self._new_request_id()
        headers = request_headers(bc_request, request_id, self._agent)
        request = self._http.build_request(
            bc_request.method.value,
            bc_request.url,
            params=bc_request.params or None,
            json=bc_request.body,
            headers=headers,
        )
        token = await self._token(request, try_number, request_id, None)
        token, response = await self._exchange(request, token, try_number, request_id)
        if response.status_code == httpx.codes.UNAUTHORIZED:
            replacement = await self._token(request, try_number, request_id, token)
            # The provider has nothing but the refused token: resend it once all the same (BC's 401 says why).
            swaps = 0 if replacement.value != token.value else _MAX_SWAPS
            token, response = await self._exchange(request, replacement, try_number, request_id, swaps)
        if response.is_success:
            return response
        raise error_from_response(response, correlation_of(request_id, response.headers))

    async def _token(
        self, request: httpx.Request, try_number: int, request_id: str, rejected: AccessToken | None
    ) -> AccessToken:
        """The current token (or, after a 401, a newer one); a provider failure is recorded, then raised."""
        started = time.perf_counter()
        try:
            return await (self._current_token() if rejected is None else self._newer_token(rejected))
        except TokenAcquisitionError as error:
            self._recorder.record(
                Interaction(
                    method=request.method,
                    path=request.url.path,
                    status=None,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    try_number=try_number,
                    client_request_id=request_id,
                    error=f"{type(error).__name__}({error.provider_error})",
                )
            )
            raise

    async def _current_token(self) -> AccessToken:
        """A token valid for at least `min_validity`; TokenAcquisitionError when the provider fails."""
        try:
            return await self._tokens.token(self._min_validity)
        except Exception as exc:  # any provider failure: the seam cannot know its types (shared/tokens.py)
            raise _no_token(exc) from exc

    async def _newer_token(self, rejected: AccessToken) -> AccessToken:
        """A newer token than the one BC just rejected; TokenAcquisitionError when the provider fails."""
        try:
            return await self._tokens.replacement_for(rejected)
        except Exception as exc:  # as in _current_token()
            raise _no_token(exc) from exc

    async def _exchange(
        self, request: httpx.Request, token: AccessToken, try_number: int, request_id: str, swaps: int = 0
    ) -> tuple[AccessToken, httpx.Response]:
        """Send once and record the answer; a token BC refused meanwhile is swapped first (outside the permit),
        until the provider hands back the same one or `_MAX_SWAPS` were made. Returns the token sent and BC's
        answer."""
        while True:
            if token in self._refused and swaps < _MAX_SWAPS:
                swapped = await self._token(request, try_number, request_id, token)
                swaps = swaps + 1 if swapped.value != token.value else _MAX_SWAPS
                token = swapped
            response = await self._send(request, token, try_number, request_id, may_swap=swaps < _MAX_SWAPS)
            if response is not None:
                self._count_answer(token, response.status_code)
                return token, response

    async def _send(
        self, request: httpx.Request, token: AccessToken, try_number: int, request_id: str, *, may_swap: bool
    ) -> httpx.Response | None:
        """Send under a throttle permit (held until the body is read); None, unsent, when BC refused the token
        while this request waited for the permit (and it may still be swapped)."""
        # Replaces the header of an earlier send of the same request (the resend after a 401).
        request.headers["Authorization"] = f"Bearer {token.value}"
        async with self._throttle.permit():
            if may_swap and token in self._refused:
                return None
            started = time.perf_counter()
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                raise self._transport_error(request, exc, try_number, request_id, started) from exc
        self._record(request, response, try_number, request_id, (time.perf_counter() - started) * 1000)
        return response

    def _count_answer(self, token: AccessToken, status: int) -> None:
        """Remember a refused token; log what a refusal cost once BC accepts a token again."""
        if status == httpx.codes.UNAUTHORIZED:
            self._refused.note(token)
        ended = self._refusal.count(status)
        if ended is not None:
            logger.info(
                "BC accepted a token again %.1f s after it refused one: %d requests since, %d of them refused",
                ended.seconds,
                ended.requests,
                ended.refused,
                extra={"event": "bc.token_recovered"},
            )

    def _transport_error(
        self,
        request: httpx.Request,
        exc: httpx.TransportError,
        try_number: int,
        request_id: str,
        started: float,
    ) -> BusinessCentralError:
        sent = not isinstance(exc, _NOT_SENT)
        duration_ms = (time.perf_counter() - started) * 1000
        telemetry.bc_request(request.method, None, duration_ms, None)
        self._recorder.record(
            Interaction(
                method=request.method,
                path=request.url.path,
                status=None,
                duration_ms=duration_ms,
                try_number=try_number,
                client_request_id=request_id,
                error=type(exc).__name__,
            )
        )
        correlation = Correlation(request_id)
        error_type = (
            RequestTimeoutError if isinstance(exc, httpx.TimeoutException) else ServiceUnavailableError
        )
        return error_type(
            f"no answer from BC ({type(exc).__name__})", correlation=correlation, request_sent=sent
        )

    def _record(
        self,
        request: httpx.Request,
        response: httpx.Response,
        try_number: int,
        request_id: str,
        duration_ms: float,
    ) -> None:
        code = error_code_of(json_body(response))[0] if not response.is_success else None
        correlation = correlation_of(request_id, response.headers)
        telemetry.bc_request(request.method, response.status_code, duration_ms, code)
        self._recorder.record(
            Interaction(
                method=request.method,
                path=request.url.path,
                status=response.status_code,
                duration_ms=duration_ms,
                try_number=try_number,
                client_request_id=request_id,
                request_id=correlation.request_id,
                ms_correlation_x=correlation.ms_correlation_x,
                bc_error_code=code,
            )
        )


def _no_token(exc: Exception) -> TokenAcquisitionError:
    # Unknown failures count as transient: the job layer retries them with backoff and a bounded budget.
    refused = isinstance(exc, TokenProviderError) and not exc.transient
    error_type = TokenRefusedError if refused else TokenAcquisitionError
    return error_type(
        f"no BC token: the token provider failed ({type(exc).__name__})",
        provider_error=type(exc).__name__,
    )
