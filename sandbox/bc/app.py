"""BC's HTTP front: URL shapes, bearer-token check, per-identity limits, latency and faults, then the API.

Order per request: authenticate (401 Authentication_InvalidCredentials) -> find the environment (tenant from the
URL, else from the token's `tid`; 404 when the tenant has no such environment) -> the app's Microsoft Entra
Application card in that environment (401) -> charge the environment's sliding window for the identity (429) ->
take an in-flight slot or queue (429 when full, 503 on queue timeout) -> latency and injected faults -> execute
against that environment's data. `GET /environments/v1.2` lists the token's tenant's environments.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sandbox.bc.api import JSON_TYPE, ApiRequest, ApiResponse, refuse_read_only_write
from sandbox.bc.batch import batch_size, run_batch
from sandbox.bc.control import ANONYMOUS, DROPPED, BcControl
from sandbox.bc.environment import BcEnvironment
from sandbox.bc.errors import BcError, no_route, not_found_segment
from sandbox.bc.faults import AFTER_RUNNING, Fault
from sandbox.bc.subscription_api import SubscriptionApi, is_subscriptions_path
from sandbox.config import BC_RESOURCE, SandboxConfig
from sandbox.errors import TokenRejectedError
from sandbox.tokens import TokenAuthority, TokenClaims

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
        tenant_ids: Sequence[str] = (),
    ) -> None:
        self._config = config
        self._control = control
        self._authority = authority
        self._tenant_id = tenant_id
        self._tenant_ids = frozenset(tenant_ids or (tenant_id,))
        self._tenant_ids_lower = frozenset(t.lower() for t in self._tenant_ids)
        self._authority_host = authority_host
        self._subscriptions = SubscriptionApi(config, control.webhooks, control.webhooks.clock)

    def app(self) -> TransportCapture:
        """The ASGI app (wrapped so that a fault can drop the TCP connection)."""
        routes = [
            Route("/v2.0/{rest:path}", self.handle, methods=_METHODS),
            Route("/environments/v1.2", self.environments, methods=["GET"]),
        ]
        return TransportCapture(Starlette(routes=routes))

    async def handle(self, request: Request) -> Response:
        """Every BC request."""
        correlation = str(uuid.uuid4())
        identity, env = ANONYMOUS, None
        headers = request.headers
        self._control.note_headers(
            request.method, headers.get("user-agent"), headers.get("data-access-intent")
        )
        try:
            root = split_path(request.url.path, self._config.bc_custom_apis)
            claims = self._authenticate(request, root.tenant)
            identity = claims.oid
            env = self._environment(root, claims)
            if not root.published:
                raise no_route(str(request.url))
            body = await request.body()
            response = await self._admitted(request, root, env, identity, body)
        except BcError as exc:
            response = ApiResponse(exc.status, exc.body(correlation), dict(exc.headers))
        except _DroppedError:
            self._control.count(identity, DROPPED, env)
            return await _drop(request.scope)
        self._control.count(identity, response.status, env)
        return _http(response, correlation)

    async def environments(self, request: Request) -> Response:
        """BC's environment discovery (learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/
        api-get-environments): the token's tenant's environments, `webServiceUrl` being where this sandbox serves
        each one (`{webServiceUrl}/api/v2.0/...`)."""
        correlation = str(uuid.uuid4())
        try:
            claims = self._authenticate(request, None)
        except BcError as exc:
            return _http(ApiResponse(exc.status, exc.body(correlation), dict(exc.headers)), correlation)
        base = f"https://{request.headers.get('host', request.url.netloc)}"
        listed = [_environment_entry(env, base) for env in self._control.tenant_environments(claims.tid)]
        return JSONResponse({"value": listed})

    def _environment(self, root: ApiRoot, claims: TokenClaims) -> BcEnvironment:
        """The environment the URL names, in the URL's tenant or else the token's; its card must list the app."""
        env = self._control.find(root.tenant or claims.tid, root.environment)
        if env is None:
            # UNCONFIRMED: BC's status and code for an environment the tenant does not have (no Microsoft page
            # shows the body); 404 as for any unknown resource.
            raise BcError(
                404, "BadRequest_ResourceNotFound", f"The environment '{root.environment}' does not exist."
            )
        if not claims.delegated and not self._control.is_registered(env, claims.appid):
            # No Microsoft Entra Application card for the app in this environment: 401 with the body BC sends for
            # rejected S2S credentials (bc-facts.md 3d "Common 401 causes for S2S"; body as in
            # github.com/microsoft/nav-docker/issues/570).
            raise self._rejected(env.tenant_id)
        return env

    def _challenge(self, tenant: str | None) -> dict[str, str]:
        """WWW-Authenticate naming the authority of the URL's tenant (the primary one when the URL has none or an
        unknown one), so a client can tell where to get a token."""
        known = tenant if tenant is not None and tenant.lower() in self._tenant_ids_lower else self._tenant_id
        uri = f"{self._authority_host}/{known}/oauth2/authorize"
        return {"WWW-Authenticate": f'Bearer authorization_uri="{uri}", resource_id="{BC_RESOURCE}"'}

    def _rejected(self, tenant: str | None) -> BcError:
        return BcError(
            401,
            "Authentication_InvalidCredentials",
            "The server has rejected the client credentials.",
            self._challenge(tenant),
        )

    def _authenticate(self, request: Request, route_tenant: str | None) -> TokenClaims:
        header = request.headers.get("authorization", "")
        rejected = self._rejected(route_tenant)
        if not header.lower().startswith("bearer "):
            raise rejected
        try:
            claims = self._authority.validate(
                header[7:].strip(), BC_RESOURCE, self._tenant_ids, self._config.bc_token_clock_skew_seconds
            )
        except TokenRejectedError:
            raise rejected from None
        if route_tenant is not None and route_tenant.lower() != claims.tid.lower():
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
                self._challenge(route_tenant),
            )
        return claims

    async def _admitted(
        self, request: Request, root: ApiRoot, env: BcEnvironment, identity: str, body: bytes
    ) -> ApiResponse:
        limits = self._control.current_limits()
        is_batch = root.rest.strip("/") == "$batch"
        weight = max(1, batch_size(body)) if is_batch and self._config.bc_batch_counts_operations else 1
        limiter = env.limiter  # per identity per environment (reference section (b), "Throttle scope")
        with self._control.lock:
            limiter.charge(identity, weight, limits)
        try:
            await limiter.acquire(identity, limits)
        except BcError as exc:
            if exc.status == 429 and weight > 1:
                limiter.refund(identity, weight - 1)  # acquire already gave one back
            raise
        try:
            plan = self._control.plan(is_write=request.method != "GET")
            if plan.delay_ms > 0:
                await asyncio.sleep(plan.delay_ms / 1000)
            if plan.error in AFTER_RUNNING:
                with contextlib.suppress(BcError):  # the operation's own answer is lost in the timeout
                    await self._execute(request, root, env, body, is_batch, identity)
            if plan.error is not None:
                raise self._fault(plan.error)
            response = await self._execute(request, root, env, body, is_batch, identity)
            if plan.ambiguous_write and response.wrote:
                self._control.count_fault(Fault.AMBIGUOUS_WRITE)
                raise _DroppedError
            return response
        finally:
            limiter.release(identity)

    async def _execute(
        self, request: Request, root: ApiRoot, env: BcEnvironment, body: bytes, is_batch: bool, identity: str
    ) -> ApiResponse:
        """Run the request against the store (a whole $batch, or one operation; webhook subscriptions, whose
        handshake is awaited outside the lock)."""
        api_request = ApiRequest(
            method=request.method,
            path=root.rest,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            root_url=f"https://{request.headers.get('host', request.url.netloc)}{root.root_path}",
        )
        # Every write, a $batch and a webhook subscription's too (their paths skip BcApi.execute's own check).
        refuse_read_only_write(api_request.method, api_request.headers)
        if not is_batch and is_subscriptions_path(root.rest):
            api_route = root.root_path.split("/api/", 1)[1]
            return await self._subscriptions.execute(api_request, env, api_route, identity)
        with self._control.lock:
            if not is_batch:
                return env.api.execute(api_request)
            if request.method != "POST":
                raise BcError(405, "BadRequest_MethodNotAllowed", "$batch accepts POST only.")
            return run_batch(env.api, env.store, api_request, root.root_path + "/", self._config)

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


def _environment_entry(env: BcEnvironment, base: str) -> dict[str, str]:
    """One entry of the environments endpoint (fields as its Learn page lists them)."""
    return {
        "aadTenantId": env.tenant_id,
        "applicationFamily": "BusinessCentral",
        "type": env.type,
        "name": env.name,
        "countryCode": "US",
        # UNCONFIRMED: the exact form of webServiceUrl online; here the URL every API route of the environment
        # hangs off, with the tenant in it (the sandbox routes by it).
        "webServiceUrl": f"{base}/v2.0/{env.tenant_id}/{env.name}",
        "webClientLoginUrl": f"https://businesscentral.dynamics.com/{env.tenant_id}/{env.name}",
        "ringName": "PROD",
    }


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
