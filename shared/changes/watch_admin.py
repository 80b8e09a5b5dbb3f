"""The watches' HTTP API without azure.functions (shared/triggers/watches_http.py only maps the Reply):
`GET /api/connections/{name}/watches`, `GET|PUT|DELETE /api/connections/{name}/watches/{watch}` (function key).

Like the connections API (shared/connections/admin.py): PUT creates (201) or replaces (200) with the watch's
camelCase fields (`entitySet`, `companyId`, `api`, `includeData`, `select`, `enabled`) — `connection` and `name` are
the URL's; 400 names each field and its fix, never a submitted value; 404 for an unknown connection or watch; 503
with a reference the log line carries with the cause. The subscription manager's next run (within
BC_SUBSCRIPTIONS_SCHEDULE) creates or deletes the BC subscription; every process sees the change within 30 s.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from pydantic import ValidationError

from shared.changes.watch import Watch
from shared.connections.connection import CONNECTION_NAME_PATTERN, Connection
from shared.errors import IntegrationError, SettingsError
from shared.http import Reply, json_reply

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024
MAX_WATCHES = 50  # per connection: each is a subscription per company of BC's 200 per environment
UNAVAILABLE_RETRY_AFTER = "10"
_FIXES = {
    "entitySet": "the API's entity set name, e.g. customers, salesOrders, items",
    "companyId": "the company's id (GET .../api/v2.0/companies), a GUID; leave it out for the connection's",
    "api": 'a custom API as "publisher/group/version", e.g. "contoso/app/v1.0"; leave it out for api/v2.0',
    "includeData": "true to carry the entity in each event (when it fits), false for a reference",
    "select": 'a list of field names, e.g. ["number", "displayName"]',
    "enabled": "true or false",
}


class _Connections(Protocol):
    async def find(self, name: str | None) -> Connection | None: ...


class _Watches(Protocol):
    async def fresh(self, connection: str) -> list[Watch]: ...

    async def put(self, watch: Watch) -> None: ...

    async def delete(self, connection: str, name: str) -> bool: ...


class _Progress(Protocol):
    async def forget(self, connection: str, watch: str) -> None: ...


@dataclass(frozen=True, slots=True)
class WatchesAdmin:
    """What the routes work with: the connection registry, the watch directory and reconciliation's progress (a
    deleted watch, or one now following something else, starts afresh: its known ids are another set's)."""

    connections: _Connections
    watches: _Watches
    progress: _Progress


WatchesAdminSource = Callable[[], Awaitable[WatchesAdmin]]


class _RefusedError(IntegrationError):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        super().__init__(reply.body)


async def list_watches(admin: WatchesAdminSource, connection: str, *, base_url: str) -> Reply:
    """200 with the connection's watches; 404; 503."""
    try:
        services = await admin()
        await _connection(services, connection)
        found = await services.watches.fresh(connection)
    except _RefusedError as refused:
        return refused.reply
    except (IntegrationError, SettingsError) as exc:
        return _unavailable(exc)
    return json_reply(200, {"watches": [watch_body(w, base_url) for w in found]})


async def show_watch(admin: WatchesAdminSource, connection: str, name: str, *, base_url: str) -> Reply:
    """200 with the watch; 404; 400; 503."""
    try:
        services = await admin()
        await _connection(services, connection)
        found = _named(await services.watches.fresh(connection), connection, name)
    except _RefusedError as refused:
        return refused.reply
    except (IntegrationError, SettingsError) as exc:
        return _unavailable(exc)
    return json_reply(200, watch_body(found, base_url))


async def put_watch(
    admin: WatchesAdminSource, connection: str, name: str, body: bytes, *, base_url: str
) -> Reply:
    """201 created / 200 replaced; 400 naming each bad field; 404 for an unknown connection; 409 when full."""
    try:
        services = await admin()
        found = await _connection(services, connection)
        watch = _validated(found, name, _json_object(body))
        existing = await services.watches.fresh(connection)
        before = next((w for w in existing if w.name == name), None)
        created = before is None
        if created and len(existing) >= MAX_WATCHES:
            raise _RefusedError(_error(409, "too_many_watches", _full(connection)))
        await services.watches.put(watch)
        if before is None or _followed(before) != _followed(watch):
            await services.progress.forget(connection, name)
    except _RefusedError as refused:
        return refused.reply
    except (IntegrationError, SettingsError) as exc:
        return _unavailable(exc)
    _log(watch.connection, name, "created" if created else "replaced")
    headers = {"Location": watch_url(base_url, connection, name)} if created else {}
    return json_reply(201 if created else 200, watch_body(watch, base_url), headers)


