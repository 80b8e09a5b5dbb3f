"""The HTTP front: an ASGI app that routes /<routePrefix>/<route> to HTTP functions, checks keys, converts I/O.

Requests become azure.functions.HttpRequest (headers, query, route params, body); the returned HttpResponse
(or str) becomes the response with its status, headers (Location and repeated Set-Cookie included) and body.
A function that raises gives 500 with an empty body, as the host does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import azure.functions as func
from azure.functions.http import HttpRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from devhost.auth import HostKeys, is_authorized, presented_key, refusal
from devhost.catalog import HttpFunction
from devhost.invoker import Invoker
from devhost.routing import RouteEntry, Router

_log = logging.getLogger("devhost.http")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]


def _joined(items: list[tuple[str, str]]) -> dict[str, str]:
    """Repeated headers/query keys joined with commas, as ASP.NET presents them to the worker."""
    joined: dict[str, str] = {}
    for key, value in items:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def to_function_request(request: Request, body: bytes, route_params: Mapping[str, str]) -> HttpRequest:
    """The azure.functions request object the worker would build."""
    return HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=_joined([(k, v) for k, v in request.headers.items()]),
        params=_joined(list(request.query_params.multi_items())),
        route_params=dict(route_params),
        body_type="bytes",
        body=body,
    )


def to_response(value: Any) -> Response:
    """Turn a function's return value into a response (None gives 204, a str gives 200 text/plain)."""
    if value is None:
        return Response(status_code=204)
    if isinstance(value, str):
        value = func.HttpResponse(value)
    if not isinstance(value, func.HttpResponse):
        _log.error("HTTP function returned %s, not HttpResponse", type(value).__name__)
        return Response(status_code=500)
    response = Response(content=value.get_body(), status_code=value.status_code)
    headers = list(value.headers.items())
    if not any(name.lower() == "content-type" for name, _ in headers):
        charset = f"; charset={value.charset}" if value.mimetype.startswith("text/") else ""
        headers.append(("Content-Type", f"{value.mimetype}{charset}"))
    response.raw_headers.extend(
        (name.lower().encode("latin-1"), str(header).encode("latin-1"))
        for name, header in headers
        if name.lower() != "content-length"
    )
    return response


def under_prefix(path: str, prefix: str) -> str | None:
    """The path after the route prefix ("/api"), or None when the path is not under it.

    The prefix is part of one ASP.NET Core route template per function, "<routePrefix>/<route>"
    (Azure/azure-webjobs-sdk-extensions src/WebJobs.Extensions.Http/Routing/WebJobsRouteBuilder.cs
    BuildRouteTemplate, used by azure-functions-host WebScriptHostHttpRoutesManager.cs), and ASP.NET Core matches a
    template's literal text ignoring case (learn.microsoft.com/aspnet/core/fundamentals/routing, "Route
    templates"), so /API/health reaches the same function as /api/health, as the rest of the route already did.
    """
    if not prefix:
        return path
    head = path[: len(prefix)]
    if head.lower() != prefix.lower() or path[len(prefix) :][:1] not in ("", "/"):
        return None
    return path[len(prefix) :]


class HttpFront:
    """Routing, auth and invocation for every HTTP function."""

    def __init__(
        self, functions: tuple[HttpFunction, ...], invoker: Invoker, keys: HostKeys, route_prefix: str
    ) -> None:
        self._router = Router(RouteEntry(f.route, f.methods, f) for f in functions)
        self._invoker = invoker
        self._keys = keys
        self._prefix = f"/{route_prefix}" if route_prefix else ""

    def asgi_app(self) -> Starlette:
        """A Starlette app sending every path and method to handle()."""
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=_METHODS)])

    async def handle(self, request: Request) -> Response:
        """Route, authorize, invoke, convert."""
        started = time.perf_counter()
        response = await self._respond(request)
        _log.info(
            "%s %s -> %d",
            request.method,
            request.url.path,
            response.status_code,
            extra={
                "fields": {
                    "event": "http",
                    "method": request.method,
                    "path": request.url.path,  # never the query: it may carry ?code=
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                }
            },
        )
        return response

    async def _respond(self, request: Request) -> Response:
        path = request.url.path
        route_path = under_prefix(path, self._prefix)
        if route_path is None:
            return Response(status_code=404)
        found = self._router.match(request.method, route_path)
        if found is None:
            return Response(status_code=404)
        function, route_params = found
        key = presented_key(request.headers, request.query_params)
        if not is_authorized(function.auth_level, key, self._keys, function.spec.name):
            return PlainTextResponse(refusal(function.auth_level, key, function.spec.name), status_code=401)
        body = await request.body()
        result = await self._invoker.invoke(
            function.spec,
            to_function_request(request, body, route_params),
            reason="http",
            details={"method": request.method, "path": path},
        )
        return to_response(result.value) if result.succeeded else Response(status_code=500)
