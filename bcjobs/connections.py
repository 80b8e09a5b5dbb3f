"""Clients of the connection registry's HTTP API: list, show, register and delete connections.

    from bcjobs.connections import ConnectionsClient

    with ConnectionsClient("https://bc-app.azurewebsites.net", function_key) as admin:
        admin.put_connection("fabrikam", {"tenantId": "fabrikam.onmicrosoft.com", "environment": "production",
                                          "clientId": "..."}, client_secret=secret)   # the secret goes to Key Vault
        for connection in admin.connections():
            print(connection.name, connection.environment, connection.enabled)

Unlike the jobs clients (Azure Storage), these talk to the Function app (`/api/connections`, function key in the
`x-functions-key` header): registering a client secret writes it to the app's Key Vault, which only the app can
do. `AsyncConnectionsClient` is the async twin; both carry out the same flows (`bcjobs._flows`), over `requests`
and `aiohttp` respectively. The client secret is sent once, in the PUT body, and never kept, logged or returned.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from bcjobs import _flows as flows
from bcjobs.api_session import ApiError, ApiSession, AsyncApiSession, HttpAnswer, read_json


class ConnectionInfo(BaseModel):
    """A connection as the API shows it (never a secret); fields the app adds later are kept as extras."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str
    tenant_id: str
    environment: str
    mode: str = "client_credentials"
    client_id: str
    company_id: str | None = None
    company_name: str | None = None
    credential: str = "settings"
    secret_name: str | None = None
    secret_version: str | None = None
    custom_apis: tuple[str, ...] | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    from_settings: bool = False
    links: dict[str, str] = {}


class WatchInfo(BaseModel):
    """A watch as the API shows it: which entity set of which company the change feed follows."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="allow")

    connection: str
    name: str
    entity_set: str
    company_id: str | None = None
    api: str | None = None
    include_data: bool = False
    select: tuple[str, ...] | None = None
    enabled: bool = True
    links: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    """What DELETE did: deleted (204), or disabled because jobs were pending (202, `message` says so)."""

    deleted: bool
    pending_jobs: int = 0
    message: str = ""


class CheckStepInfo(BaseModel):
    """One step of a connection's check: what was found, and the fix when it failed."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str
    ok: bool
    detail: str
    fix: str | None = None


class CheckResult(BaseModel):
    """POST /api/connections/{name}/check: the steps run, in order, up to the first failure."""

    model_config = ConfigDict(frozen=True, extra="allow")

    connection: str
    ok: bool
    steps: tuple[CheckStepInfo, ...]


class ConsentLinkInfo(BaseModel):
    """GET /api/connections/{name}/consent: a one-time admin-consent link (10 minutes) for its tenant."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="allow")

    connection: str
    consent_url: str
    redirect_uri: str
    expires_at: str
    next_step: str = ""


class ConnectionsApiError(ApiError):
    """The API refused or failed a request; `status` (None: no answer), `code`, `fields` and the API's message."""


HttpCall = Callable[[str, str, bytes | None], "HttpAnswer | Awaitable[HttpAnswer]"]


# -- flows ---------------------------------------------------------------------------------------------------


def _url(base_url: str, name: str | None = None) -> str:
    base = f"{base_url.rstrip('/')}/api/connections"
    return base if name is None else f"{base}/{quote(name, safe='')}"


def list_flow(http: HttpCall, base_url: str) -> flows.Flow[list[ConnectionInfo]]:
    """GET /api/connections."""
    answer = yield from flows.ask(partial(http, "GET", _url(base_url), None))
    body = _json(answer, "listing connections")
    return [ConnectionInfo.model_validate(item) for item in body["connections"]]


def show_flow(http: HttpCall, base_url: str, name: str) -> flows.Flow[ConnectionInfo | None]:
    """GET /api/connections/{name}; None for an unknown connection."""
    answer = yield from flows.ask(partial(http, "GET", _url(base_url, name), None))
    if answer.status == 404:
        return None
    return ConnectionInfo.model_validate(_json(answer, f"reading connection {name}"))


def put_flow(
    http: HttpCall, base_url: str, name: str, spec: Mapping[str, object], client_secret: str | None
) -> flows.Flow[ConnectionInfo]:
    """PUT /api/connections/{name} (the secret only in the body, never in an error)."""
    body = {**spec, **({"clientSecret": client_secret} if client_secret is not None else {})}
    data = json.dumps(body).encode("utf-8")
    answer = yield from flows.ask(partial(http, "PUT", _url(base_url, name), data))
    return ConnectionInfo.model_validate(_json(answer, f"registering connection {name}"))


