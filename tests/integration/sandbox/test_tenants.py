"""Sandbox Entra with several tenants, against the real MSAL and httpx: consent per tenant, admin consent, revocation."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import msal
import pytest

from sandbox import Sandbox
from tests.integration.sandbox.conftest import BC_SCOPE, CaSession
from tests.integration.sandbox.flows import REDIRECT, delegated_tokens

pytestmark = pytest.mark.integration

TenantApp = Callable[[str], msal.ConfidentialClientApplication]


@pytest.fixture
def tenant_app(sandbox: Sandbox) -> Iterator[TenantApp]:
    """Fresh MSAL confidential clients of the primary app, with the authority of the tenant given."""
    sessions: list[CaSession] = []

    def make(tenant_id: str) -> msal.ConfidentialClientApplication:
        env = sandbox.env
        session = CaSession(env["LOCAL_CA_BUNDLE"])
        sessions.append(session)
        return msal.ConfidentialClientApplication(
            env["BC_CLIENT_ID"],
            client_credential=env["BC_CLIENT_SECRET"],
            authority=f"{env['BC_AUTHORITY_HOST']}/{tenant_id}",
            instance_discovery=False,
            http_client=session,
        )

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def customer(sandbox: Sandbox) -> str:
    """The customer tenant (extra_tenants=1 by default)."""
    return sandbox.tenant_ids[1]


def claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unchecked (the test inspects what the sandbox issued)."""
    return dict(jwt.decode(token, options={"verify_signature": False}))


def admin_consent(sandbox: Sandbox, ca: ssl.SSLContext, path: str, **params: str) -> httpx.Response:
    """GET an admin-consent URL like a browser would, without following the redirect."""
    with httpx.Client(verify=ca) as client:
        return client.get(f"{sandbox.entra_url}/{path}", params=params)