async def delete_watch(admin: WatchesAdminSource, connection: str, name: str) -> Reply:
    """204 deleted (its subscriptions go at the manager's next run); 404; 400; 503."""
    try:
        services = await admin()
        await _connection(services, connection)
        if not _valid(name) or not await services.watches.delete(connection, name):
            raise _RefusedError(_not_found(connection, name))
        await services.progress.forget(connection, name)
    except _RefusedError as refused:
        return refused.reply
    except (IntegrationError, SettingsError) as exc:
        return _unavailable(exc)
    _log(connection, name, "deleted")
    return Reply(204)


def _followed(watch: Watch) -> tuple[object, ...]:
    """What a watch's reconciliation progress is about: the same entity set of the same company and API."""
    return watch.entity_set, watch.company_id, watch.api


def watch_body(watch: Watch, base_url: str) -> dict[str, Any]:
    """The watch's wire JSON and its link."""
    body: dict[str, Any] = watch.model_dump(mode="json", by_alias=True, exclude_none=True)
    body["links"] = {"self": watch_url(base_url, watch.connection, watch.name)}
    return body


def watch_url(base_url: str, connection: str, name: str) -> str:
    """`{base}/api/connections/{connection}/watches/{name}`."""
    return (
        f"{base_url.rstrip('/')}/api/connections/{quote(connection, safe='')}/watches/{quote(name, safe='')}"
    )


async def _connection(services: WatchesAdmin, name: str) -> Connection:
    found = await services.connections.find(name) if _valid(name) else None
    if found is None:
        message = (
            f"no connection '{name}': list them with GET /api/connections (or `bcjobs connections list`)"
        )
        raise _RefusedError(_error(404, "connection_not_found", message))
    return found


def _named(watches: list[Watch], connection: str, name: str) -> Watch:
    found = next((w for w in watches if w.name == name), None)
    if found is None:
        raise _RefusedError(_not_found(connection, name))
    return found


def _valid(name: str) -> bool:
    return re.fullmatch(CONNECTION_NAME_PATTERN, name) is not None


def _json_object(body: bytes) -> dict[str, object]:
    if len(body) > MAX_BODY_BYTES:
        raise _RefusedError(_error(413, "body_too_large", f"a watch is at most {MAX_BODY_BYTES} bytes"))
    try:
        value = json.loads(body or b"null")
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise _RefusedError(
            _error(400, "invalid_body", 'send the watch as a JSON object, e.g. {"entitySet": "customers"}')
        )
    return value


def _validated(connection: Connection, name: str, fields: dict[str, object]) -> Watch:
    read_only = [_field(key, "the URL's") for key in ("connection", "name") if key in fields]
    if read_only:
        raise _RefusedError(_invalid(read_only))
    try:
        watch = Watch.model_validate({**fields, "connection": connection.name, "name": name})
    except ValidationError as exc:
        raise _RefusedError(_invalid(_problems(exc))) from None
    if not connection.allows_api(watch.api):
        fix = f"add it to the connection's customApis (PUT /api/connections/{connection.name})"
        raise _RefusedError(_invalid([_field("api", f"connection '{connection.name}' may not call it", fix)]))
    return watch


def _problems(exc: ValidationError) -> list[dict[str, str]]:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        top = str(error["loc"][0]) if error["loc"] else ""
        problems.append(_field(field, error["msg"], _FIXES.get(top)))
    return problems


def _field(field: str, problem: str, fix: str | None = None) -> dict[str, str]:
    return {"field": field, "problem": problem, **({"fix": fix} if fix else {})}


def _invalid(problems: list[dict[str, str]]) -> Reply:
    message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return json_reply(400, {"error": "invalid_watch", "message": message, "fields": problems})


def _error(status: int, code: str, message: str) -> Reply:
    return json_reply(status, {"error": code, "message": message})


def _not_found(connection: str, name: str) -> Reply:
    listing = (
        f"GET /api/connections/{connection}/watches (or `bcjobs watches list --connection {connection}`)"
    )
    return _error(404, "not_found", f"no watch '{name}': list them with {listing}")


def _full(connection: str) -> str:
    return (
        f"connection '{connection}' has {MAX_WATCHES} watches, the most one connection may have (each takes BC "
        "subscriptions from the environment's 200); delete one first"
    )


def _log(connection: str, name: str, change: str) -> None:
    logger.info(
        "watch %s/%s %s", connection, name, change,
        extra={"event": f"changes.watch_{change}", "connection": connection, "watch": name},
    )  # fmt: skip


def _unavailable(exc: Exception) -> Reply:
    """503 with a reference that the log line carries with the cause (our errors name SDK types, not values)."""
    reference = uuid.uuid4().hex[:12]
    logger.error(
        "watches API: storage failed (ref %s): %s", reference, exc,
        extra={"event": "changes.watches_storage_failed", "reference": reference},
    )  # fmt: skip
    body = {"error": "unavailable", "message": "try again shortly", "reference": reference}
    return json_reply(503, body, {"Retry-After": UNAVAILABLE_RETRY_AFTER})
