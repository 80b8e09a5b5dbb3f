"""Sandbox BC with several environments per tenant, over httpx with real MSAL tokens: routing, registered
applications, per-environment limits and data, environment discovery."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator

import httpx
import msal
import pytest

from sandbox import Sandbox
from tests.integration.sandbox.conftest import BC_SCOPE, CaSession
from tests.integration.sandbox.flows import delegated_tokens

pytestmark = pytest.mark.integration

TokenFor = Callable[[str], str]


@pytest.fixture
def customer(sandbox: Sandbox) -> str:
    """The customer tenant, with the primary app consented there."""
    tenant = sandbox.tenant_ids[1]
    sandbox.entra.grant_consent(tenant, sandbox.env["BC_CLIENT_ID"])
    return tenant


@pytest.fixture
def msal_for(sandbox: Sandbox) -> Iterator[Callable[[str], msal.ConfidentialClientApplication]]:
    """Fresh MSAL clients of the primary app with the authority of the tenant given."""
    sessions: list[CaSession] = []

    def make(tenant_id: str) -> msal.ConfidentialClientApplication:
        env = sandbox.env
        sessions.append(CaSession(env["LOCAL_CA_BUNDLE"]))
        return msal.ConfidentialClientApplication(
            env["BC_CLIENT_ID"],
            client_credential=env["BC_CLIENT_SECRET"],
            authority=f"{env['BC_AUTHORITY_HOST']}/{tenant_id}",
            instance_discovery=False,
            http_client=sessions[-1],
        )

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def token_for(msal_for: Callable[[str], msal.ConfidentialClientApplication]) -> TokenFor:
    """A client-credentials BC token of the primary app in the tenant given."""

    def token(tenant_id: str) -> str:
        result = msal_for(tenant_id).acquire_token_for_client(scopes=[BC_SCOPE])
        assert "access_token" in result, result.get("error_description")
        return str(result["access_token"])

    return token


def client(ca: ssl.SSLContext, token: str) -> httpx.Client:
    """An httpx client sending the bearer token."""
    return httpx.Client(verify=ca, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def companies_url(sandbox: Sandbox, tenant: str, environment: str) -> str:
    """`{base}/v2.0/{tenant}/{environment}/api/v2.0/companies`."""
    return f"{sandbox.bc_url}/v2.0/{tenant}/{environment}/api/v2.0/companies"


def test_env_file_lists_every_environment_with_its_own_company(sandbox: Sandbox) -> None:
    """SANDBOX_BC_ENVIRONMENTS: primary production (the BC_* keys) first, the primary sandbox, customer production."""
    listed = json.loads(sandbox.env["SANDBOX_BC_ENVIRONMENTS"])
    tenants = sandbox.tenant_ids
    assert [(e["tenant"], e["environment"]) for e in listed] == [
        (tenants[0], "production"),
        (tenants[0], "sandbox"),
        (tenants[1], "production"),
    ]
    assert listed[0]["companyId"] == sandbox.env["BC_COMPANY_ID"]
    assert listed[0]["companyName"] == sandbox.env["BC_COMPANY_NAME"]
    assert [e["companyName"] for e in listed[1:]] == ["CRONUS Sandbox", "Customer 1 Ltd"]
    assert len({e["companyId"] for e in listed}) == 3
    for entry in listed:
        assert sandbox.bc.environment(entry["tenant"], entry["environment"]).company_id == entry["companyId"]


def test_each_environment_serves_its_own_company(
    sandbox: Sandbox, token_for: TokenFor, customer: str, ca_context: ssl.SSLContext
) -> None:
    """Tenant in the URL, or taken from the token's tid when the URL has none."""
    primary = sandbox.tenant_id
    with client(ca_context, token_for(primary)) as bc:
        names = bc.get(companies_url(sandbox, primary, "sandbox")).json()["value"]
        assert [c["name"] for c in names] == ["CRONUS Sandbox"]
    with client(ca_context, token_for(customer)) as bc:
        tenantless = bc.get(f"{sandbox.bc_url}/v2.0/production/api/v2.0/companies").json()["value"]
        assert [c["name"] for c in tenantless] == ["Customer 1 Ltd"]
        other_tenant = bc.get(companies_url(sandbox, primary, "production"))
        assert other_tenant.status_code == 401


