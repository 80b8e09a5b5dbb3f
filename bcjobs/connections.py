"""Clients of the connection registry's HTTP API: list, show, register and delete connections and their identities.

    from bcjobs.connections import ConnectionsClient

    with ConnectionsClient("https://bc-app.azurewebsites.net", function_key) as admin:
        admin.put_connection("fabrikam", {"tenantId": "fabrikam.onmicrosoft.com", "environment": "production",
                                          "clientId": "..."}, client_secret=secret)   # the secret goes to Key Vault
        for connection in admin.connections():
            print(connection.name, connection.environment, connection.enabled)

A connection's pool of identities (BC's limits are per app: more apps, more throughput) is managed beside it:

        admin.put_identity("fabrikam", "second", {"clientId": "..."}, client_secret=other_secret)
        for identity in admin.identities("fabrikam"):
            print(identity.name, identity.client_id, (identity.health or {}).get("health"))
        admin.check_connection("fabrikam", identity="second")

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


class IdentityInfo(BaseModel):
    """One identity of a connection's pool as the API shows it (never a secret): its app, where its credential
    lives, its token `health` (GET .../identities) and, after a PUT, the admin's `next_steps`."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str
    client_id: str
    credential: str = "settings"
    secret_name: str | None = None
    secret_version: str | None = None
    managed_identity_client_id: str | None = None
    primary: bool = False
    health: dict[str, Any] | None = None
    next_steps: tuple[str, ...] = ()
    links: dict[str, str] = {}


class CheckStepInfo(BaseModel):
    """One step of a connection's check: what was found, and the fix when it failed."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str
    ok: bool
    detail: str
    fix: str | None = None


class CheckResult(BaseModel):
    """POST /api/connections/{name}/check: the steps run, in order, up to the first failure, for one identity
    (`identity`); a check of the whole pool has the primary's steps, `ok` for all, and `identities`: one each."""

    model_config = ConfigDict(frozen=True, extra="allow")

    connection: str
    ok: bool
    steps: tuple[CheckStepInfo, ...]
    identity: str = "primary"
    identities: tuple[CheckResult, ...] = ()


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


def _for(identity: str | None) -> str:
    return "" if identity is None else f"?identity={quote(identity, safe='')}"


def check_flow(
    http: HttpCall, base_url: str, name: str, identity: str | None = None
) -> flows.Flow[CheckResult | None]:
    """POST /api/connections/{name}/check (every identity, or `?identity=`); None for an unknown connection."""
    url = f"{_url(base_url, name)}/check{_for(identity)}"
    answer = yield from flows.ask(partial(http, "POST", url, None))
    if answer.status == 404:
        return None
    return CheckResult.model_validate(_json(answer, f"checking connection {name}"))


def consent_flow(
    http: HttpCall, base_url: str, name: str, identity: str | None = None
) -> flows.Flow[ConsentLinkInfo | None]:
    """GET /api/connections/{name}/consent (`?identity=`: that identity's app); None for an unknown connection."""
    url = f"{_url(base_url, name)}/consent{_for(identity)}"
    answer = yield from flows.ask(partial(http, "GET", url, None))
    if answer.status == 404:
        return None
    return ConsentLinkInfo.model_validate(_json(answer, f"making a consent link for connection {name}"))


def _identities_url(base_url: str, connection: str, identity: str | None = None) -> str:
    base = f"{_url(base_url, connection)}/identities"
    return base if identity is None else f"{base}/{quote(identity, safe='')}"


def identities_flow(http: HttpCall, base_url: str, name: str) -> flows.Flow[list[IdentityInfo]]:
    """GET /api/connections/{name}/identities: the pool, primary first, each with its health."""
    answer = yield from flows.ask(partial(http, "GET", _identities_url(base_url, name), None))
    body = _json(answer, f"listing the identities of connection {name}")
    return [IdentityInfo.model_validate(item) for item in body["identities"]]


