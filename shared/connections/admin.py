"""The registry's HTTP API without azure.functions (shared/triggers/connections_http.py only maps the Reply):
`GET /api/connections`, `GET|PUT|DELETE /api/connections/{name}` (function key).

- PUT creates (201) or replaces (200) a registered connection. The body is the connection's camelCase fields
  without `name` (the URL's) and `fromSettings` (read-only), plus an optional write-only `clientSecret`: it goes to
  Key Vault as `bc-conn-{name}-secret`, the row names the secret and its version (`secretName`, `secretVersion`)
  and never holds the value; a new version changes the definition, so every process rebuilds the connection's
  token manager within the registry's staleness (shared/connections/registry.py).
- DELETE of a connection with pending jobs disables it instead (202; its jobs end `rejected` with the reason when
  they come up); otherwise the row, its client secret and its token set go (Key Vault soft-delete), 204.
- The settings' connection (BC_CONNECTION_NAME) is listed and shown, never changed here (409).

Errors answer like the jobs front door: `{"error": code, "message": ...}`, 400s naming each field and its fix
(never a submitted value), 503 with Retry-After and a reference the log line carries with the cause. No secret is
ever in a reply, a log line or an error: the body's `clientSecret` is taken out before anything else reads it.
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

from shared.connections.connection import (
    CONNECTION_NAME_PATTERN,
    IDENTITY_SEPARATOR,
    PRIMARY_IDENTITY,
    Connection,
    Credential,
    Identity,
)
from shared.connections.errors import ConnectionUnusableError
from shared.errors import IntegrationError, SettingsError
from shared.http import Reply, json_reply

logger = logging.getLogger(__name__)

UNAVAILABLE_RETRY_AFTER = "10"
MAX_BODY_BYTES = 16 * 1024
MAX_SECRET_CHARS = 1024  # Entra client secrets are 40 characters; Key Vault takes up to 25 KB
PENDING_LIMIT = 1000  # DELETE counts pending jobs up to this many ("at least N")
# A connection's token set (shared/auth/keyvault.py; not imported: shared.auth imports this package).
TOKEN_SECRET_PREFIX = "bc-token-"
_READ_ONLY = {"name": "the name is the URL's", "fromSettings": "read-only: only the app settings define it"}
# A fix per field for 400s (pydantic's own message says what is wrong; this says what to send).
_FIXES = {
    "tenantId": "the customer's tenant id (a GUID) or one of its domains (contoso.onmicrosoft.com)",
    "environment": "the BC environment's name (Admin Center), e.g. production",
    "mode": "client_credentials or delegated",
    "clientId": "the app registration's Application (client) ID, a GUID",
    "companyId": "the company's id (GET .../api/v2.0/companies), a GUID",
    "credential": "settings (the deployment's own app registration), key_vault_secret or federated",
    "secretName": "a Key Vault secret name: 1-127 letters, digits and dashes",
    "secretVersion": "leave it out: PUT with clientSecret sets it",
    "customApis": 'a list like ["contoso/app/v1.0"], or leave it out for any',
    "managedIdentityClientId": "the user-assigned managed identity's client id (a GUID), with credential federated",
    "identities": "leave it out to keep the pool; add or replace one with PUT /api/connections/{name}/identities/{identity}",
}


def client_secret_name(name: str, identity: str | None = None) -> str:
    """The Key Vault secret that holds a connection's (or one of its identities') client secret sent with PUT.

    An identity's is `bc-conn-{name}--{identity}-secret`: with a single dash, connection `a` identity `b` and
    connection `a-b` would share `bc-conn-a-b-secret`; `--` is the separator no new connection name holds
    (shared.auth.compose.auth_name names the identity's token set the same way)."""
    if identity is None or identity == PRIMARY_IDENTITY:
        return f"bc-conn-{name}-secret"
    return f"bc-conn-{name}{IDENTITY_SEPARATOR}{identity}-secret"


def token_secret_name(name: str, identity: str | None = None) -> str:
    """The Key Vault secret of a connection's (or identity's) token set (shared.auth.compose.auth_name)."""
    if identity is None or identity == PRIMARY_IDENTITY:
        return f"{TOKEN_SECRET_PREFIX}{name}"
    return f"{TOKEN_SECRET_PREFIX}{name}{IDENTITY_SEPARATOR}{identity}"


def owned_secrets(connection: Connection, identity: Identity) -> tuple[str, ...]:
    """What the API wrote for one identity and removes with it: its token set, and its client secret when the API
    stored it (a secret the admin named themselves is theirs)."""
    ours = client_secret_name(connection.name, identity.name)
    secret = (ours,) if identity.secret_name == ours else ()
    return (*secret, token_secret_name(connection.name, identity.name))


class VaultUnavailableError(IntegrationError):
    """Key Vault refused or failed a write or delete; `cause` names the SDK error's type (never a value)."""

    def __init__(self, operation: str, cause: str) -> None:
        self.cause = cause
        super().__init__(f"Key Vault could not {operation} ({cause})")


class SecretVault(Protocol):
    """Where client secrets go (Key Vault in the app, a dict in unit tests)."""

    async def write(self, name: str, value: str, *, connection: str) -> str:
        """Store `value` as a new version of secret `name`; the version id."""
        ...

    async def delete(self, name: str) -> None:
        """Soft-delete secret `name`; nothing when it does not exist."""
        ...


class IdentityHealth(Protocol):
    """An identity's token health (shared.auth: its manager's status, never a token)."""

    async def status(self, connection: Connection, identity: Identity) -> dict[str, object]:
        """The status's JSON (`health`, `last_error_code`, `next_step`, ...)."""
        ...


class PendingJobs(Protocol):
    """How many of a connection's jobs have not ended (the jobs table in the app)."""

    async def count(self, connection: str, limit: int) -> int:
        """Pending jobs of `connection`, counted up to `limit`."""
        ...


class _Registry(Protocol):
    """What the routes use of ConnectionRegistry."""

    @property
    def default(self) -> Connection: ...

    async def find(self, name: str | None) -> Connection | None: ...

    async def all(self) -> list[Connection]: ...

    async def put(self, connection: Connection) -> None: ...

    async def delete(self, name: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class ConnectionsAdmin:
    """What the routes work with: the registry, Key Vault, the jobs table and the deployment's own client id."""

    registry: _Registry
    vault: SecretVault
    pending: PendingJobs
    settings_client_id: str | None
    health: IdentityHealth | None = None  # GET .../identities shows each identity's health when set


Admin = Callable[[], Awaitable[ConnectionsAdmin]]


class BadRequestError(IntegrationError):
    """A request the routes refuse; `reply` is the answer."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        super().__init__(reply.body)


# -- GET /api/connections, GET /api/connections/{name} --------------------------------------------------------


async def list_connections(admin: Admin, *, base_url: str) -> Reply:
    """200 with every connection, the settings' one first (marked `fromSettings`)."""
    try:
        found = await (await admin()).registry.all()
    except (IntegrationError, SettingsError) as exc:
        return unavailable(exc)
    return json_reply(200, {"connections": [connection_body(c, base_url) for c in found]})


async def show_connection(admin: Admin, name: str, *, base_url: str) -> Reply:
    """200 with the connection, 404 naming how to list, 400 for a name no connection can have."""
    if not valid_name(name):
        return _bad_name()
    try:
        found = await (await admin()).registry.find(name)
    except (IntegrationError, SettingsError) as exc:
        return unavailable(exc)
    if found is None:
        return not_found(name)
    return json_reply(200, connection_body(found, base_url))


def connection_body(connection: Connection, base_url: str) -> dict[str, Any]:
    """The connection's wire JSON (no secret: the row never has one) and its links."""
    body: dict[str, Any] = connection.model_dump(mode="json", by_alias=True, exclude_none=True)
    body["links"] = connection_links(connection.name, base_url)
    return body


def connection_links(name: str, base_url: str) -> dict[str, str]:
    """The connection's routes: itself, its check (POST), its admin-consent link and its delegated sign-in
    (shared/triggers/connections_onboarding.py)."""
    url = connection_url(base_url, name)
    return {"self": url, "check": f"{url}/check", "consent": f"{url}/consent", "signIn": f"{url}/sign-in"}


def connection_url(base_url: str, name: str) -> str:
    """`{base}/api/connections/{name}`."""
    return f"{base_url.rstrip('/')}/api/connections/{quote(name, safe='')}"


def valid_name(name: str) -> bool:
    """Whether `name` is a connection name (`[a-z0-9-]{1,40}`)."""
    return re.fullmatch(CONNECTION_NAME_PATTERN, name) is not None


# -- PUT /api/connections/{name} -----------------------------------------------------------------------------


async def put_connection(admin: Admin, name: str, body: bytes, *, base_url: str) -> Reply:
    """201 created / 200 replaced; 400 naming each bad field; 409 for the settings' connection; 503."""
    try:
        services = await admin()
        fields, secret = _put_fields(name, body, services.registry.default)
        existing = await services.registry.find(name)
        _new_name_allowed(name, existing)
        connection = _validated(name, _pool_fields(name, fields, existing), secret, existing)
        check_credential(connection, services.settings_client_id)
        if secret is not None:
            version = await services.vault.write(client_secret_name(name), secret, connection=name)
            connection = connection.model_copy(update={"secret_version": version})
        await services.registry.put(connection)
        await _forget_dropped(services.vault, existing, connection)
    except BadRequestError as bad:
        return bad.reply
    except (IntegrationError, SettingsError) as exc:
        return unavailable(exc)
    created = existing is None
    log_change(name, "registered" if created else "replaced", secret is not None)
    headers = {"Location": connection_url(base_url, name)} if created else {}
    return json_reply(201 if created else 200, connection_body(connection, base_url), headers)


def _put_fields(name: str, body: bytes, default: Connection) -> tuple[dict[str, object], str | None]:
    """The body's fields and its client secret, taken out first; refuses what no PUT may do."""
    if not valid_name(name):
        raise BadRequestError(_bad_name())
    if name == default.name:
        raise BadRequestError(error_reply(409, "settings_connection", settings_owned(name)))
    fields = json_object(body)
    secret = fields.pop("clientSecret", None)
    if secret is not None and (not isinstance(secret, str) or not 0 < len(secret) <= MAX_SECRET_CHARS):
        raise BadRequestError(
            invalid_reply([field_problem("clientSecret", f"a string of 1-{MAX_SECRET_CHARS} characters")])
        )
    read_only = [field_problem(key, why) for key, why in _READ_ONLY.items() if key in fields]
    if read_only:
        raise BadRequestError(invalid_reply(read_only))
    return fields, secret


def _pool_fields(name: str, fields: dict[str, object], existing: Connection | None) -> dict[str, object]:
    """`identities` left out keeps the pool (a PUT that rotates the connection's secret must not drop it); an
    identity's clientSecret is refused here: it goes through the identity's own route, to Key Vault."""
    if "identities" not in fields:
        pool = existing.identities if existing is not None else ()
        kept = [identity.model_dump(mode="json", by_alias=True, exclude_none=True) for identity in pool]
        return {**fields, "identities": kept} if kept else fields
    listed = fields["identities"]
    entries = listed if isinstance(listed, list) else []
    problems = [
        field_problem(
            f"identities.{index}.clientSecret",
            "a client secret is not taken inside the connection",
            f"send it with PUT /api/connections/{name}/identities/{entry.get('name', '{identity}')} (it goes to Key "
            "Vault); or `bcjobs connections identities put`",
        )
        for index, entry in enumerate(entries)
        if isinstance(entry, dict) and "clientSecret" in entry
    ]
    if problems:
        raise BadRequestError(invalid_reply(problems))
    return fields


async def _forget_dropped(vault: SecretVault, existing: Connection | None, connection: Connection) -> None:
    """The Key Vault secrets of identities a PUT removed from the pool."""
    kept = {identity.name for identity in connection.identities}
    for identity in existing.identities if existing is not None else ():
        if identity.name not in kept:
            for secret in owned_secrets(connection, identity):
                await vault.delete(secret)


def _new_name_allowed(name: str, existing: Connection | None) -> None:
    """A new connection's name never holds `--`: it joins a connection and an identity in storage names."""
    if existing is None and IDENTITY_SEPARATOR in name:
        fix = f"a new connection's name may not contain '{IDENTITY_SEPARATOR}' (it separates identity names)"
        raise BadRequestError(invalid_reply([field_problem("name", fix)]))


def json_object(body: bytes) -> dict[str, object]:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequestError(
            error_reply(413, "body_too_large", f"a connection is at most {MAX_BODY_BYTES} bytes")
        )
    try:
        value = json.loads(body or b"null")
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise BadRequestError(error_reply(400, "invalid_body", "send the connection as a JSON object"))
    return value


def _validated(
    name: str, fields: dict[str, object], secret: str | None, existing: Connection | None
) -> Connection:
    """The Connection the fields describe; with a client secret, its Key Vault credential is filled in."""
    before = (existing.secret_name, existing.secret_version) if existing is not None else None
    fields = credential_fields(fields, secret, client_secret_name(name), before)
    try:
        return Connection.model_validate({**fields, "name": name})
    except ValidationError as exc:
        raise BadRequestError(invalid_reply(problems_of(exc))) from None


def credential_fields(
    fields: dict[str, object], secret: str | None, wanted: str, before: tuple[str | None, str | None] | None
) -> dict[str, object]:
    """The fields with a sent client secret's Key Vault credential (`wanted`) filled in; without one, the version of
    the secret kept (`before`: its name and version) when the fields still name it. A connection's and an identity's
    PUT share this rule."""
    if secret is not None:
        if fields.get("secretName", wanted) != wanted or fields.get("credential", "key_vault_secret") != (
            Credential.KEY_VAULT_SECRET.value
        ):
            fix = f"with clientSecret, leave out credential and secretName (the secret goes to '{wanted}')"
            raise BadRequestError(invalid_reply([field_problem("clientSecret", fix)]))
        fields = {**fields, "credential": Credential.KEY_VAULT_SECRET.value, "secretName": wanted}
        fields.pop("secretVersion", None)
    elif before is not None and before[0] and fields.get("secretName") == before[0]:
        fields = {"secretVersion": before[1], **fields}  # the same secret: keep its version
    return fields


def problems_of(exc: ValidationError) -> list[dict[str, str]]:
    """Each pydantic error as field + problem + fix; `input` (the submitted value) is never copied."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        top = str(error["loc"][0]) if error["loc"] else ""
        problems.append(field_problem(field, error["msg"], _FIXES.get(top)))
    return problems


def check_credential(connection: Connection | Identity, settings_client_id: str | None) -> None:
    """`credential: settings` is the deployment's own app registration: only with its client id (a connection's
    or an identity's)."""
    if connection.credential is not Credential.SETTINGS:
        return
    if settings_client_id and connection.client_id.lower() == settings_client_id.lower():
        return
    fix = (
        "credential settings uses the deployment's own app registration (BC_CLIENT_ID); for another app "
        "registration send its clientSecret (stored in Key Vault) or name a Key Vault secret "
        '("credential": "key_vault_secret", "secretName": ...)'
    )
    raise BadRequestError(invalid_reply([field_problem("credential", fix)]))


# -- DELETE /api/connections/{name} --------------------------------------------------------------------------


async def delete_connection(admin: Admin, name: str) -> Reply:
    """204 deleted; 202 disabled (pending jobs); 404; 409 for the settings' connection; 503."""
    if not valid_name(name):
        return _bad_name()
    try:
        services = await admin()
        if name == services.registry.default.name:
            return error_reply(409, "settings_connection", settings_owned(name))
        found = await services.registry.find(name)
        if found is None:
            return not_found(name)
        pending = await services.pending.count(name, PENDING_LIMIT)
        if pending:
            return await _disable(services, found, pending)
        for secret in _every_secret(found):
            await services.vault.delete(secret)
        await services.registry.delete(name)
    except ConnectionUnusableError as exc:
        return error_reply(409, "settings_connection", exc.reason)
    except (IntegrationError, SettingsError) as exc:
        return unavailable(exc)
    log_change(name, "deleted", secret=False)
    return Reply(204)


def _every_secret(connection: Connection) -> tuple[str, ...]:
    """The connection's client secret and token set, and those of every identity of its pool."""
    own = (client_secret_name(connection.name), token_secret_name(connection.name))
    return own + tuple(s for identity in connection.identities for s in owned_secrets(connection, identity))


async def _disable(services: ConnectionsAdmin, found: Connection, pending: int) -> Reply:
    """Disable instead of deleting: the pending jobs end `rejected` with this reason when they come up."""
    count = f"at least {pending}" if pending >= PENDING_LIMIT else str(pending)
    reason = f"deleted by an admin while {count} jobs were pending"
    disabled = found.model_copy(update={"enabled": False, "disabled_reason": reason})
    await services.registry.put(disabled)
    log_change(found.name, "disabled", secret=False)
    message = (
        f"connection '{found.name}' had {count} pending jobs, so it is disabled, not deleted; those jobs end "
        f"rejected with the reason. DELETE it again once they have ended (GET /api/jobs?connection={found.name})"
    )
    return json_reply(202, {"disabled": True, "pendingJobs": pending, "message": message})


# -- replies -------------------------------------------------------------------------------------------------


def field_problem(field: str, problem: str, fix: str | None = None) -> dict[str, str]:
    return {"field": field, "problem": problem, **({"fix": fix} if fix else {})}


def invalid_reply(problems: list[dict[str, str]]) -> Reply:
    message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return json_reply(400, {"error": "invalid_connection", "message": message, "fields": problems})


def error_reply(status: int, code: str, message: str) -> Reply:
    return json_reply(status, {"error": code, "message": message})


def _bad_name() -> Reply:
    return error_reply(400, "invalid_name", "a connection name is 1-40 characters of a-z 0-9 -")


def not_found(name: str) -> Reply:
    message = f"no connection '{name}': list them with GET /api/connections (or `bcjobs connections list`)"
    return error_reply(404, "not_found", message)


def settings_owned(name: str) -> str:
    return (
        f"connection '{name}' is defined by the app settings (BC_CONNECTION_NAME, BC_TENANT_ID, ...): change it "
        "there, or register another name"
    )


def log_change(name: str, change: str, secret: bool) -> None:
    written = " (client secret written to Key Vault)" if secret else ""
    logger.info(
        "connection %s %s%s",
        name,
        change,
        written,
        extra={"event": f"connections.{change}", "connection": name},
    )


def unavailable(exc: Exception) -> Reply:
    """503 with a reference that the log line carries with the cause (our errors name SDK types, not values)."""
    reference = uuid.uuid4().hex[:12]
    logger.error(
        "connections API: storage or Key Vault failed (ref %s): %s",
        reference,
        exc,
        extra={"event": "connections.storage_failed", "reference": reference},
    )
    body = {"error": "unavailable", "message": "try again shortly", "reference": reference}
    return json_reply(503, body, {"Retry-After": UNAVAILABLE_RETRY_AFTER})
