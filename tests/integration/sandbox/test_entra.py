"""Sandbox Entra ID against the real MSAL: client credentials, auth code + PKCE, refresh rotation, errors."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import msal
import pytest
from msal.exceptions import MsalServiceError

from sandbox import Sandbox
from tests.integration.sandbox.conftest import BC_SCOPE
from tests.integration.sandbox.flows import REDIRECT, delegated_tokens, sign_in, start_flow

pytestmark = pytest.mark.integration

MsalFactory = Callable[..., msal.ConfidentialClientApplication]


def claims(token: str) -> dict[str, Any]:
    """Decode a JWT's claims without checking it (the test inspects what the sandbox issued)."""
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_client_credentials_token_carries_roles_for_bc(sandbox: Sandbox, msal_app: MsalFactory) -> None:
    """A client-credentials token is for BC's audience, has roles and the app's oid, no refresh token."""
    result = msal_app().acquire_token_for_client(scopes=[BC_SCOPE])
    token = claims(result["access_token"])
    assert token["aud"] == "https://api.businesscentral.dynamics.com"
    assert token["roles"] == ["API.ReadWrite.All"]
    assert token["tid"] == sandbox.tenant_id
    assert "scp" not in token
    has_refresh_token = "refresh_token" in result  # a bool, so a failure never prints the tokens
    assert not has_refresh_token


def test_auth_code_flow_with_pkce_signs_in_the_test_user(
    sandbox: Sandbox, msal_app: MsalFactory, ca_context: ssl.SSLContext
) -> None:
    """MSAL's auth-code flow completes: delegated token with scp, refresh token, id_token account."""
    app = msal_app()
    result = delegated_tokens(app, ca_context)
    assert "access_token" in result, result.get("error_description")
    token = claims(result["access_token"])
    assert token["scp"] == "Financials.ReadWrite.All user_impersonation"
    assert token["upn"] == sandbox.env["SANDBOX_USER"]
    assert result["refresh_token"]
    assert result["id_token_claims"]["preferred_username"] == sandbox.env["SANDBOX_USER"]
    accounts = app.get_accounts()
    assert [a["username"] for a in accounts] == [sandbox.env["SANDBOX_USER"]]
    assert sandbox.entra.token_calls["authorization_code"] == 1


def test_silent_refresh_rotates_the_refresh_token_and_keeps_the_old_one_valid(
    sandbox: Sandbox, msal_app: MsalFactory, ca_context: ssl.SSLContext
) -> None:
    """Each refresh returns a new refresh token; the previous one still redeems (Entra does not revoke on use)."""
    app = msal_app()
    first = delegated_tokens(app, ca_context)
    account = app.get_accounts()[0]
    refreshed = app.acquire_token_silent_with_error([BC_SCOPE], account, force_refresh=True)
    assert refreshed is not None
    assert "access_token" in refreshed
    assert sandbox.entra.token_calls["refresh_token"] == 1
    newest_rt = next(iter(app.token_cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)))["secret"]
    assert newest_rt != first["refresh_token"]
    old = msal_app().acquire_token_by_refresh_token(first["refresh_token"], [BC_SCOPE])
    assert "access_token" in old, old.get("error_description")


def test_revoked_refresh_tokens_are_refused_with_invalid_grant(
    sandbox: Sandbox, msal_app: MsalFactory, ca_context: ssl.SSLContext
) -> None:
    """After revocation the refresh token gives invalid_grant AADSTS50173; a new sign-in works again."""
    first = delegated_tokens(msal_app(), ca_context)
    sandbox.entra.revoke_refresh_tokens()
    refused = msal_app().acquire_token_by_refresh_token(first["refresh_token"], [BC_SCOPE])
    assert refused["error"] == "invalid_grant"
    assert refused["error_codes"] == [50173]
    again = delegated_tokens(msal_app(), ca_context)
    assert "access_token" in again


def test_refresh_token_expires_after_inactivity(
    sandbox: Sandbox, msal_app: MsalFactory, ca_context: ssl.SSLContext
) -> None:
    """A refresh token unused for longer than the max inactive time gives AADSTS700082."""
    first = delegated_tokens(msal_app(), ca_context)
    sandbox.clock.advance(sandbox.config.refresh_token_max_inactive_seconds + 1)
    refused = msal_app().acquire_token_by_refresh_token(first["refresh_token"], [BC_SCOPE])
    assert refused["error_codes"] == [700082]


def test_authorization_code_is_single_use(
    sandbox: Sandbox, msal_app: MsalFactory, ca_context: ssl.SSLContext
) -> None:
    """Redeeming a code twice gives invalid_grant AADSTS54005."""
    app = msal_app()
    flow = start_flow(app)
    response = sign_in(ca_context, flow["auth_uri"])
    assert "access_token" in app.acquire_token_by_auth_code_flow(dict(flow), response)
    again = msal_app().acquire_token_by_auth_code_flow(dict(flow), response)
    assert again["error_codes"] == [54005]


def test_expired_authorization_code_is_refused(
    sandbox: Sandbox, msal_app: MsalFactory, ca_context: ssl.SSLContext
) -> None:
    """A code redeemed after its ~10 minute lifetime gives AADSTS70008."""
    app = msal_app()
    flow = start_flow(app)
    response = sign_in(ca_context, flow["auth_uri"])
    sandbox.clock.advance(sandbox.config.auth_code_lifetime_seconds + 1)
    result = app.acquire_token_by_auth_code_flow(flow, response)
    assert result["error_codes"] == [70008]


