"""Entra ID through MSAL: auth code + PKCE sign-in, refresh-token redemption, client credentials.

MSAL is synchronous (requests); every call runs in a worker thread (asyncio.to_thread) so the event loop,
shared by all invocations of a worker, never blocks. One ConfidentialClientApplication per process: its
discovery GET is cached 24 h and its ThrottledHttpClient replays a 400 for the same request for 60 s and a
5xx/429 for 5 s (msal/throttled_http_client.py, MSAL Python), which also bounds calls with a dead refresh token.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import msal
import requests  # MSAL's HTTP stack (a dependency of msal)

from shared.auth.errors import AuthError, SignInRejectedError, TokenRefreshFailedError
from shared.auth.identity import classify, error_code
from shared.auth.models import Grant, SignInStart
from shared.azure_clients import SDK_OPTIONS

# Hosts MSAL itself knows (msal.authority.WELL_KNOWN_AUTHORITY_HOSTS, 1.39); any other host (a sovereign
# cloud alias, the local sandbox) cannot be validated via instance discovery, so it is turned off for it.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.chinacloudapi.cn",
        "login-us.microsoftonline.com",
        "login.microsoftonline.us",
    }
)
# requests' (connect, read) timeouts, the same as every Azure SDK call of the package: without them a hung
# IdP would hold the refresh lease until it expires.
HTTP_TIMEOUT = (SDK_OPTIONS["connection_timeout"], SDK_OPTIONS["read_timeout"])
# "Client assertion is not within its valid time range" (reference (d); sandbox/entra/federation.py).
ASSERTION_EXPIRED = 700024


class ClientAssertion(Protocol):
    """MSAL's `client_assertion` callable that keeps its value (shared.auth.federated.ManagedIdentityAssertion):
    `renew` drops the kept one."""

    def __call__(self) -> str: ...

    def renew(self) -> None: ...


# Entra omits expires_in only in broken responses; MSAL's own default is 600 s (msal/token_cache.py, MSAL Python).
_DEFAULT_EXPIRES_IN = 600


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A PFX file (e.g. loaded by App Service from Key Vault) and its optional passphrase."""

    pfx_path: Path
    passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class MsalConfig:
    """What MSAL needs for one connection: app, tenant, authority, scope, credential and trust."""

    client_id: str
    tenant_id: str
    authority_host: str
    scope: str
    client_secret: str | None = field(default=None, repr=False)
    certificate: ClientCertificate | None = None
    ca_bundle: Path | None = None
    # A federated credential: MSAL calls it for each token request's client assertion (shared.auth.federated).
    assertion: ClientAssertion | None = field(default=None, repr=False, compare=False)

    @property
    def authority(self) -> str:
        """The tenant-specific authority URL."""
        return f"{self.authority_host.rstrip('/')}/{self.tenant_id}"

    @property
    def instance_discovery(self) -> bool | None:
        """None (MSAL default) for Microsoft hosts; False for any other host, which discovery cannot know."""
        host = urlsplit(self.authority_host).hostname or ""
        return None if host in MICROSOFT_AUTHORITY_HOSTS else False

    def credential(self) -> str | dict[str, Any]:
        """MSAL's client_credential: the federated assertion, else the certificate when configured, else the
        secret. The assertion as a callable, so that MSAL asks for a fresh one (msal 1.39 application.py)."""
        if self.assertion is not None:
            return {"client_assertion": self.assertion}
        if self.certificate is not None:
            cert: dict[str, str] = {"private_key_pfx_path": str(self.certificate.pfx_path)}
            if self.certificate.passphrase:
                cert["passphrase"] = self.certificate.passphrase
            return cert
        if not self.client_secret:
            raise AuthError(
                "no client credential configured: set BC_CLIENT_SECRET or BC_CLIENT_CERTIFICATE_PATH"
            )
        return self.client_secret