def delete_flow(http: HttpCall, base_url: str, name: str) -> flows.Flow[DeleteOutcome]:
    """DELETE /api/connections/{name}."""
    answer = yield from flows.ask(partial(http, "DELETE", _url(base_url, name), None))
    if answer.status == 204:
        return DeleteOutcome(deleted=True)
    body = _json(answer, f"deleting connection {name}")
    return DeleteOutcome(False, int(body.get("pendingJobs", 0)), str(body.get("message", "")))


def check_flow(http: HttpCall, base_url: str, name: str) -> flows.Flow[CheckResult | None]:
    """POST /api/connections/{name}/check; None for an unknown connection."""
    answer = yield from flows.ask(partial(http, "POST", f"{_url(base_url, name)}/check", None))
    if answer.status == 404:
        return None
    return CheckResult.model_validate(_json(answer, f"checking connection {name}"))


def consent_flow(http: HttpCall, base_url: str, name: str) -> flows.Flow[ConsentLinkInfo | None]:
    """GET /api/connections/{name}/consent; None for an unknown connection."""
    answer = yield from flows.ask(partial(http, "GET", f"{_url(base_url, name)}/consent", None))
    if answer.status == 404:
        return None
    return ConsentLinkInfo.model_validate(_json(answer, f"making a consent link for connection {name}"))


def _watches_url(base_url: str, connection: str, name: str | None = None) -> str:
    base = f"{_url(base_url, connection)}/watches"
    return base if name is None else f"{base}/{quote(name, safe='')}"


def watches_flow(http: HttpCall, base_url: str, connection: str) -> flows.Flow[list[WatchInfo]]:
    """GET /api/connections/{connection}/watches."""
    answer = yield from flows.ask(partial(http, "GET", _watches_url(base_url, connection), None))
    body = _json(answer, f"listing the watches of connection {connection}")
    return [WatchInfo.model_validate(item) for item in body["watches"]]


def watch_flow(http: HttpCall, base_url: str, connection: str, name: str) -> flows.Flow[WatchInfo | None]:
    """GET /api/connections/{connection}/watches/{name}; None for an unknown watch."""
    answer = yield from flows.ask(partial(http, "GET", _watches_url(base_url, connection, name), None))
    if answer.status == 404 and b'"not_found"' in answer.body:
        return None
    return WatchInfo.model_validate(_json(answer, f"reading watch {connection}/{name}"))


def put_watch_flow(
    http: HttpCall, base_url: str, connection: str, name: str, spec: Mapping[str, object]
) -> flows.Flow[WatchInfo]:
    """PUT /api/connections/{connection}/watches/{name}."""
    data = json.dumps(dict(spec)).encode("utf-8")
    answer = yield from flows.ask(partial(http, "PUT", _watches_url(base_url, connection, name), data))
    return WatchInfo.model_validate(_json(answer, f"saving watch {connection}/{name}"))


def delete_watch_flow(http: HttpCall, base_url: str, connection: str, name: str) -> flows.Flow[bool]:
    """DELETE /api/connections/{connection}/watches/{name}; False when there was no such watch."""
    answer = yield from flows.ask(partial(http, "DELETE", _watches_url(base_url, connection, name), None))
    if answer.status == 204:
        return True
    if answer.status == 404 and b'"not_found"' in answer.body:
        return False
    _json(answer, f"deleting watch {connection}/{name}")
    return True


def _json(answer: HttpAnswer, doing: str) -> dict[str, Any]:
    return read_json(answer, doing, ConnectionsApiError)


# -- the twins -----------------------------------------------------------------------------------------------