def test_wrong_pkce_verifier_is_refused(msal_app: MsalFactory, ca_context: ssl.SSLContext) -> None:
    """A code_verifier that does not match the challenge gives AADSTS501481."""
    app = msal_app()
    flow = start_flow(app)
    response = sign_in(ca_context, flow["auth_uri"])
    flow["code_verifier"] = "x" * 43
    result = app.acquire_token_by_auth_code_flow(flow, response)
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [501481]


def test_redirect_uri_must_match_the_authorize_request(
    msal_app: MsalFactory, ca_context: ssl.SSLContext
) -> None:
    """Redeeming with another redirect URI than /authorize saw is refused."""
    app = msal_app()
    flow = start_flow(app)
    response = sign_in(ca_context, flow["auth_uri"])
    flow["redirect_uri"] = "http://localhost:1/other"
    result = app.acquire_token_by_auth_code_flow(flow, response)
    assert result["error"] == "invalid_request"


def test_user_declining_consent_comes_back_as_access_denied(
    sandbox: Sandbox, msal_app: MsalFactory, ca_context: ssl.SSLContext
) -> None:
    """The deny knob makes /authorize redirect with error=access_denied, which MSAL returns as an error."""
    sandbox.entra.deny_next_authorize()
    app = msal_app()
    flow = start_flow(app)
    result = app.acquire_token_by_auth_code_flow(flow, sign_in(ca_context, flow["auth_uri"]))
    assert result["error"] == "access_denied"


def test_query_response_mode_redirects_with_code_and_state(
    msal_app: MsalFactory, ca_context: ssl.SSLContext
) -> None:
    """With response_mode=query /authorize answers 302 to the redirect URI with code and state."""
    app = msal_app()
    with pytest.warns(UserWarning, match="form_post"):
        flow = app.initiate_auth_code_flow([BC_SCOPE], redirect_uri=REDIRECT)
    response = sign_in(ca_context, flow["auth_uri"])
    assert response["state"] == flow["state"]
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, response)


def test_non_loopback_redirect_uri_is_rejected_at_authorize(
    sandbox: Sandbox, ca_context: ssl.SSLContext
) -> None:
    """/authorize shows an error page (no redirect) for a redirect URI that is not registered."""
    env = sandbox.env
    url = f"{env['BC_AUTHORITY_HOST']}/{env['BC_TENANT_ID']}/oauth2/v2.0/authorize"
    params = {
        "client_id": env["BC_CLIENT_ID"],
        "redirect_uri": "https://evil.example/cb",
        "response_type": "code",
        "scope": BC_SCOPE,
    }
    with httpx.Client(verify=ca_context) as client:
        response = client.get(url, params=params)
    assert response.status_code == 400
    assert "AADSTS50011" in response.text


def test_wrong_client_secret_is_invalid_client(sandbox: Sandbox, msal_app: MsalFactory) -> None:
    """A wrong secret gives invalid_client AADSTS7000215, never echoing the secret."""
    result = msal_app(secret="not-the-secret").acquire_token_for_client(scopes=[BC_SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    secret_echoed = "not-the-secret" in json.dumps(result)  # a bool, so a failure never prints the secret
    assert not secret_echoed


def test_client_assertion_with_the_registered_certificate(sandbox: Sandbox, msal_app: MsalFactory) -> None:
    """MSAL's certificate credential (signed client assertion) is accepted."""
    env = sandbox.env
    credential = {
        "private_key": Path(env["SANDBOX_CLIENT_CERT"]).read_text(),
        "thumbprint": env["SANDBOX_CLIENT_CERT_THUMBPRINT"],
    }
    result = msal_app(secret=credential).acquire_token_for_client(scopes=[BC_SCOPE])
    assert "access_token" in result, result.get("error_description")


def test_injected_5xx_makes_msal_raise_then_tokens_flow_again(
    sandbox: Sandbox, msal_app: MsalFactory
) -> None:
    """A forced 503 surfaces as MsalServiceError (MSAL raises on 5xx); the next call succeeds."""
    sandbox.entra.fail_next_token_calls(1, status=503)
    app = msal_app()
    with pytest.raises(MsalServiceError, match="503"):
        app.acquire_token_for_client(scopes=[BC_SCOPE])
    assert "access_token" in app.acquire_token_for_client(scopes=[BC_SCOPE])
    assert sandbox.entra.token_calls["client_credentials"] == 2


def test_injected_429_is_returned_as_an_error_with_retry_after(
    sandbox: Sandbox, msal_app: MsalFactory
) -> None:
    """A forced 429 comes back from MSAL as an error dict (MSAL only raises on 5xx)."""
    sandbox.entra.fail_next_token_calls(1, status=429, retry_after=0)
    result = msal_app().acquire_token_for_client(scopes=[BC_SCOPE])
    assert result["error"] == "temporarily_unavailable"
    assert sandbox.entra.token_errors["temporarily_unavailable"] == 1


def test_token_lifetime_knob_sets_expires_in(sandbox: Sandbox, msal_app: MsalFactory) -> None:
    """The lifetime knob controls expires_in and the exp claim."""
    sandbox.entra.token_lifetime_seconds = 600
    result = msal_app().acquire_token_for_client(scopes=[BC_SCOPE])
    token = claims(result["access_token"])
    assert result["expires_in"] == 600
    assert token["exp"] - token["iat"] == 600


def test_scopes_of_two_resources_are_refused(msal_app: MsalFactory) -> None:
    """Asking for BC and Key Vault in one token request gives invalid_scope."""
    result = msal_app().acquire_token_for_client(scopes=[BC_SCOPE, "https://vault.azure.net/.default"])
    assert result["error"] == "invalid_scope"
