"""BC's HTTP front: URL shapes, bearer-token check, per-identity limits, latency and faults, then the API.

Order per request: authenticate (401 Authentication_InvalidCredentials) -> charge the sliding window (429) ->
take an in-flight slot or queue (429 when full, 503 on queue timeout) -> latency and injected faults -> execute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sandbox.bc.api import JSON_TYPE, ApiRequest, ApiResponse
from sandbox.bc.batch import batch_size, run_batch
from sandbox.bc.control import ANONYMOUS, DROPPED, BcControl
from sandbox.bc.errors import BcError, no_route, not_found_segment
from sandbox.bc.faults import AFTER_RUNNING, Fault
from sandbox.config import BC_RESOURCE, SandboxConfig
from sandbox.errors import TokenRejectedError
from sandbox.tokens import TokenAuthority

_METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT"]
TRANSPORT_KEY = "sandbox.transport"


@dataclass(frozen=True, slots=True)
class ApiRoot:
    """Where the API root is in a request path, and what follows it."""

    tenant: str | None
    environment: str
    root_path: str  # e.g. /v2.0/{tenant}/production/api/v2.0
    rest: str
    # False: the route after api/ is neither v2.0 nor a configured custom API (BC answers 404 for it).
    published: bool = True


def split_path(path: str, custom_apis: Collection[str] = ()) -> ApiRoot:
    """Find the API root: /v2.0/[{tenant}/]{env}/api/v2.0/ or a configured /api/{publisher}/{group}/{version}/."""
    parts = path.split("/")
    # The path starts /v2.0/, so parts[0] is empty and parts[1] is "v2.0".
    if len(parts) >= 4 and parts[3] == "api":
        tenant, environment, api_index = None, parts[2], 3
    elif len(parts) >= 5 and parts[4] == "api":
        tenant, environment, api_index = parts[2], parts[3], 4
    else:
        raise not_found_segment(parts[2] if len(parts) > 2 else "")
    width = _published_width(parts[api_index + 1 :], custom_apis)
    root_end = api_index + 1 + width
    return ApiRoot(
        tenant, environment, "/".join(parts[:root_end]), "/".join(parts[root_end:]), published=width > 0
    )


def _published_width(after_api: list[str], custom_apis: Collection[str]) -> int:
    """How many segments after api/ name a served API: 1 for v2.0, 3 for a configured custom API, else 0."""
    if after_api[:1] == ["v2.0"]:
        return 1
    if len(after_api) >= 3 and "/".join(after_api[:3]) in custom_apis:
        return 3
    return 0


class BcEndpoints:
    """The Starlette app for BC."""

    def __init__(
        self,
        config: SandboxConfig,
        control: BcControl,
        authority: TokenAuthority,
        tenant_id: str,
        authority_host: str,
    ) -> None:
        self._config = config
        self._control = control
        self._authority = authority
        self._tenant_id = tenant_id
        self._challenge = f'Bearer authorization_uri="{authority_host}/{tenant_id}/oauth2/authorize", resource_id="{BC_RESOURCE}"'

    def app(self) -> TransportCapture:
        """The ASGI app (wrapped so that a fault can drop the TCP connection)."""
        return TransportCapture(Starlette(routes=[Route("/v2.0/{rest:path}", self.handle, methods=_METHODS)]))

    async def handle(self, request: Request) -> Response:
        """Every BC request."""
        correlation = str(uuid.uuid4())
        identity = ANONYMOUS
        try:
            root = split_path(request.url.path, self._config.bc_custom_apis)
            identity = self._authenticate(request, root)
            if root.environment != self._config.bc_environment:
                raise BcError(
                    404,
                    "BadRequest_ResourceNotFound",
                    f"The environment '{root.environment}' does not exist.",
                )
            if not root.published:
                raise no_route(str(request.url))
            body = await request.body()
            response = await self._admitted(request, root, identity, body)
        except BcError as exc:
            response = ApiResponse(exc.status, exc.body(correlation), dict(exc.headers))
        except _DroppedError:
            self._control.count(identity, DROPPED)
            return await _drop(request.scope)
        self._control.count(identity, response.status)
        return _http(response, correlation)

    def _authenticate(self, request: Request, root: ApiRoot) -> str:
        header = request.headers.get("authorization", "")
        rejected = BcError(
            401,
            "Authentication_InvalidCredentials",
            "The server has rejected the client credentials.",
            {"WWW-Authenticate": self._challenge},
        )
        if not header.lower().startswith("bearer "):
            raise rejected
        try:
            claims = self._authority.validate(
                header[7:].strip(), BC_RESOURCE, self._tenant_id, self._config.bc_token_clock_skew_seconds
            )
        except TokenRejectedError:
            raise rejected from None
        if root.tenant is not None and root.tenant.lower() != claims.tid.lower():
            raise rejected
        allowed = claims.scp if claims.delegated else claims.roles
        if not {
            "Financials.ReadWrite.All",
            "user_impersonation",
            "API.ReadWrite.All",
            "Automation.ReadWrite.All",
        } & set(allowed):
            raise BcError(
                401,
                "Authentication_InvalidCredentials",
                "Web service call failed because user could not be authenticated or authorized.",
                {"WWW-Authenticate": self._challenge},
            )
        return claims.oid

    async def _admitted(self, request: Request, root: ApiRoot, identity: str, body: bytes) -> ApiResponse:
        limits = self._control.current_limits()
        is_batch = root.rest.strip("/") == "$batch"
        weight = max(1, batch_size(body)) if is_batch and self._config.bc_batch_counts_operations else 1
        with self._control.lock:
            self._control.limiter.charge(identity, weight, limits)
        try:
            await self._control.limiter.acquire(identity, limits)
        except BcError as exc:
            if exc.status == 429 and weight > 1:
                self._control.limiter.refund(identity, weight - 1)  # acquire already gave one back
            raise
        try:
            plan = self._control.plan(is_write=request.method != "GET")
            if plan.delay_ms > 0:
                await asyncio.sleep(plan.delay_ms / 1000)
            if plan.error in AFTER_RUNNING:
                with contextlib.suppress(BcError):  # the operation's own answer is lost in the timeout
                    self._execute(request, root, body, is_batch)
            if plan.error is not None:
                raise self._fault(plan.error)
            response = self._execute(request, root, body, is_batch)
            if plan.ambiguous_write and response.wrote:
                self._control.count_fault(Fault.AMBIGUOUS_WRITE)
                raise _DroppedError
            return response
        finally:
            self._control.limiter.release(identity)

    def _execute(self, request: Request, root: ApiRoot, body: bytes, is_batch: bool) -> ApiResponse:
        """Run the request against the store (a whole $batch, or one operation)."""
        api_request = ApiRequest(
            method=request.method,
            path=root.rest,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            root_url=f"https://{request.headers.get('host', request.url.netloc)}{root.root_path}",
        )
        with self._control.lock:
            if not is_batch:
                return self._control.api.execute(api_request)
            if request.method != "POST":
                raise BcError(405, "BadRequest_MethodNotAllowed", "$batch accepts POST only.")
            return run_batch(
                self._control.api, self._control.store, api_request, root.root_path + "/", self._config
            )

    def _fault(self, fault: Fault) -> BcError | _DroppedError:
        """The answer an injected fault gives (a dropped connection is not an answer)."""
        seconds = self._control.fault_rates().retry_after_seconds
        if fault is Fault.TOO_MANY_REQUESTS:
            return self._too_many_requests(seconds)
        if fault in _REFUSED:
            # BC adds retry-after to 502 and 503
            # (https://learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/web-service-troubleshooting).
            retry_after = self._config.bc_retry_after_seconds_503 if seconds is None else seconds
            status, code = _REFUSED[fault]
            return BcError(status, code, _UNAVAILABLE, {"Retry-After": str(retry_after)})
        if fault is Fault.REQUEST_TIMEOUT:
            # 408 after the 8-minute operation timeout
            # (https://learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/operational-limits-online);
            # BC's code and message for it are not documented.
            return BcError(408, "RequestTimeout", "The operation exceeded the time limit and was canceled.")
        if fault is Fault.GATEWAY_TIMEOUT:
            return BcError(504, "GatewayTimeout", "The operation has timed out.")
        return _DroppedError()

    def _too_many_requests(self, seconds: int | None) -> BcError:
        """An injected 429 in BC's observed shape; Retry-After only when both knobs allow it."""
        limits = self._control.current_limits()
        with_header = limits.retry_after_on_429 and seconds is not None
        return BcError(
            429,
            "Application_TooManyRequests",
            f"Too many requests reached. Actual ({limits.rate_limit + 1}). Maximum ({limits.rate_limit}).",
            {"Retry-After": str(seconds)} if with_header else {},
            correlation=False,
        )