class ConnectionsClient(ApiSession):
    """The registry API over `requests` (blocking); a context manager closing its session."""

    error = ConnectionsApiError

    def connections(self) -> builtins.list[ConnectionInfo]:
        """Every connection, the settings' one first (`from_settings`)."""
        return flows.carry_out(list_flow(self._call, self.api_url))

    def connection(self, name: str) -> ConnectionInfo | None:
        """One connection; None when there is none of that name."""
        return flows.carry_out(show_flow(self._call, self.api_url, name))

    def put_connection(
        self, name: str, spec: Mapping[str, object], *, client_secret: str | None = None
    ) -> ConnectionInfo:
        """Register or replace `name` (camelCase fields); `client_secret` goes to the app's Key Vault."""
        return flows.carry_out(put_flow(self._call, self.api_url, name, spec, client_secret))

    def delete_connection(self, name: str) -> DeleteOutcome:
        """Delete it, or (jobs pending) have the app disable it."""
        return flows.carry_out(delete_flow(self._call, self.api_url, name))

    def check_connection(self, name: str) -> CheckResult | None:
        """Run the connection's check (token, environment, BC accepts the token, company, a read); None when
        there is no connection of that name."""
        return flows.carry_out(check_flow(self._call, self.api_url, name))

    def consent_link(self, name: str) -> ConsentLinkInfo | None:
        """A one-time admin-consent link for the connection's tenant; None when there is no such connection."""
        return flows.carry_out(consent_flow(self._call, self.api_url, name))

    def watches(self, connection: str) -> builtins.list[WatchInfo]:
        """The connection's watches (what the change feed follows)."""
        return flows.carry_out(watches_flow(self._call, self.api_url, connection))

    def watch(self, connection: str, name: str) -> WatchInfo | None:
        """One watch; None when the connection has none of that name."""
        return flows.carry_out(watch_flow(self._call, self.api_url, connection, name))

    def put_watch(self, connection: str, name: str, spec: Mapping[str, object]) -> WatchInfo:
        """Create or replace a watch (camelCase fields: entitySet, companyId, api, includeData, select, enabled)."""
        return flows.carry_out(put_watch_flow(self._call, self.api_url, connection, name, spec))

    def delete_watch(self, connection: str, name: str) -> bool:
        """Delete a watch (its BC subscriptions go at the manager's next run); False when there was none."""
        return flows.carry_out(delete_watch_flow(self._call, self.api_url, connection, name))


class AsyncConnectionsClient(AsyncApiSession):
    """The registry API over `aiohttp`; an async context manager closing its session."""

    error = ConnectionsApiError

    async def connections(self) -> builtins.list[ConnectionInfo]:
        """Every connection, the settings' one first (`from_settings`)."""
        return await flows.carry_out_async(list_flow(self._call, self.api_url))

    async def connection(self, name: str) -> ConnectionInfo | None:
        """One connection; None when there is none of that name."""
        return await flows.carry_out_async(show_flow(self._call, self.api_url, name))

    async def put_connection(
        self, name: str, spec: Mapping[str, object], *, client_secret: str | None = None
    ) -> ConnectionInfo:
        """Register or replace `name` (camelCase fields); `client_secret` goes to the app's Key Vault."""
        return await flows.carry_out_async(put_flow(self._call, self.api_url, name, spec, client_secret))

    async def delete_connection(self, name: str) -> DeleteOutcome:
        """Delete it, or (jobs pending) have the app disable it."""
        return await flows.carry_out_async(delete_flow(self._call, self.api_url, name))

    async def check_connection(self, name: str) -> CheckResult | None:
        """Run the connection's check (token, environment, BC accepts the token, company, a read); None when
        there is no connection of that name."""
        return await flows.carry_out_async(check_flow(self._call, self.api_url, name))

    async def consent_link(self, name: str) -> ConsentLinkInfo | None:
        """A one-time admin-consent link for the connection's tenant; None when there is no such connection."""
        return await flows.carry_out_async(consent_flow(self._call, self.api_url, name))

    async def watches(self, connection: str) -> builtins.list[WatchInfo]:
        """The connection's watches (what the change feed follows)."""
        return await flows.carry_out_async(watches_flow(self._call, self.api_url, connection))

    async def watch(self, connection: str, name: str) -> WatchInfo | None:
        """One watch; None when the connection has none of that name."""
        return await flows.carry_out_async(watch_flow(self._call, self.api_url, connection, name))

    async def put_watch(self, connection: str, name: str, spec: Mapping[str, object]) -> WatchInfo:
        """Create or replace a watch (camelCase fields: entitySet, companyId, api, includeData, select, enabled)."""
        return await flows.carry_out_async(put_watch_flow(self._call, self.api_url, connection, name, spec))

    async def delete_watch(self, connection: str, name: str) -> bool:
        """Delete a watch (its BC subscriptions go at the manager's next run); False when there was none."""
        return await flows.carry_out_async(delete_watch_flow(self._call, self.api_url, connection, name))
