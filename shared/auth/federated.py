"""A federated credential's client assertion: a user-assigned managed identity's token for api://AzureADTokenExchange.

Entra accepts that token in place of a client secret when the app registration holds a federated identity credential
naming the identity (issuer https://login.microsoftonline.com/{tenant}/v2.0, subject = its principal id, audience
api://AzureADTokenExchange): reference (d), D1; learn.microsoft.com/entra/workload-id/
workload-identity-federation-config-app-trust-managed-identity; the token request is the client-credentials grant's
"third case" (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).

MSAL takes the assertion as a callable (`client_credential={"client_assertion": callable}`, msal 1.39
application.py: "MSAL will invoke [it] on demand to obtain a fresh assertion") and calls it on the thread that sends
the token request: MsalIdentity runs every MSAL call in asyncio.to_thread, so the callable is synchronous and uses
azure-identity's sync ManagedIdentityCredential. A managed-identity token lasts hours; it is kept until
RENEW_BEFORE_SECONDS before it expires (reference (d), D3 point 3: build the assertion lazily, never persist it).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Protocol

from azure.core.credentials import AccessToken
from azure.core.exceptions import AzureError, ClientAuthenticationError

from shared.auth.errors import CredentialsRejectedError, TokenRefreshFailedError

TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
# As a scope: azure-identity strips "/.default" and asks the managed-identity endpoint for the resource.
TOKEN_EXCHANGE_SCOPE = f"{TOKEN_EXCHANGE_AUDIENCE}/.default"
# An assertion must be valid when Entra reads it; 5 minutes covers a slow request and clock skew.
RENEW_BEFORE_SECONDS = 300


class ManagedIdentitySource(Protocol):
    """azure.core.credentials.TokenCredential's sync surface (ManagedIdentityCredential in production)."""

    def get_token(self, *scopes: str) -> AccessToken: ...

    def close(self) -> None: ...


class ManagedIdentityAssertion:
    """MSAL's `client_assertion` callable: the identity's exchange token, cached until shortly before it expires.

    Thread-safe: MSAL calls may run on several worker threads at once; one fetch serves them all. `make_source`
    builds the credential; `renew` builds a new one, since azure-identity's own cache would hand back the token
    Entra just refused."""

    def __init__(
        self,
        make_source: Callable[[], ManagedIdentitySource],
        client_id: str,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._make_source = make_source
        self._source = make_source()
        self._stale: list[ManagedIdentitySource] = []
        self.client_id = client_id
        self._now = now
        self._token: AccessToken | None = None
        self._lock = threading.Lock()
        self.fetches = 0  # tokens requested from the managed-identity endpoint (tests, the closing figures)

    def __call__(self) -> str:
        with self._lock:
            token = self._token
            if token is None or token.expires_on - RENEW_BEFORE_SECONDS <= self._now():
                token = self._token = self._fetch()
            return token.token

    def renew(self) -> None:
        """Forget the kept token (Entra found it expired: clocks disagree): the next call fetches a new one."""
        with self._lock:
            self._token = None
            self._stale.append(self._source)
            self._source = self._make_source()

    async def close(self) -> None:
        """Close the credentials' HTTP sessions (synchronous: in a thread, off the event loop)."""
        for source in (*self._stale, self._source):
            await asyncio.to_thread(source.close)
        self._stale.clear()

    def _fetch(self) -> AccessToken:
        """The identity's token; refused (no such identity on this host) or transient (endpoint unreachable)."""
        self.fetches += 1
        try:
            return self._source.get_token(TOKEN_EXCHANGE_SCOPE)
        except (
            ClientAuthenticationError
        ) as exc:  # CredentialUnavailableError too: the endpoint's 400, no endpoint
            raise CredentialsRejectedError(
                f"the managed identity '{self.client_id}' gave no token for {TOKEN_EXCHANGE_AUDIENCE} "
                f"({type(exc).__name__}): attach that user-assigned identity to the function app "
                "(infra/app/function.bicep) and name it in BC_MANAGED_IDENTITY_CLIENT_ID or the identity's "
                "managedIdentityClientId; system-assigned identities cannot be federated credentials",
                error_code="managed_identity_unavailable",
            ) from exc
        except AzureError as exc:
            raise TokenRefreshFailedError(
                f"the managed-identity endpoint is unreachable or failing ({type(exc).__name__})"
            ) from exc
