"""Entra ID endpoints (paths as under login.microsoftonline.com): discovery, JWKS, /authorize and /token."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox.clock import SandboxClock
from sandbox.config import BC_RESOURCE, SandboxConfig
from sandbox.entra.control import AuthCode, EntraControl
from sandbox.entra.directory import AppRegistration, Tenant
from sandbox.entra.errors import EntraProtocolError, error_response
from sandbox.entra.federation import Trust, match
from sandbox.entra.scopes import ScopeRequest, parse_scopes
from sandbox.errors import TokenRejectedError
from sandbox.tokens import AccessTokenRequest, IdTokenRequest, TokenAuthority

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


class EntraEndpoints:
    """The Starlette app for the sandbox tenant."""

    def __init__(
        self, config: SandboxConfig, control: EntraControl, authority: TokenAuthority, clock: SandboxClock
    ) -> None:
        self._config = config
        self._clock = clock
        self._control = control
        self._authority = authority
        self._directory = control.directory

    def app(self) -> Starlette:
        """Routes under /{tenant}/ exactly as Entra's v2.0 endpoints."""
        return Starlette(
            routes=[
                Route("/{tenant}/v2.0/.well-known/openid-configuration", self.discovery),
                Route("/{tenant}/discovery/v2.0/keys", self.keys),
                Route("/{tenant}/oauth2/v2.0/authorize", self.authorize),
                Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"]),
                Route("/{tenant}/adminconsent", self.admin_consent),
                Route("/{tenant}/v2.0/adminconsent", self.admin_consent),
            ]
        )

    # --- helpers ---------------------------------------------------------------------------------------
    def _base(self, request: Request) -> str:
        return f"https://{request.headers.get('host', request.url.netloc)}"

    def _issuer(self, request: Request, tenant_id: str) -> str:
        return f"{self._base(request)}/{tenant_id}/v2.0"

    def _tenant(self, request: Request) -> Tenant:
        """The tenant the path names; `organizations` and `common` mean the primary tenant (whose admin the
        sandbox signs in unless a login_hint names another tenant's user)."""
        name = request.path_params["tenant"]
        if name in ("organizations", "common"):
            hint = request.query_params.get("login_hint", "").lower()
            found = next((t for t in self._directory.tenants if t.user.upn.lower() == hint), None)
            return found or self._directory.tenants[0]
        tenant = self._directory.tenant(name)
        if tenant is None:
            raise EntraProtocolError(90002, detail=f"Tenant '{name}' not found.")
        return tenant

    # --- discovery ---------------------------------------------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        """The OpenID configuration; MSAL needs authorization_endpoint, token_endpoint and issuer."""
        try:
            tenant = self._tenant(request)
        except EntraProtocolError as exc:
            return error_response(exc)
        base, tid = self._base(request), tenant.tenant_id
        document = {
            "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/{tid}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
            ],
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
        }
        return JSONResponse(document, headers={"Cache-Control": "max-age=86400, private"})

    async def keys(self, request: Request) -> Response:
        """The JWKS with the sandbox's signing key."""
        return JSONResponse(self._authority.jwks())

    # --- /authorize ----------------------------------------------------------------------------------------
    async def authorize(self, request: Request) -> Response:
        """Sign the test user in without a browser and redirect back with code + state (or an error)."""
        params = request.query_params
        try:
            tenant = self._tenant(request)
        except EntraProtocolError:
            return _error_page(90002, f"Tenant '{request.path_params['tenant']}' not found.")
        app = self._directory.app(params.get("client_id", ""))
        if app is None:
            return _error_page(700016)
        redirect_uri = params.get("redirect_uri", "")
        if not self._redirect_allowed(redirect_uri):
            return _error_page(50011, f"Redirect URI: '{redirect_uri}'.")
        state = params.get("state")
        mode = params.get("response_mode", "query")
        denial = self._control.next_authorize_denial()
        if denial is not None:
            description = "AADSTS65004: User declined to consent to access the app."
            return _redirect(
                redirect_uri, mode, {"error": denial, "error_description": description, "state": state}
            )
        if params.get("response_type") != "code":
            return _redirect(redirect_uri, mode, {"error": "unsupported_response_type", "state": state})
        try:
            scopes = parse_scopes(params.get("scope", ""))
        except EntraProtocolError as exc:
            return _redirect(
                redirect_uri,
                mode,
                {
                    "error": exc.error,
                    "error_description": f"AADSTS{exc.code}: {exc.description}",
                    "state": state,
                },
            )
        challenge = params.get("code_challenge")
        code = AuthCode(
            client_id=app.client_id,
            redirect_uri=redirect_uri,
            scopes=tuple(params.get("scope", "").split()),
            code_challenge=challenge,
            code_challenge_method=params.get("code_challenge_method", "plain") if challenge else "none",
            nonce=params.get("nonce"),
            user_oid=tenant.user.oid,
            issued_at=self._clock.now(),
            tenant_id=tenant.tenant_id,
        )
        del scopes  # parsed only to reject bad scopes at /authorize, as Entra does
        # The signed-in user is the tenant's admin and accepts the consent prompt Entra shows for an app not yet
        # consented there (learn.microsoft.com/entra/identity-platform/application-consent-experience).
        self._control.grant_consent(tenant.tenant_id, app.client_id)
        value = self._control.issue_code(code)
        session_state = secrets.token_hex(16)
        return _redirect(redirect_uri, mode, {"code": value, "state": state, "session_state": session_state})

    # --- admin consent -------------------------------------------------------------------------------------
    async def admin_consent(self, request: Request) -> Response:
        """Tenant-wide admin consent: `/{tenant}/adminconsent` (v1: client_id, redirect_uri, state) and
        `/{tenant}/v2.0/adminconsent` (+ scope), per learn.microsoft.com/entra/identity-platform/v2-admin-consent.

        The tenant's admin is signed in and approves (or declines, `deny_next_admin_consent`); the answer is a 302 to
        the redirect URI with `admin_consent=True&tenant=<tid>&state=..` (+ `scope` on v2), or `error`,
        `error_description` and `state`. An unknown tenant or client id, or an unregistered redirect URI, gets
        Entra's error page instead: nothing is sent to an address the app did not register.
        """
        params = request.query_params
        v2 = request.url.path.endswith("/v2.0/adminconsent")
        try:
            tenant = self._tenant(request)
        except EntraProtocolError:
            return _error_page(90002, f"Tenant '{request.path_params['tenant']}' not found.")
        app = self._directory.app(params.get("client_id", ""))
        if app is None:
            return _error_page(700016, f"Client: '{params.get('client_id', '')}'.")
        redirect_uri = params.get("redirect_uri", "")
        if not self._redirect_allowed(redirect_uri):
            return _error_page(50011, f"Redirect URI: '{redirect_uri}'.")
        state = params.get("state")
        denial = self._control.next_admin_consent_denial()
        if denial is not None:
            answer = {"error": denial, "error_description": "The admin canceled the request.", "state": state}
            return _redirect(redirect_uri, "query", answer)
        if v2 and not params.get("scope"):
            description = f"AADSTS90014: {EntraProtocolError(90014).description} Parameter: 'scope'."
            answer = {"error": "invalid_request", "error_description": description, "state": state}
            return _redirect(redirect_uri, "query", answer)
        self._control.grant_consent(tenant.tenant_id, app.client_id)
        granted = {"admin_consent": "True", "tenant": tenant.tenant_id, "state": state}
        if v2:
            granted["scope"] = params.get("scope")
        return _redirect(redirect_uri, "query", granted)

    def _redirect_allowed(self, uri: str) -> bool:
        if self._config.redirect_uris:
            return uri in self._config.redirect_uris
        parts = urlsplit(uri)
        # Entra ignores the port of http://localhost and http://127.0.0.1 redirect URIs.
        return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")

    # --- /token ----------------------------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        """The token endpoint: client_credentials, authorization_code, refresh_token."""
        form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        grant_type = form.get("grant_type", "")
        failure = self._control.count_token_call(grant_type or "missing")
        if failure is not None:
            return self._injected_failure(failure.status, failure.retry_after)
        try:
            tenant = self._tenant(request)
            resolve_in = tenant if grant_type == "client_credentials" else None
            app = self._authenticate_client(request, form, resolve_in)
            if grant_type == "client_credentials":
                body = self._client_credentials(tenant, app, form)
            elif grant_type == "authorization_code":
                body = self._authorization_code(request, app, form)
            elif grant_type == "refresh_token":
                body = self._refresh_token(request, app, form)
            else:
                raise EntraProtocolError(70003, detail=f"Grant type: '{grant_type}'.")
        except EntraProtocolError as exc:
            self._control.count_token_error(exc.error)
            return error_response(exc)
        return JSONResponse(body, headers=_NO_STORE)

    def _injected_failure(self, status: int, retry_after: int | None) -> Response:
        code = 90055 if status == 429 else 90033
        exc = EntraProtocolError(code, status=status)
        if retry_after is not None:
            exc.headers["Retry-After"] = str(retry_after)
        self._control.count_token_error(exc.error)
        return error_response(exc)

    def _authenticate_client(
        self, request: Request, form: dict[str, str], tenant: Tenant | None
    ) -> AppRegistration:
        """The app making the request; with `tenant`, the app must also have a service principal there."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            decoded = base64.b64decode(header[6:]).decode("utf-8")
            client_id, _, secret = decoded.partition(":")
        if not client_id:
            raise EntraProtocolError(90014, detail="Parameter: 'client_id'.")
        app = self._directory.app(client_id)
        if app is None:
            raise EntraProtocolError(700016, detail=f"Client: '{client_id}'.")
        if tenant is not None and not self._control.consented(tenant.tenant_id, app.client_id):
            # A multi-tenant app nobody consented to in this tenant has no service principal there: Entra looks the
            # app up before checking its credential and answers unauthorized_client AADSTS700016
            # (learn.microsoft.com/azure/developer/java/sdk/troubleshooting-authentication-service-principal:
            # "For multi-tenant apps, ensure that a tenant admin has added the application to the desired tenant").
            # AADSTS7000229 ("missing service principal") is the single-tenant case, not this one.
            raise EntraProtocolError(700016, message=_not_in_directory(app.client_id, tenant.tenant_id))
        assertion = form.get("client_assertion")
        if assertion is not None:
            self._check_assertion(request, app, form, assertion)
        elif secret is None:
            raise EntraProtocolError(7000218, status=self._config.invalid_client_status)
        elif app.client_secret is None or not secrets.compare_digest(secret, app.client_secret):
            # An app with only federated credentials holds no secret: any secret is an invalid one
            # (learn.microsoft.com/azure/developer/java/sdk/troubleshooting-authentication-service-principal).
            raise EntraProtocolError(7000215, status=self._config.invalid_client_status)
        return app

    def _check_assertion(
        self, request: Request, app: AppRegistration, form: dict[str, str], assertion: str
    ) -> None:
        status = self._config.invalid_client_status
        if form.get("client_assertion_type") != JWT_BEARER:
            raise EntraProtocolError(700027, status=status)
        if _unverified_issuer(assertion) != app.client_id:
            # Not the app's own private_key_jwt (iss = sub = client id): a federated credential's assertion.
            self._check_federated(app, assertion)
            return
        if app.certificate_public_key_pem is None:
            raise EntraProtocolError(700027, status=status)
        tid = self._tenant(request).tenant_id
        audiences = [
            f"{self._base(request)}/{tid}/oauth2/v2.0/token",
            f"{self._base(request)}/{request.path_params['tenant']}/oauth2/v2.0/token",
            self._issuer(request, tid),
        ]
        try:
            self._authority.verify_client_assertion(
                assertion, app.certificate_public_key_pem, app.client_id, audiences
            )
        except TokenRejectedError as exc:
            raise EntraProtocolError(700027, status=status, detail=str(exc)) from exc

    def _check_federated(self, app: AppRegistration, assertion: str) -> None:
        """A federated assertion: signed by a key Entra trusts (here only the sandbox's own, the issuer of its
        managed-identity tokens), within its time range, and matching one of the app's records."""
        status = self._config.invalid_client_status
        try:
            claims = self._authority.read_signed(assertion)
        except TokenRejectedError as exc:
            raise EntraProtocolError(700027, status=status, detail=str(exc)) from exc
        now = self._clock.now()
        if float(claims["exp"]) <= now or float(claims.get("nbf", now)) > now:
            raise EntraProtocolError(700024, status=status)
        system = frozenset(i.principal_id for i in self._directory.identities[1:])
        trust = Trust(self._directory.tenant_id, system, status)
        match(self._control.federated_credentials(app.client_id), claims, trust)

    def _client_credentials(
        self, tenant: Tenant, app: AppRegistration, form: dict[str, str]
    ) -> dict[str, Any]:
        scopes = parse_scopes(form.get("scope", ""))
        if scopes.resource is None or not scopes.is_default or scopes.reserved:
            raise EntraProtocolError(1002012)
        roles = self._config.bc_app_roles if scopes.resource == BC_RESOURCE else ()
        lifetime = self._control.access_token_lifetime()
        token, _ = self._authority.access_token(
            AccessTokenRequest(
                scopes.resource,
                tenant.tenant_id,
                app.client_id,
                self._directory.service_principal_oid(tenant.tenant_id, app),
                lifetime,
                roles=roles,
            )
        )
        return {
            "token_type": "Bearer",
            "expires_in": int(lifetime),
            "ext_expires_in": int(lifetime),
            "access_token": token,
        }

    def _authorization_code(
        self, request: Request, app: AppRegistration, form: dict[str, str]
    ) -> dict[str, Any]:
        if not form.get("code"):
            raise EntraProtocolError(90014, detail="Parameter: 'code'.")
        code = self._control.redeem_code(
            form["code"], app.client_id, form.get("redirect_uri"), form.get("code_verifier")
        )
        requested = form.get("scope") or " ".join(code.scopes)
        scopes = parse_scopes(requested)
        granted = set(code.scopes) | set(parse_scopes(" ".join(code.scopes)).reserved)
        tenant = self._directory.tenant(code.tenant_id) or self._directory.tenants[0]
        return self._user_tokens(
            request, UserGrant(tenant, app, code.nonce, "offline_access" in granted), scopes, form
        )

    def _refresh_token(self, request: Request, app: AppRegistration, form: dict[str, str]) -> dict[str, Any]:
        if not form.get("refresh_token"):
            raise EntraProtocolError(90014, detail="Parameter: 'refresh_token'.")
        grant = self._control.use_refresh_token(form["refresh_token"], app.client_id)
        scopes = parse_scopes(form.get("scope", ""))
        tenant = self._directory.tenant(grant.tenant_id) or self._directory.tenants[0]
        # Entra rotates the refresh token on every use and leaves the old one valid
        # (learn.microsoft.com/entra/identity-platform/refresh-tokens).
        return self._user_tokens(request, UserGrant(tenant, app, None, True), scopes, form)

    def _user_tokens(
        self, request: Request, grant: UserGrant, scopes: ScopeRequest, form: dict[str, str]
    ) -> dict[str, Any]:
        app, nonce, offline = grant.app, grant.nonce, grant.offline
        user, tid = grant.tenant.user, grant.tenant.tenant_id
        resource = scopes.resource or BC_RESOURCE
        consented = self._config.bc_delegated_scopes if resource == BC_RESOURCE else ("user_impersonation",)
        if scopes.is_default or not scopes.permissions:
            scp = tuple(consented)
        else:
            missing = [p for p in scopes.permissions if p not in consented]
            if missing:
                raise EntraProtocolError(65001, detail=f"Scopes: {', '.join(missing)}.")
            scp = scopes.permissions
        lifetime = self._control.access_token_lifetime()
        token, _ = self._authority.access_token(
            AccessTokenRequest(
                resource, tid, app.client_id, user.oid, lifetime, scp=scp, upn=user.upn, name=user.name
            )
        )
        if self._config.echo_requested_scopes:
            scope_text = " ".join(f"{resource}/{p}" for p in scopes.permissions or (".default",))
        else:
            scope_text = " ".join(f"{resource}/{p}" for p in scp)
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": scope_text,
            "expires_in": int(lifetime),
            "ext_expires_in": int(lifetime),
            "access_token": token,
        }
        if offline:
            body["refresh_token"] = self._control.issue_refresh_token(user.oid, app.client_id, tid)
        body["id_token"] = self._authority.id_token(
            IdTokenRequest(
                self._issuer(request, tid), tid, app.client_id, user.oid, user.upn, user.name, nonce
            )
        )
        if form.get("client_info") == "1":
            info = json.dumps({"uid": user.oid, "utid": tid}).encode()
            body["client_info"] = base64.urlsafe_b64encode(info).decode().rstrip("=")
        return body