def put_identity_flow(
    http: HttpCall,
    base_url: str,
    name: str,
    identity: str,
    spec: Mapping[str, object],
    client_secret: str | None,
) -> flows.Flow[IdentityInfo]:
    """PUT /api/connections/{name}/identities/{identity} (the secret only in the body, never in an error)."""
    body = {**spec, **({"clientSecret": client_secret} if client_secret is not None else {})}
    data = json.dumps(body).encode("utf-8")
    answer = yield from flows.ask(partial(http, "PUT", _identities_url(base_url, name, identity), data))
    return IdentityInfo.model_validate(_json(answer, f"saving identity {identity} of connection {name}"))


def delete_identity_flow(http: HttpCall, base_url: str, name: str, identity: str) -> flows.Flow[bool]:
    """DELETE /api/connections/{name}/identities/{identity}; False when the connection has no such identity."""
    answer = yield from flows.ask(partial(http, "DELETE", _identities_url(base_url, name, identity), None))
    if answer.status == 204:
        return True
    if answer.status == 404 and b'"not_found"' in answer.body:
        return False
    _json(answer, f"removing identity {identity} of connection {name}")
    return True


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

    def check_connection(self, name: str, *, identity: str | None = None) -> CheckResult | None:
        """Run the connection's check (token, environment, BC accepts the token, company, a read) for every
        identity of its pool, or only `identity`; None when there is no connection of that name."""
        return flows.carry_out(check_flow(self._call, self.api_url, name, identity))

    def consent_link(self, name: str, *, identity: str | None = None) -> ConsentLinkInfo | None:
        """A one-time admin-consent link for the connection's tenant (`identity`: for that identity's app); None
        when there is no such connection."""
        return flows.carry_out(consent_flow(self._call, self.api_url, name, identity))

    def identities(self, name: str) -> builtins.list[IdentityInfo]:
        """The connection's pool, primary first, each with its token health."""
        return flows.carry_out(identities_flow(self._call, self.api_url, name))

    def put_identity(
        self, name: str, identity: str, spec: Mapping[str, object], *, client_secret: str | None = None
    ) -> IdentityInfo:
        """Add or replace one identity (camelCase fields: clientId, credential, secretName,
        managedIdentityClientId); `client_secret` goes to the app's Key Vault. The answer's `next_steps` say what
        the admin does next (BC's Microsoft Entra Applications page, consent, the check)."""
        return flows.carry_out(
            put_identity_flow(self._call, self.api_url, name, identity, spec, client_secret)
        )

    def delete_identity(self, name: str, identity: str) -> bool:
        """Remove one identity (never `primary`) and its secrets; False when the connection has none of that name."""
        return flows.carry_out(delete_identity_flow(self._call, self.api_url, name, identity))

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

    async def check_connection(self, name: str, *, identity: str | None = None) -> CheckResult | None:
        """Run the connection's check (token, environment, BC accepts the token, company, a read) for every
        identity of its pool, or only `identity`; None when there is no connection of that name."""
        return await flows.carry_out_async(check_flow(self._call, self.api_url, name, identity))

    async def consent_link(self, name: str, *, identity: str | None = None) -> ConsentLinkInfo | None:
        """A one-time admin-consent link for the connection's tenant (`identity`: for that identity's app); None
        when there is no such connection."""
        return await flows.carry_out_async(consent_flow(self._call, self.api_url, name, identity))

    async def identities(self, name: str) -> builtins.list[IdentityInfo]:
        """The connection's pool, primary first, each with its token health."""
        return await flows.carry_out_async(identities_flow(self._call, self.api_url, name))

    async def put_identity(
        self, name: str, identity: str, spec: Mapping[str, object], *, client_secret: str | None = None
    ) -> IdentityInfo:
        """Add or replace one identity; `client_secret` goes to the app's Key Vault (see ConnectionsClient)."""
        flow = put_identity_flow(self._call, self.api_url, name, identity, spec, client_secret)
        return await flows.carry_out_async(flow)

    async def delete_identity(self, name: str, identity: str) -> bool:
        """Remove one identity (never `primary`) and its secrets; False when the connection has none of that name."""
        return await flows.carry_out_async(delete_identity_flow(self._call, self.api_url, name, identity))

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
