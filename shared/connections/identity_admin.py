"""A connection's identities over HTTP (function key), beside shared/connections/admin.py:

    GET    /api/connections/{name}/identities             the pool, primary first, each with its token health
    PUT    /api/connections/{name}/identities/{identity}  add (201) or replace (200) one identity
    DELETE /api/connections/{name}/identities/{identity}  remove one (204); never `primary`

BC's limits are per identity (reference (c)): each identity is its own app (client credentials) with its own
credential. A `clientSecret` in the PUT body is write-only and goes to Key Vault as
`bc-conn-{name}--{identity}-secret` (admin.client_secret_name), the identity naming that secret and its version:
a new version changes the connection's definition, so every process rebuilds that identity's token manager. The
reply names the next steps (the app on BC's Microsoft Entra Applications page of the environment, its consent,
the check) because a new app is refused by BC until an admin adds it there (bc-facts.md 3d).

DELETE removes the identity from the pool, then its client secret (when the API wrote it) and its token set. A job
already running on it keeps the token manager it started with (its token and secret are held in that process:
shared/auth/vault_credential.py reads the secret once), so it finishes; new jobs no longer pick it.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from shared.connections.admin import (
    MAX_SECRET_CHARS,
    Admin,
    BadRequestError,
    ConnectionsAdmin,
    check_credential,
    client_secret_name,
    connection_url,
    credential_fields,
    error_reply,
    field_problem,
    invalid_reply,
    json_object,
    log_change,
    not_found,
    owned_secrets,
    problems_of,
    settings_owned,
    unavailable,
    valid_name,
)
from shared.connections.connection import (
    IDENTITY_NAME_PATTERN,
    PRIMARY_IDENTITY,
    Connection,
    Identity,
)
from shared.errors import IntegrationError, SettingsError
from shared.http import Reply, json_reply
from shared.tokens import AuthMode


def identity_url(base_url: str, name: str, identity: str) -> str:
    """`{base}/api/connections/{name}/identities/{identity}`."""
    return f"{connection_url(base_url, name)}/identities/{identity}"


def identity_body(connection: Connection, identity: Identity, base_url: str) -> dict[str, object]:
    """An identity's wire JSON (never a secret: the row names where it is) and its routes."""
    body: dict[str, object] = identity.model_dump(mode="json", by_alias=True, exclude_none=True)
    url = connection_url(base_url, connection.name)
    body["primary"] = identity.primary
    body["links"] = {
        "self": url if identity.primary else identity_url(base_url, connection.name, identity.name),
        "check": f"{url}/check?identity={identity.name}",
        "consent": f"{url}/consent?identity={identity.name}",
    }
    return body


# -- GET /api/connections/{name}/identities ------------------------------------------------------------------


async def list_identities(admin: Admin, name: str, *, base_url: str) -> Reply:
    """200 with the pool (primary first), each with its health; 404; 400 for a bad name; 503."""
    try:
        services = await admin()
        connection = await _found(services, name)
        listed = [await _with_health(services, connection, i, base_url) for i in connection.pool]
    except BadRequestError as bad:
        return bad.reply
    except (IntegrationError, SettingsError) as exc:
        return unavailable(exc)
    return json_reply(200, {"connection": connection.name, "identities": listed})


async def _with_health(
    services: ConnectionsAdmin, connection: Connection, identity: Identity, base_url: str
) -> dict[str, object]:
    """The identity's body with `health`: its token status (the last token outcome from its connection record)."""
    body = identity_body(connection, identity, base_url)
    if services.health is not None:
        try:
            body["health"] = await services.health.status(connection, identity)
        except (
            IntegrationError,
            SettingsError,
        ) as exc:  # one identity's store or build failing: say so, go on
            body["health"] = {"health": "unknown", "next_step": f"{exc}; run the check of this identity"}
    return body


# -- PUT /api/connections/{name}/identities/{identity} -------------------------------------------------------


async def put_identity(admin: Admin, name: str, identity: str, body: bytes, *, base_url: str) -> Reply:
    """201 added / 200 replaced with the next steps; 400 naming each field; 404; 409 primary or settings; 503."""
    try:
        services = await admin()
        connection = await _registered(services, name)
        fields, secret = _identity_fields(name, identity, body)
        before = _member(connection, identity)
        acting = _validated(name, identity, fields, secret, before)
        check_credential(acting, services.settings_client_id)
        pooled = _pooled(connection, acting)  # the pool's rules before anything is written
        if secret is not None:
            version = await services.vault.write(client_secret_name(name, identity), secret, connection=name)
            acting = acting.model_copy(update={"secret_version": version})
            pooled = _pooled(connection, acting)
        await services.registry.put(pooled)
        await _forget_replaced(services, pooled, before, acting)
    except BadRequestError as bad:
        return bad.reply
    except (IntegrationError, SettingsError) as exc:
        return unavailable(exc)
    log_change(name, f"identity {identity} {'replaced' if before else 'added'}", secret is not None)
    reply = {**identity_body(pooled, acting, base_url), "nextSteps": next_steps(pooled, acting)}
    headers = {} if before else {"Location": identity_url(base_url, name, identity)}
    return json_reply(200 if before else 201, reply, headers)


def next_steps(connection: Connection, identity: Identity) -> list[str]:
    """What an admin does after adding an identity: BC refuses an app not on the environment's page."""
    check = (
        f"run the check: POST /api/connections/{connection.name}/check?identity={identity.name} (or `bcjobs "
        f"connections check {connection.name} --identity {identity.name}`)"
    )
    if connection.mode is AuthMode.DELEGATED:
        return [
            f"sign in as this identity's user (a license and permission sets in {connection.environment}): GET "
            f"/api/connections/{connection.name}/sign-in?identity={identity.name}",
            check,
        ]
    return [
        f"add the app (client id {identity.client_id}) on the Microsoft Entra Applications page of environment "
        f"{connection.environment} of tenant {connection.tenant_id}, State Enabled, with permission sets",
        f"if the app is not the connection's own ({connection.client_id}), grant its admin consent in tenant "
        f"{connection.tenant_id}: GET /api/connections/{connection.name}/consent?identity={identity.name}",
        check,
    ]