@dataclass(frozen=True, slots=True)
class UserGrant:
    """Whose delegated tokens to issue: the user's tenant (its admin user), the app, the nonce, offline access."""

    tenant: Tenant
    app: AppRegistration
    nonce: str | None
    offline: bool


def _unverified_issuer(assertion: str) -> str | None:
    """The assertion's `iss`, read before any check only to choose how to check it."""
    try:
        return str(jwt.decode(assertion, options={"verify_signature": False}).get("iss"))
    except jwt.PyJWTError:
        return None  # not a JWT: the federated check refuses it (AADSTS700027)


def _not_in_directory(client_id: str, tenant_id: str) -> str:
    return (
        f"Application with identifier '{client_id}' was not found in the directory '{tenant_id}'. This can happen "
        "if the application has not been installed by the administrator of the tenant or consented to by any user "
        "in the tenant. You may have sent your authentication request to the wrong tenant."
    )


def _redirect(redirect_uri: str, mode: str, params: dict[str, str | None]) -> Response:
    clean = {key: value for key, value in params.items() if value is not None}
    if mode == "form_post":
        inputs = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}"/>' for k, v in clean.items()
        )
        page = f'<html><body onload="document.forms[0].submit()"><form method="post" action="{escape(redirect_uri)}">{inputs}</form></body></html>'
        return HTMLResponse(page)
    separator = "#" if mode == "fragment" else ("&" if "?" in redirect_uri else "?")
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(clean)}", status_code=302)


def _error_page(code: int, detail: str = "") -> Response:
    exc = EntraProtocolError(code, detail=detail)
    page = f"<html><body><h1>Sign in</h1><p>AADSTS{code}: {escape(exc.description)}</p></body></html>"
    return HTMLResponse(page, status_code=400)
