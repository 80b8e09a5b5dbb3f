"""Admin consent for a connection's tenant: the link an admin of the customer's tenant opens, and Entra's answer.

A multi-tenant app registration gets a service principal (and its application permissions) in a customer's tenant
only once an admin of that tenant consents. Entra's admin-consent endpoint is
`{authority}/{tenant}/v2.0/adminconsent?client_id=&scope=&redirect_uri=&state=`; it sends the admin back to the
redirect URI with `admin_consent=True&tenant=&scope=&state=`, or `error=&error_description=&state=`
(learn.microsoft.com/entra/identity-platform/v2-admin-consent). The redirect URI must be one of the app
registration's redirect URIs, so it comes from the settings (the sign-in callback's origin), never from a request.

The state is one-time and lives 10 minutes, kept like a pending sign-in (shared.auth.sign_in.PendingSignIns, in
partition `consent-{name}` of the auth table), and names its connection (`{name}~{random}`,
shared.auth.sign_in.connection_state): the callback finds the connection from the state and consumes it in that
connection's own partition, so a state issued for connection A can never be spent on B.

One consent covers the connection's multi-tenant app in that tenant; an identity that is another app needs its own
(`?identity=X`): its link names that app, and its state names `{name}--{identity}` (the separator no new connection
name holds) so the callback records the consent and runs the check for that identity.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from shared.auth.errors import TokenStoreUnavailableError
from shared.auth.models import SignInStart
from shared.auth.sign_in import PendingSignIns, connection_state
from shared.connections.connection import IDENTITY_SEPARATOR, Connection, Identity
from shared.errors import IntegrationError
from shared.settings import Settings

logger = logging.getLogger(__name__)
CONSENT_CALLBACK_PATH = "/api/connections/consent/callback"
GRANTED = "granted"
_ERROR_CODE = re.compile(r"[^A-Za-z0-9_]")


class ConsentUnavailableError(IntegrationError):
    """No admin-consent link can be made (no redirect URI configured)."""


@dataclass(frozen=True, slots=True)
class ConsentLink:
    """An admin-consent link for one connection: open it as an administrator of the connection's tenant."""

    connection: str
    url: str
    redirect_uri: str
    expires_at: datetime

    def to_json(self) -> dict[str, str]:
        """GET /api/connections/{name}/consent body (the state in the URL is one-time: no secret)."""
        return {
            "connection": self.connection,
            "consentUrl": self.url,
            "redirectUri": self.redirect_uri,
            "expiresAt": self.expires_at.isoformat(),
            "nextStep": "open consentUrl signed in as an administrator of the connection's tenant and accept; "
            "the page Entra returns to runs the connection's check",
        }


@dataclass(frozen=True, slots=True)
class ConsentAnswer:
    """What Entra's redirect says: granted (and for which tenant), or Entra's error code."""

    state: str
    granted: bool
    tenant: str | None
    error: str | None


def consent_redirect_uri(settings: Settings) -> str:
    """The consent callback on the sign-in callback's origin (BC_REDIRECT_URI, else WEBSITE_HOSTNAME)."""
    callback = settings.auth.callback_uri
    if callback is None:
        raise ConsentUnavailableError(
            "no redirect URI is configured: set BC_REDIRECT_URI (its scheme and host are used, path "
            f"{CONSENT_CALLBACK_PATH}) or run in Azure (WEBSITE_HOSTNAME), and add "
            f"https://<host>{CONSENT_CALLBACK_PATH} to the app registration's redirect URIs"
        )
    parts = urlsplit(callback)
    return urlunsplit((parts.scheme, parts.netloc, CONSENT_CALLBACK_PATH, "", ""))


def admin_consent_url(
    connection: Connection,
    settings: Settings,
    state: str,
    redirect_uri: str,
    identity: Identity | None = None,
) -> str:
    """Entra's v2 admin-consent URL for the connection's tenant and the identity's app (the primary's by default),
    asking for BC_SCOPE (`.default`)."""
    authority = settings.auth.authority_host.rstrip("/")
    query = urlencode(
        {
            "client_id": (identity or connection.primary).client_id,
            "scope": settings.auth.scope,
            "redirect_uri": redirect_uri,
            "state": state,
        }
    )
    return f"{authority}/{quote(connection.tenant_id, safe='')}/v2.0/adminconsent?{query}"


async def start_consent(
    connection: Connection, settings: Settings, pending: PendingSignIns, identity: Identity | None = None
) -> ConsentLink:
    """A fresh one-time consent link for the connection (or one identity's app), its state remembered 10 minutes."""
    redirect_uri = consent_redirect_uri(settings)
    named = connection.name if identity is None or identity.primary else consent_name(connection, identity)
    state = connection_state(named)
    url = admin_consent_url(connection, settings, state, redirect_uri, identity)
    remembered = await pending.remember(SignInStart(auth_uri=url, state=state, flow=""))
    try:  # expired states of the connection go (small partition; best effort, as SignInFlow.start does)
        await pending.purge()
    except TokenStoreUnavailableError:
        logger.warning("could not purge old consent states", extra={"connection": connection.name})
    return ConsentLink(connection.name, url, redirect_uri, remembered.expires_at)


def consent_name(connection: Connection, identity: Identity) -> str:
    """What an identity's consent state names: `{connection}--{identity}`."""
    return f"{connection.name}{IDENTITY_SEPARATOR}{identity.name}"


def split_consent_name(named: str) -> tuple[str, str | None]:
    """The connection and identity a consent state names (no identity: the primary)."""
    head, separator, tail = named.rpartition(IDENTITY_SEPARATOR)
    return (head, tail) if separator and head and tail.isalnum() else (named, None)


def consent_answer(params: Mapping[str, str], state: str) -> ConsentAnswer:
    """Entra's redirect read (the state already checked); an error code keeps only [A-Za-z0-9_], 64 at most."""
    if "error" in params:
        code = _ERROR_CODE.sub("", params["error"])[:64] or "unknown_error"
        return ConsentAnswer(state, granted=False, tenant=None, error=code)
    granted = params.get("admin_consent", "").lower() == "true"
    tenant = params.get("tenant") or None
    return ConsentAnswer(state, granted=granted, tenant=tenant, error=None if granted else "no_admin_consent")


def refusal_fix(connection: Connection, error: str) -> str:
    """The next step after Entra answered the consent with `error`."""
    again = f"get a new link (GET /api/connections/{connection.name}/consent) and open it"
    if error == "access_denied":
        return (
            f"the administrator declined or cancelled the consent: {again}, signed in as an administrator of "
            f"tenant {connection.tenant_id} (Global, Privileged Role or Cloud Application Administrator), and accept"
        )
    return (
        f"Entra answered the consent with {error}: {again} again; if it repeats, check that app {connection.client_id} "
        f"is multi-tenant and has {CONSENT_CALLBACK_PATH} on this app's host among its redirect URIs"
    )
