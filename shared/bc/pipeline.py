"""One BC call end to end: token -> throttle -> send -> record -> map errors -> retry per policy.

Each attempt gets its own client-request-id (a uuid); the correlation headers of the answer are kept on the
error (and in the Interaction). The token is obtained before a throttle permit is taken, so a slow token
refresh never holds an in-flight slot; the throttle is then held from before the send until the body is read,
so "in flight" means exactly what BC counts. A 401 gets one refreshed token (outside the throttle) and one
resend under a permit of its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from shared import telemetry
from shared.bc.auth import BearerAuth
from shared.bc.errors import (
    BusinessCentralError,
    Correlation,
    RequestTimeoutError,
    ServiceUnavailableError,
    TokenAcquisitionError,
)
from shared.bc.models import IDEMPOTENT_METHODS, JsonValue, Method
from shared.bc.recorder import Interaction, NullRecorder, Recorder
from shared.bc.responses import (
    CLIENT_REQUEST_ID,
    correlation_of,
    error_code_of,
    error_from_response,
    json_body,
)
from shared.bc.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from shared.clock import Clock, SystemClock
from shared.tokens import AccessToken

# Connection failures where the request surely never left this process (safe to repeat any method).
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class Throttle(Protocol):
    """What the pipeline needs from a throttle (SharedThrottle implements it)."""

    def permit(self) -> AbstractAsyncContextManager[None]:
        """Wait for, then hold, one in-flight slot and one rate permit."""
        ...

    async def pause(self, seconds: float) -> None:
        """Stop every instance sending for `seconds`."""
        ...


@dataclass(frozen=True, slots=True)
class Call:
    """One logical BC request (retries repeat it)."""

    method: Method
    url: str
    params: Mapping[str, str] = field(default_factory=dict)
    body: JsonValue = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def idempotent(self) -> bool:
        """GET and DELETE may be repeated after an ambiguous failure."""
        return self.method in IDEMPOTENT_METHODS


class Pipeline:
    """Sends Calls through the throttle, with auth, recording, error mapping and the retry policy."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        auth: BearerAuth,
        throttle: Throttle,
        *,
        policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        recorder: Recorder | None = None,
        clock: Clock | None = None,
        new_request_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._http = http
        self._auth = auth
        self._throttle = throttle
        self._policy = policy
        self._recorder = recorder or NullRecorder()
        self._clock = clock or SystemClock()
        self._new_request_id = new_request_id

    async def aclose(self) -> None:
        """Close the HTTP client's connections."""
        await self._http.aclose()

    async def send(self, call: Call) -> httpx.Response:
        """The 2xx response (body read), or the typed error once the policy stops retrying."""
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(call, attempt)
            except BusinessCentralError as error:
                if (pause := self._policy.pause_for(error)) is not None:
                    await self._throttle.pause(pause)
                delay = self._policy.next_delay(
                    error, attempt=attempt, waited=waited, idempotent=call.idempotent
                )
                if delay is None:
                    raise
                await self._clock.sleep(delay)
                waited += delay

    async def _attempt(self, call: Call, attempt: int) -> httpx.Response:
        request_id = self._new_request_id()
        headers = {"Accept": "application/json", CLIENT_REQUEST_ID: request_id, **call.headers}
        request = self._http.build_request(
            call.method.value,
            call.url,
            params=call.params or None,
            json=call.body,
            headers=headers,
        )
        token = await self._token(request, attempt, request_id, None)
        response = await self._exchange(request, token, attempt, request_id)
        if response.status_code == httpx.codes.UNAUTHORIZED:
            token = await self._token(request, attempt, request_id, token)
            response = await self._exchange(request, token, attempt, request_id)
        if response.is_success:
            return response
        raise error_from_response(response, correlation_of(request_id, response.headers))

    async def _token(
        self, request: httpx.Request, attempt: int, request_id: str, rejected: AccessToken | None
    ) -> AccessToken:
        """The current token (or, after a 401, a newer one); a provider failure is recorded, then raised."""
        started = time.perf_counter()
        try:
            return await (self._auth.token() if rejected is None else self._auth.refreshed(rejected))
        except TokenAcquisitionError as error:
            self._recorder.record(
                Interaction(
                    method=request.method,
                    path=request.url.path,
                    status=None,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    attempt=attempt,
                    client_request_id=request_id,
                    error=f"{type(error).__name__}({error.provider_error})",
                )
            )
            raise

    async def _exchange(
        self, request: httpx.Request, token: AccessToken, attempt: int, request_id: str
    ) -> httpx.Response:
        """Send once under a throttle permit (held until the body is read) and record the answer."""
        self._auth.authorize(request, token)
        async with self._throttle.permit():
            started = time.perf_counter()
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                raise self._transport_error(request, exc, attempt, request_id, started) from exc
        self._record(request, response, attempt, request_id, (time.perf_counter() - started) * 1000)
        return response

    def _transport_error(
        self, request: httpx.Request, exc: httpx.TransportError, attempt: int, request_id: str, started: float
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
                attempt=attempt,
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
        attempt: int,
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
                attempt=attempt,
                client_request_id=request_id,
                request_id=correlation.request_id,
                ms_correlation_x=correlation.ms_correlation_x,
                bc_error_code=code,
            )
        )