def test_app_unregistered_in_one_environment_gets_401_there_and_200_in_another(
    sandbox: Sandbox, token_for: TokenFor, ca_context: ssl.SSLContext
) -> None:
    """No Microsoft Entra Application card in `sandbox`: BC's 401 body; `production` still answers."""
    primary, client_id = sandbox.tenant_id, sandbox.env["BC_CLIENT_ID"]
    sandbox.bc.unregister_application(primary, "sandbox", client_id)
    with client(ca_context, token_for(primary)) as bc:
        refused = bc.get(companies_url(sandbox, primary, "sandbox"))
        assert refused.status_code == 401
        error = refused.json()["error"]
        assert error["code"] == "Authentication_InvalidCredentials"
        assert error["message"].startswith(
            "The server has rejected the client credentials.  CorrelationId:  "
        )
        assert refused.headers["www-authenticate"].startswith("Bearer authorization_uri=")
        assert bc.get(companies_url(sandbox, primary, "production")).status_code == 200
        admin = sandbox.env["SANDBOX_ADMIN_URL"]
        card = {"tenant_id": primary, "environment": "sandbox", "client_id": client_id}
        with httpx.Client(verify=ca_context) as control:
            assert control.post(f"{admin}/bc/register-application", json=card).status_code == 200
        assert bc.get(companies_url(sandbox, primary, "sandbox")).status_code == 200
        with httpx.Client(verify=ca_context) as control:
            assert control.post(f"{admin}/bc/unregister-application", json=card).status_code == 200
        assert bc.get(companies_url(sandbox, primary, "sandbox")).status_code == 401


def test_401_challenge_names_the_authority_of_the_urls_tenant(
    sandbox: Sandbox, customer: str, ca_context: ssl.SSLContext
) -> None:
    """No token at the customer's environment: WWW-Authenticate points at the customer tenant's authority."""
    with httpx.Client(verify=ca_context) as anonymous:
        response = anonymous.get(companies_url(sandbox, customer, "production"))
    assert response.status_code == 401
    expected = f'authorization_uri="{sandbox.entra_url}/{customer}/oauth2/authorize"'
    assert expected in response.headers["www-authenticate"]


def test_delegated_tokens_need_no_application_card(
    sandbox: Sandbox,
    msal_for: Callable[[str], msal.ConfidentialClientApplication],
    customer: str,
    ca_context: ssl.SSLContext,
) -> None:
    """The customer's admin signed in: their token reads the customer environment even without the app's card."""
    sandbox.bc.unregister_application(customer, "production", sandbox.env["BC_CLIENT_ID"])
    signed_in = delegated_tokens(msal_for(customer), ca_context)
    with client(ca_context, signed_in["access_token"]) as bc:
        response = bc.get(companies_url(sandbox, customer, "production"))
    assert response.status_code == 200
    assert response.json()["value"][0]["name"] == "Customer 1 Ltd"


def test_unknown_environment_is_404(
    sandbox: Sandbox, token_for: TokenFor, ca_context: ssl.SSLContext
) -> None:
    """An environment the tenant does not have: 404 (the customer's `sandbox` does not exist)."""
    with client(ca_context, token_for(sandbox.tenant_id)) as bc:
        response = bc.get(companies_url(sandbox, sandbox.tenant_id, "staging"))
    assert response.status_code == 404
    assert "'staging'" in response.json()["error"]["message"]