def redirect_params(response: httpx.Response) -> dict[str, str]:
    """The query parameters of a 302 to the app's redirect URI."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    return dict(parse_qsl(urlsplit(location).query))


def test_env_file_lists_the_tenants_primary_first(sandbox: Sandbox) -> None:
    """SANDBOX_TENANTS: the primary tenant, then the customer tenant; the primary one is BC_TENANT_ID."""
    tenants = json.loads(sandbox.env["SANDBOX_TENANTS"])
    assert tenants == sandbox.tenant_ids
    assert len(tenants) == 2
    assert tenants[0] == sandbox.env["BC_TENANT_ID"]
    assert sandbox.directory.customers[0].user.upn == "admin@customer1.onmicrosoft.com"


def test_client_credentials_in_a_tenant_without_consent_is_unauthorized_client_700016(
    sandbox: Sandbox, tenant_app: TenantApp, customer: str
) -> None:
    """The app exists (multi-tenant) but has no service principal in the customer tenant: AADSTS700016."""
    result = tenant_app(customer).acquire_token_for_client(scopes=[BC_SCOPE])
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]
    client_id = sandbox.env["BC_CLIENT_ID"]
    assert result["error_description"].startswith(
        f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{customer}'."
    )
    assert "Trace ID:" in result["error_description"]
    assert not sandbox.entra.consented(customer, client_id)


def test_unknown_tenant_token_endpoint_is_invalid_request_90002(
    sandbox: Sandbox, ca_context: ssl.SSLContext
) -> None:
    """A tenant Entra does not know: 400 invalid_request AADSTS90002 with trace and correlation ids."""
    form = {
        "grant_type": "client_credentials",
        "client_id": sandbox.env["BC_CLIENT_ID"],
        "client_secret": sandbox.env["BC_CLIENT_SECRET"],
        "scope": BC_SCOPE,
    }
    with httpx.Client(verify=ca_context) as client:
        response = client.post(
            f"{sandbox.entra_url}/00000000-0000-4000-8000-000000000001/oauth2/v2.0/token", data=form
        )
    body = response.json()
    assert response.status_code == 400
    assert body["error"] == "invalid_request"
    assert body["error_codes"] == [90002]
    assert body["trace_id"]
    assert body["correlation_id"]


def test_admin_consent_redirects_with_admin_consent_true_and_tokens_then_carry_the_customer_tid(
    sandbox: Sandbox, tenant_app: TenantApp, customer: str, ca_context: ssl.SSLContext
) -> None:
    """v1 /adminconsent: 302 to the redirect URI with admin_consent=True, tenant and state; then tokens flow."""
    client_id = sandbox.env["BC_CLIENT_ID"]
    response = admin_consent(
        sandbox,
        ca_context,
        f"{customer}/adminconsent",
        client_id=client_id,
        redirect_uri=REDIRECT,
        state="s-1",
    )
    assert redirect_params(response) == {"admin_consent": "True", "tenant": customer, "state": "s-1"}
    assert sandbox.entra.consented(customer, client_id)
    result = tenant_app(customer).acquire_token_for_client(scopes=[BC_SCOPE])
    token = claims(result["access_token"])
    assert token["tid"] == customer
    primary = claims(
        tenant_app(sandbox.tenant_id).acquire_token_for_client(scopes=[BC_SCOPE])["access_token"]
    )
    assert token["oid"] != primary["oid"]  # each tenant has its own service principal


def test_v2_admin_consent_through_organizations_lands_in_the_admins_tenant_with_the_scope(
    sandbox: Sandbox, customer: str, ca_context: ssl.SSLContext
) -> None:
    """v2 with `organizations` and the customer admin's login_hint: the tenant is the admin's; scope echoed."""
    response = admin_consent(
        sandbox,
        ca_context,
        "organizations/v2.0/adminconsent",
        client_id=sandbox.env["BC_CLIENT_ID"],
        scope=BC_SCOPE,
        redirect_uri=REDIRECT,
        state="s-2",
        login_hint="admin@customer1.onmicrosoft.com",
    )
    assert redirect_params(response) == {
        "admin_consent": "True",
        "tenant": customer,
        "scope": BC_SCOPE,
        "state": "s-2",
    }


def test_denied_admin_consent_redirects_with_access_denied_and_grants_nothing(
    sandbox: Sandbox, tenant_app: TenantApp, customer: str, ca_context: ssl.SSLContext
) -> None:
    """deny_next_admin_consent: error=access_denied with a description and the state; still no consent."""
    sandbox.entra.deny_next_admin_consent()
    client_id = sandbox.env["BC_CLIENT_ID"]
    response = admin_consent(
        sandbox,
        ca_context,
        f"{customer}/adminconsent",
        client_id=client_id,
        redirect_uri=REDIRECT,
        state="s-3",
    )
    params = redirect_params(response)
    assert params["error"] == "access_denied"
    assert params["error_description"]
    assert params["state"] == "s-3"
    assert "admin_consent" not in params
    assert not sandbox.entra.consented(customer, client_id)
    result = tenant_app(customer).acquire_token_for_client(scopes=[BC_SCOPE])
    assert result["error_codes"] == [700016]


@pytest.mark.parametrize(
    ("tenant", "client", "redirect", "code"),
    [
        ("customer", "primary", "https://evil.example/callback", "AADSTS50011"),
        ("customer", "unknown", REDIRECT, "AADSTS700016"),
        ("00000000-0000-4000-8000-000000000001", "primary", REDIRECT, "AADSTS90002"),
    ],
)
def test_admin_consent_errors_show_entras_page_and_never_redirect(
    sandbox: Sandbox,
    customer: str,
    ca_context: ssl.SSLContext,
    tenant: str,
    client: str,
    redirect: str,
    code: str,
) -> None:
    """An unregistered redirect URI, an unknown client id or tenant: an error page, no redirect, no consent."""
    tenant_id = customer if tenant == "customer" else tenant
    client_id = sandbox.env["BC_CLIENT_ID"] if client == "primary" else "11111111-2222-4333-8444-555555555555"
    response = admin_consent(
        sandbox, ca_context, f"{tenant_id}/adminconsent", client_id=client_id, redirect_uri=redirect
    )
    assert response.status_code == 400
    assert code in response.text
    assert not sandbox.entra.consented(customer, sandbox.env["BC_CLIENT_ID"])


def test_revoked_consent_refuses_new_tokens_and_the_tenants_refresh_tokens(
    sandbox: Sandbox, tenant_app: TenantApp, customer: str, ca_context: ssl.SSLContext
) -> None:
    """The customer admin signs in (and consents); after revocation: client credentials 700016, refresh 65001."""
    signed_in = delegated_tokens(tenant_app(customer), ca_context)
    token = claims(signed_in["access_token"])
    assert token["tid"] == customer
    assert token["upn"] == "admin@customer1.onmicrosoft.com"
    client_id = sandbox.env["BC_CLIENT_ID"]
    assert sandbox.entra.consented(customer, client_id)
    sandbox.entra.revoke_consent(customer, client_id)
    refreshed = tenant_app(customer).acquire_token_by_refresh_token(signed_in["refresh_token"], [BC_SCOPE])
    assert refreshed["error"] == "invalid_grant"
    assert refreshed["error_codes"] == [65001]
    assert f"application with ID '{client_id}'" in refreshed["error_description"]
    assert tenant_app(customer).acquire_token_for_client(scopes=[BC_SCOPE])["error_codes"] == [700016]
    primary = tenant_app(sandbox.tenant_id).acquire_token_for_client(scopes=[BC_SCOPE])
    assert "access_token" in primary  # the primary tenant's consent is untouched


def test_admin_endpoints_grant_revoke_and_report_consent(
    sandbox: Sandbox, customer: str, ca_context: ssl.SSLContext
) -> None:
    """grant-consent, consented, revoke-consent and deny-next-admin-consent under SANDBOX_ADMIN_URL."""
    admin = sandbox.env["SANDBOX_ADMIN_URL"]
    pair = {"tenant_id": customer, "client_id": sandbox.env["BC_CLIENT_ID"]}
    with httpx.Client(verify=ca_context) as client:
        assert client.post(f"{admin}/entra/consented", json=pair).json() == {"consented": False}
        assert client.post(f"{admin}/entra/grant-consent", json=pair).status_code == 200
        assert client.post(f"{admin}/entra/consented", json=pair).json() == {"consented": True}
        assert client.post(f"{admin}/entra/revoke-consent", json=pair).status_code == 200
        assert not sandbox.entra.consented(customer, pair["client_id"])
        unknown = client.post(f"{admin}/entra/grant-consent", json={**pair, "tenant_id": "nope"})
        assert unknown.status_code == 400
        assert "SANDBOX_TENANTS" in unknown.json()["error"]
        assert client.post(f"{admin}/entra/deny-next-admin-consent", json={}).status_code == 200
    response = admin_consent(
        sandbox, ca_context, f"{customer}/adminconsent", client_id=pair["client_id"], redirect_uri=REDIRECT
    )
    assert redirect_params(response)["error"] == "access_denied"


@pytest.mark.parametrize(("consented", "code"), [(False, 700016), (True, 7000215)])
def test_bad_secret_in_a_customer_tenant_is_checked_after_the_app_is_found_there(
    sandbox: Sandbox, customer: str, ca_context: ssl.SSLContext, consented: bool, code: int
) -> None:
    """A wrong secret: 700016 while the app has no service principal there, invalid_client 7000215 once it has."""
    if consented:
        sandbox.entra.grant_consent(customer, sandbox.env["BC_CLIENT_ID"])
    form = {
        "grant_type": "client_credentials",
        "client_id": sandbox.env["BC_CLIENT_ID"],
        "client_secret": "not-the-secret",
        "scope": BC_SCOPE,
    }
    with httpx.Client(verify=ca_context) as client:
        response = client.post(f"{sandbox.entra_url}/{customer}/oauth2/v2.0/token", data=form)
    assert response.json()["error_codes"] == [code]
    assert "not-the-secret" not in response.text