class MsalIdentity:
    """IdentityProvider backed by one MSAL ConfidentialClientApplication, built on first use."""

    def __init__(self, config: MsalConfig) -> None:
        self._config = config
        self._app: msal.ConfidentialClientApplication | None = None
        self._session: requests.Session | None = None
        self._build_lock = threading.Lock()

    async def close(self) -> None:
        """Close MSAL's HTTP session (its keep-alive connections) and drop the application: a later call builds a
        new one (AuthServices.forget_refusals relies on this)."""
        with self._build_lock:
            session, self._session, self._app = self._session, None, None
        if session is not None:
            await asyncio.to_thread(session.close)

    async def start_sign_in(self, redirect_uri: str, state: str | None = None) -> SignInStart:
        """initiate_auth_code_flow: MSAL generates nonce and the PKCE verifier/challenge, and the state unless
        one is given."""
        # form_post keeps the code out of URLs, so it never reaches request logs or App Insights request
        # telemetry (which record query strings); RFC 9700 §4.3.1, and MSAL 1.39 warns without it.
        flow = await self._call(
            lambda app: app.initiate_auth_code_flow(
                scopes=[self._config.scope], redirect_uri=redirect_uri, state=state, response_mode="form_post"
            )
        )
        return SignInStart(auth_uri=flow["auth_uri"], state=flow["state"], flow=json.dumps(flow))

    async def finish_sign_in(self, flow: str, response: Mapping[str, str]) -> Grant:
        """acquire_token_by_auth_code_flow: checks state and nonce, sends the verifier, redeems the code."""
        kept = json.loads(flow)
        try:
            result = await self._call(lambda app: app.acquire_token_by_auth_code_flow(kept, dict(response)))
        except (
            ValueError,
            RuntimeError,
        ) as exc:  # MSAL: state/scope mismatch (ValueError), nonce (RuntimeError)
            raise SignInRejectedError(
                "the sign-in response does not match the sign-in that was started (state, scope or nonce "
                "differ): start again at /api/auth/login"
            ) from exc
        if "error" in result:
            label = error_code(str(result["error"]), result.get("error_codes") or ())
            raise SignInRejectedError(f"Entra refused the sign-in ({label})")
        if not result.get("refresh_token"):
            raise SignInRejectedError("Entra returned no refresh token (offline_access not granted)")
        return self._grant(result)

    async def redeem_refresh_token(self, refresh_token: str) -> Grant:
        """acquire_token_by_refresh_token with the newest stored refresh token; Entra rotates it."""
        result = await self._call(
            lambda app: app.acquire_token_by_refresh_token(refresh_token, scopes=[self._config.scope])
        )
        return self._checked(result)

    async def acquire_for_client(self) -> Grant:
        """acquire_token_for_client, bypassing MSAL's cache: the token store is the cache."""

        def acquire(app: msal.ConfidentialClientApplication) -> dict[str, Any]:
            app.remove_tokens_for_client()
            result: dict[str, Any] = app.acquire_token_for_client(scopes=[self._config.scope])
            app.remove_tokens_for_client()
            return result

        return self._checked(await self._call(acquire), app_only=True)

    def _checked(self, result: dict[str, Any], app_only: bool = False) -> Grant:
        if "error" in result:
            codes = result.get("error_codes") or ()
            if ASSERTION_EXPIRED in codes and self._config.assertion is not None:
                self._config.assertion.renew()  # the next request fetches a new one instead of the stale one
            raise classify(str(result["error"]), codes, app_only=app_only)
        return self._grant(result)

    def _grant(self, result: dict[str, Any]) -> Grant:
        claims = result.get("id_token_claims") or {}
        account = claims.get("preferred_username") or claims.get("upn") or claims.get("email")
        return Grant(
            access_token=str(result["access_token"]),
            expires_in=timedelta(seconds=int(result.get("expires_in") or _DEFAULT_EXPIRES_IN)),
            scopes=tuple(str(result.get("scope") or self._config.scope).split()),
            refresh_token=result.get("refresh_token"),
            account=account,
            tenant_id=claims.get("tid") or self._config.tenant_id,
        )

    async def _call(self, work: Any) -> Any:
        """Run `work(app)` in a thread; network failures and 5xx become TokenRefreshFailedError."""

        def run() -> Any:
            return work(self._application())

        try:
            return await asyncio.to_thread(run)
        except (OSError, msal.exceptions.MsalServiceError) as exc:  # requests' errors are OSErrors
            raise TokenRefreshFailedError(f"Entra unreachable or failing ({type(exc).__name__})") from exc

    def _new_session(self) -> requests.Session:
        self._session = _http_client(self._config.ca_bundle)
        return self._session

    def _application(self) -> msal.ConfidentialClientApplication:
        with self._build_lock:
            if self._app is None:
                config = self._config
                try:
                    self._app = msal.ConfidentialClientApplication(
                        config.client_id,
                        client_credential=config.credential(),
                        authority=config.authority,
                        instance_discovery=config.instance_discovery,
                        # MSAL ignores its own timeout= once http_client is given (msal 1.39
                        # application.py: only its default Session gets it), so the session applies it.
                        http_client=self._new_session(),
                    )
                except ValueError as exc:  # MSAL: discovery document unreachable or malformed
                    raise TokenRefreshFailedError(f"Entra discovery failed for {config.authority}") from exc
            return self._app


def _http_client(ca_bundle: Path | None) -> requests.Session:
    """MSAL's requests session, with trust and timeout passed on every request.

    MSAL's own `verify=` sets Session.verify, which requests ignores whenever REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE is set in the environment (requests merges the env value as a per-request setting, and
    per-request beats session; psf/requests#3829) - so the local CA would silently not be trusted. Passing
    `verify` per request avoids that. Mirrors MSAL's default otherwise: one retry on connection errors.
    """
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(max_retries=1)
    session.mount("https://", adapter)
    verify: str | bool = str(ca_bundle) if ca_bundle else True
    session.request = functools.partial(session.request, timeout=HTTP_TIMEOUT, verify=verify)  # type: ignore[method-assign]
    return session