async def _forget_replaced(
    services: ConnectionsAdmin, connection: Connection, before: Identity | None, after: Identity
) -> None:
    """The secret the API wrote for an identity that no longer uses it (now federated, or the admin's own)."""
    ours = client_secret_name(connection.name, after.name)
    if before is not None and before.secret_name == ours and after.secret_name != ours:
        await services.vault.delete(ours)


def _identity_fields(name: str, identity: str, body: bytes) -> tuple[dict[str, object], str | None]:
    """The body's fields and its client secret, taken out before anything else reads the body."""
    fields = json_object(body)
    secret = fields.pop("clientSecret", None)
    if secret is not None and (not isinstance(secret, str) or not 0 < len(secret) <= MAX_SECRET_CHARS):
        problem = field_problem("clientSecret", f"a string of 1-{MAX_SECRET_CHARS} characters")
        raise BadRequestError(invalid_reply([problem]))
    if "name" in fields:
        raise BadRequestError(invalid_reply([field_problem("name", "the identity's name is the URL's")]))
    if identity == PRIMARY_IDENTITY:
        raise BadRequestError(error_reply(409, "primary_identity", _primary_is_the_connection(name)))
    return fields, secret


def _validated(
    name: str, identity: str, fields: dict[str, object], secret: str | None, before: Identity | None
) -> Identity:
    """The Identity the fields describe; with a client secret, its Key Vault credential is filled in."""
    kept = (before.secret_name, before.secret_version) if before is not None else None
    fields = credential_fields(fields, secret, client_secret_name(name, identity), kept)
    try:
        return Identity.model_validate({**fields, "name": identity})
    except ValidationError as exc:
        raise BadRequestError(invalid_reply(problems_of(exc))) from None


def _pooled(connection: Connection, identity: Identity) -> Connection:
    """The connection with `identity` added or replaced in place, checked against the pool's rules."""
    names = [i.name for i in connection.identities]
    pool = list(connection.identities)
    if identity.name in names:
        pool[names.index(identity.name)] = identity
    else:
        pool.append(identity)
    try:
        return Connection.model_validate({**connection.model_dump(), "identities": pool})
    except ValidationError as exc:
        problems = [
            {**p, "field": "clientId" if "clientId" in p["problem"] else "identity"}
            if p["field"] == "body"
            else p
            for p in problems_of(exc)
        ]
        raise BadRequestError(invalid_reply(problems)) from None


# -- DELETE /api/connections/{name}/identities/{identity} ----------------------------------------------------


async def delete_identity(admin: Admin, name: str, identity: str) -> Reply:
    """204 removed (its client secret and token set too); 404; 409 for `primary` or the settings' connection."""
    try:
        services = await admin()
        connection = await _registered(services, name)
        if identity == PRIMARY_IDENTITY:
            return error_reply(409, "primary_identity", _primary_is_the_connection(name))
        found = _member(connection, identity)
        if found is None:
            return _no_identity(connection, identity)
        remaining = tuple(i for i in connection.identities if i.name != identity)
        await services.registry.put(connection.model_copy(update={"identities": remaining}))
        for secret in owned_secrets(connection, found):
            await services.vault.delete(secret)
    except BadRequestError as bad:
        return bad.reply
    except (IntegrationError, SettingsError) as exc:
        return unavailable(exc)
    log_change(name, f"identity {identity} removed", secret=False)
    return Reply(204)


# -- shared --------------------------------------------------------------------------------------------------


async def _found(services: ConnectionsAdmin, name: str) -> Connection:
    """The connection of that name (the settings' one too); 400 for a bad name, 404 for none."""
    if not valid_name(name):
        raise BadRequestError(
            error_reply(400, "invalid_name", "a connection name is 1-40 characters of a-z 0-9 -")
        )
    found = await services.registry.find(name)
    if found is None:
        raise BadRequestError(not_found(name))
    return found


async def _registered(services: ConnectionsAdmin, name: str) -> Connection:
    """A connection the API may change: not the settings' one (409, as for the connection itself)."""
    if valid_name(name) and name == services.registry.default.name:
        raise BadRequestError(error_reply(409, "settings_connection", settings_owned(name)))
    return await _found(services, name)


def _member(connection: Connection, identity: str) -> Identity | None:
    """The pool's identity of that name beyond the primary; 400 for a name no identity can have."""
    if re.fullmatch(IDENTITY_NAME_PATTERN, identity) is None:
        fix = "an identity name is 1-20 characters of a-z and 0-9"
        raise BadRequestError(invalid_reply([field_problem("identity", "not an identity name", fix)]))
    return next((i for i in connection.identities if i.name == identity), None)


def _no_identity(connection: Connection, identity: str) -> Reply:
    names = ", ".join(i.name for i in connection.pool)
    message = (
        f"connection '{connection.name}' has no identity '{identity}' (it has: {names}); list them with GET "
        f"/api/connections/{connection.name}/identities (or `bcjobs connections identities list {connection.name}`)"
    )
    return error_reply(404, "not_found", message)


def _primary_is_the_connection(name: str) -> str:
    return (
        f"the primary identity is connection '{name}''s own clientId and credential: change it with PUT "
        f"/api/connections/{name} (clientId, clientSecret or credential), or `bcjobs connections put {name}`; "
        "it cannot be removed (delete the connection instead)"
    )