_UNAVAILABLE = "The service is temporarily unavailable. Please try again later."
# Faults refused before anything runs, with Retry-After: their status and error code.
_REFUSED = {Fault.UNAVAILABLE: (503, "ServiceUnavailable"), Fault.BAD_GATEWAY: (502, "BadGateway")}


class _DroppedError(Exception):
    """The connection must be dropped without a response."""


def _http(response: ApiResponse, correlation: str) -> Response:
    headers = {
        "OData-Version": "4.0",
        "request-id": correlation,
        "ms-correlation-x": correlation,
        **response.headers,
    }
    if response.body is None:
        headers.pop("Content-Type", None)
        return Response(status_code=response.status, headers=headers)
    if isinstance(response.body, str):
        media = headers.pop("Content-Type", "text/plain")
        return Response(response.body, status_code=response.status, headers=headers, media_type=media)
    return Response(
        json.dumps(response.body), status_code=response.status, headers=headers, media_type=JSON_TYPE
    )


async def _drop(scope: Scope) -> Response:
    """Abort the TCP connection (no TLS close_notify, no bytes) so the client sees a dropped connection."""
    transport = scope.get(TRANSPORT_KEY)
    if transport is not None:
        transport.abort()
        for _ in range(3):  # let the server notice the connection is gone before the app returns
            await asyncio.sleep(0)
    return Response(status_code=499)


class TransportCapture:
    """ASGI wrapper that records the connection's transport in the scope (uvicorn's send is bound to its cycle)."""

    def __init__(self, app: Starlette) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cycle = getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is not None:
            scope = {**scope, TRANSPORT_KEY: transport}
        await self._app(scope, receive, send)