def test_limits_are_per_identity_per_environment(
    sandbox: Sandbox, token_for: TokenFor, ca_context: ssl.SSLContext
) -> None:
    """The same app at its limit in `production` (429) is untouched in `sandbox`."""
    sandbox.bc.limits(rate_limit=2, window_seconds=60)
    primary = sandbox.tenant_id
    with client(ca_context, token_for(primary)) as bc:
        production = [bc.get(companies_url(sandbox, primary, "production")).status_code for _ in range(3)]
        other = [bc.get(companies_url(sandbox, primary, "sandbox")).status_code for _ in range(2)]
    assert production == [200, 200, 429]
    assert other == [200, 200]
    assert sandbox.bc.environment_stats(sandbox.bc.environment(primary, "production")).count(429) == 1
    assert sandbox.bc.environment_stats(sandbox.bc.environment(primary, "sandbox")).count(429) == 0
    assert sandbox.bc.stats().count(429) == 1  # the totals count every environment


def test_data_written_in_one_environment_is_absent_from_the_other(
    sandbox: Sandbox, token_for: TokenFor, ca_context: ssl.SSLContext
) -> None:
    """A customer created in `sandbox` exists there only (read over HTTP and directly)."""
    primary = sandbox.tenant_id
    environment = sandbox.bc.environment(primary, "sandbox")
    created_url = f"{companies_url(sandbox, primary, 'sandbox')}({environment.company_id})/customers"
    with client(ca_context, token_for(primary)) as bc:
        created = bc.post(created_url, json={"displayName": "Only In Sandbox"})
        assert created.status_code == 201
        new_id = created.json()["id"]
        production_url = f"{companies_url(sandbox, primary, 'production')}({sandbox.bc.company_id})/customers"
        assert bc.get(f"{production_url}({new_id})").status_code == 404
    assert new_id in {row["id"] for row in environment.records("customers")}
    assert new_id not in {row["id"] for row in sandbox.bc.records("customers")}


def test_environments_endpoint_lists_the_tokens_tenant(
    sandbox: Sandbox, token_for: TokenFor, customer: str, ca_context: ssl.SSLContext
) -> None:
    """GET /environments/v1.2: the tenant's environments; each webServiceUrl + /api/v2.0 serves that environment."""
    with client(ca_context, token_for(sandbox.tenant_id)) as bc:
        listed = bc.get(f"{sandbox.bc_url}/environments/v1.2").json()["value"]
        assert [(e["name"], e["type"]) for e in listed] == [
            ("production", "Production"),
            ("sandbox", "Sandbox"),
        ]
        first = listed[1]
        assert first["aadTenantId"] == sandbox.tenant_id
        assert first["applicationFamily"] == "BusinessCentral"
        assert {"countryCode", "webClientLoginUrl", "ringName"} <= set(first)
        companies = bc.get(f"{first['webServiceUrl']}/api/v2.0/companies").json()["value"]
        assert companies[0]["name"] == "CRONUS Sandbox"
    with client(ca_context, token_for(customer)) as bc:
        mine = bc.get(f"{sandbox.bc_url}/environments/v1.2").json()["value"]
    assert [(e["aadTenantId"], e["name"]) for e in mine] == [(customer, "production")]
    with httpx.Client(verify=ca_context) as anonymous:
        assert anonymous.get(f"{sandbox.bc_url}/environments/v1.2").status_code == 401


def test_admin_environment_endpoint_reports_company_cards_and_stats(
    sandbox: Sandbox, customer: str, ca_context: ssl.SSLContext
) -> None:
    """POST /_sandbox/bc/environment: company, registered applications, that environment's counters."""
    admin = sandbox.env["SANDBOX_ADMIN_URL"]
    with httpx.Client(verify=ca_context) as control:
        answer = control.post(
            f"{admin}/bc/environment", json={"tenant_id": customer, "environment": "production"}
        ).json()
        missing = control.post(
            f"{admin}/bc/environment", json={"tenant_id": customer, "environment": "sandbox"}
        )
    assert answer["company_name"] == "Customer 1 Ltd"
    assert sandbox.env["BC_CLIENT_ID"] in answer["registered_applications"]
    assert answer["stats"]["requests"] == {}
    assert missing.status_code == 400
