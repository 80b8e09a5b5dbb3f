"""Federated credentials end to end with real libraries: azure-identity's ManagedIdentityCredential takes the
managed identity's token for api://AzureADTokenExchange from the sandbox's App Service endpoint, and MSAL presents
it as the client assertion (a callable, as issue 23 asks) for an app registration that holds no secret.

Sources of each behaviour: sandbox/entra/federation.py and section (d) of the reference.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import msal
import pytest
from azure.identity import ManagedIdentityCredential
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox import Sandbox, SandboxConfig
from sandbox.config import FederatedCredentialConfig
from sandbox.entra.federation import TOKEN_EXCHANGE_APP_ID, FederatedCredential, entra_issuer
from tests.integration.sandbox.conftest import BC_SCOPE, CaSession
from tests.integration.sandbox.flows import delegated_tokens

pytestmark = pytest.mark.integration

EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"
CONFIG = SandboxConfig(
    seed=23,
    extra_clients=1,
    secretless_apps=(1,),  # app 1 holds no secret: only the federated credential below
    federated_credentials=(FederatedCredentialConfig(app=1, identity=0),),
    system_assigned_identity=True,
    consent_extra_tenants=True,
)


@pytest.fixture(scope="module")
def fed_session() -> Iterator[Sandbox]:
    """A sandbox where app 1 trusts the user-assigned managed identity and has no secret."""
    with Sandbox(CONFIG) as running:
        yield running


@pytest.fixture
def fed(fed_session: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """The sandbox, with this process looking like an App Service site that has its managed identities."""
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT", "MSI_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in fed_session.managed_identity_env.items():
        monkeypatch.setenv(name, value)
    try:
        yield fed_session
    finally:
        fed_session.reset()


@pytest.fixture
def confidential(fed: Sandbox) -> Iterator[Callable[..., msal.ConfidentialClientApplication]]:
    """A factory of MSAL confidential clients for an app, a tenant and a credential."""
    sessions: list[CaSession] = []

    def make(
        client_id: str, credential: Any, tenant: str | None = None
    ) -> msal.ConfidentialClientApplication:
        session = CaSession(str(fed.ca_bundle))
        sessions.append(session)
        return msal.ConfidentialClientApplication(
            client_id,
            client_credential=credential,
            authority=f"{fed.entra_url}/{tenant or fed.tenant_id}",
            instance_discovery=False,
            http_client=session,
        )

    yield make
    for session in sessions:
        session.close()


def _secretless(sandbox: Sandbox) -> str:
    return sandbox.directory.apps[1].client_id


def _mi_assertion(client_id: str) -> str:
    with ManagedIdentityCredential(client_id=client_id) as credential:
        token: str = credential.get_token(EXCHANGE_SCOPE).token
    return token


def _user_assigned(sandbox: Sandbox) -> str:
    return sandbox.directory.identities[0].client_id


def _given(assertion: str) -> dict[str, Callable[[], str]]:
    """MSAL's client credential for an assertion taken earlier (a callable: MSAL refuses a plain string)."""
    return {"client_assertion": lambda: assertion}


def _error_code(result: dict[str, Any]) -> int:
    assert "access_token" not in result, "the sandbox accepted an assertion it must refuse"
    return int(result["error_codes"][0])


def test_exchange_token_carries_the_issuer_subject_and_audience_a_federated_credential_names(
    fed: Sandbox,
) -> None:
    """The user-assigned identity's token for api://AzureADTokenExchange: v2.0 issuer, sub = principal id."""
    identity = fed.directory.identities[0]
    claims = jwt.decode(_mi_assertion(identity.client_id), options={"verify_signature": False})
    assert claims["iss"] == f"https://login.microsoftonline.com/{fed.tenant_id}/v2.0"
    assert (claims["sub"], claims["oid"], claims["tid"]) == (
        identity.principal_id,
        identity.principal_id,
        fed.tenant_id,
    )
    assert claims["aud"] == TOKEN_EXCHANGE_APP_ID
    assert fed.identity.token_calls == {"api://AzureADTokenExchange": 1}


def test_endpoint_takes_the_exchange_audience_as_a_resource_without_default(fed: Sandbox) -> None:
    """Plain HTTP, as App Service's protocol: `resource=api://AzureADTokenExchange`; the scope form with
    "/.default" is no resource the sandbox knows (UNCONFIRMED for the real endpoint; the SDKs strip it)."""
    headers = {"X-IDENTITY-HEADER": fed.identity.header}
    query = {"api-version": "2019-08-01", "client_id": _user_assigned(fed)}
    with httpx.Client() as client:
        issued = client.get(
            fed.identity_url, params={**query, "resource": "api://AzureADTokenExchange"}, headers=headers
        )
        refused = client.get(fed.identity_url, params={**query, "resource": EXCHANGE_SCOPE}, headers=headers)
    assert issued.status_code == 200
    assert (issued.json()["resource"], issued.json()["client_id"]) == (
        "api://AzureADTokenExchange",
        _user_assigned(fed),
    )
    assert refused.status_code == 400
    assert "AADSTS500011" in refused.json()["message"]


def test_secretless_app_gets_a_bc_token_with_the_managed_identity_assertion(
    fed: Sandbox, confidential: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    """MSAL calls the assertion callable; the BC token it gets is the app's and BC serves it."""
    calls: list[int] = []

    def assertion() -> str:
        calls.append(1)
        return _mi_assertion(_user_assigned(fed))

    result = confidential(_secretless(fed), {"client_assertion": assertion}).acquire_token_for_client(
        [BC_SCOPE]
    )
    assert "access_token" in result, result.get("error_description")
    assert calls == [1]
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert (claims["appid"], claims["roles"]) == (_secretless(fed), ["API.ReadWrite.All"])
    headers = {"Authorization": f"Bearer {result['access_token']}"}
    with httpx.Client(verify=ssl.create_default_context(cafile=str(fed.ca_bundle))) as client:
        response = client.get(
            f"{fed.bc_url}/v2.0/{fed.tenant_id}/production/api/v2.0/companies", headers=headers
        )
    assert response.status_code == 200, response.text


def test_assertion_from_the_home_tenant_works_in_a_customer_tenant_that_consented(
    fed: Sandbox, confidential: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    """The multi-tenant app consented in a customer tenant: the home tenant's identity, that tenant's token."""
    customer = fed.directory.customers[0].tenant_id
    app = confidential(
        _secretless(fed), {"client_assertion": lambda: _mi_assertion(_user_assigned(fed))}, customer
    )
    result = app.acquire_token_for_client([BC_SCOPE])
    assert "access_token" in result, result.get("error_description")
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["tid"] == customer


def test_delegated_tokens_and_their_refresh_use_the_assertion_too(
    fed: Sandbox, confidential: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    """Auth code and refresh token redemption accept the same assertion (reference D1, D3 point 4)."""
    app = confidential(_secretless(fed), {"client_assertion": lambda: _mi_assertion(_user_assigned(fed))})
    tokens = delegated_tokens(app, ssl.create_default_context(cafile=str(fed.ca_bundle)))
    assert "refresh_token" in tokens, tokens.get("error_description")
    refreshed = app.acquire_token_by_refresh_token(tokens["refresh_token"], [BC_SCOPE])
    assert "access_token" in refreshed, refreshed.get("error_description")


def test_app_without_a_federated_credential_answers_aadsts70021(
    fed: Sandbox, confidential: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    """The primary app trusts no identity: no matching federated identity record."""
    app = confidential(fed.directory.primary.client_id, _given(_mi_assertion(_user_assigned(fed))))
    result = app.acquire_token_for_client([BC_SCOPE])
    assert (_error_code(result), result["error"]) == (70021, "invalid_request")
    assert f"Assertion Subject: '{fed.directory.identities[0].principal_id}'" in result["error_description"]


def test_expired_assertion_answers_aadsts700024(
    fed: Sandbox, confidential: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    """An assertion kept past its expiry (why issue 23 wants a callable): not within its valid time range."""
    kept = _mi_assertion(_user_assigned(fed))
    fed.clock.advance(CONFIG.managed_identity_token_lifetime_seconds + 1)
    result = confidential(_secretless(fed), _given(kept)).acquire_token_for_client([BC_SCOPE])
    assert (_error_code(result), result["error"]) == (700024, "invalid_client")


def test_record_with_another_audience_answers_aadsts700212(
    fed: Sandbox, confidential: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    """Issuer and subject match, the record's audience does not: no record for the assertion's audience."""
    primary = fed.directory.primary.client_id
    subject = fed.directory.identities[0].principal_id
    wrong = FederatedCredential(
        "wrong-audience", entra_issuer(fed.tenant_id), subject, ("api://AzureADMyOrg",)
    )
    fed.entra.add_federated_credential(primary, wrong)
    result = confidential(primary, _given(_mi_assertion(_user_assigned(fed)))).acquire_token_for_client(
        [BC_SCOPE]
    )
    assert _error_code(result) == 700212


def test_identity_of_another_tenant_is_refused(
    fed: Sandbox, confidential: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    """A customer tenant's identity: no record names its issuer (700211); a record that does is still refused,
    the app registration must be in the identity's tenant (70021)."""
    other = fed.directory.customers[0].tenant_id
    foreign, _ = fed.authority.exchange_token(other, "foreign-mi-client", "foreign-mi-principal", 600)
    app = confidential(_secretless(fed), _given(foreign))
    assert _error_code(app.acquire_token_for_client([BC_SCOPE])) == 700211
    record = FederatedCredential("foreign", entra_issuer(other), "foreign-mi-principal")
    fed.entra.add_federated_credential(_secretless(fed), record)
    assert _error_code(app.acquire_token_for_client([BC_SCOPE])) == 70021


def test_system_assigned_identity_gets_its_token_but_is_refused_at_the_exchange(
    fed: Sandbox, confidential: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    """The endpoint issues the system identity's exchange token; Entra refuses it: 700213 against the record for
    the user-assigned one, 70021 against a record naming it ("system-assigned identities aren't supported")."""
    system = fed.directory.identities[1]
    assertion = _mi_assertion(system.client_id)
    app = confidential(_secretless(fed), _given(assertion))
    assert _error_code(app.acquire_token_for_client([BC_SCOPE])) == 700213
    record = FederatedCredential("system", entra_issuer(fed.tenant_id), system.principal_id)
    fed.entra.add_federated_credential(_secretless(fed), record)
    result = app.acquire_token_for_client([BC_SCOPE])
    assert _error_code(result) == 70021
    assert "user-assigned" in result["error_description"]


def test_secret_presented_for_a_secretless_app_answers_aadsts7000215(
    fed: Sandbox, confidential: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    """An app with only federated credentials holds no secret: any secret is an invalid client secret."""
    assert fed.directory.apps[1].client_secret is None
    primary_secret = fed.env["BC_CLIENT_SECRET"]
    result = confidential(_secretless(fed), primary_secret).acquire_token_for_client([BC_SCOPE])
    assert (_error_code(result), result["error"]) == (7000215, "invalid_client")


def test_assertion_signed_by_an_untrusted_key_answers_aadsts700027(
    fed: Sandbox, confidential: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    """The right claims signed by another key: the signature does not validate."""
    claims = jwt.decode(_mi_assertion(_user_assigned(fed)), options={"verify_signature": False})
    forged = jwt.encode(
        claims, rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256"
    )
    result = confidential(_secretless(fed), _given(forged)).acquire_token_for_client([BC_SCOPE])
    assert (_error_code(result), result["error"]) == (700027, "invalid_client")


def test_control_api_creates_twenty_records_and_refuses_the_21st_as_graph_does(fed: Sandbox) -> None:
    """POST /_sandbox/entra/federated-credentials: 19 more beside the configured one, then 400 with the reason."""
    client_id = _secretless(fed)
    url = f"{fed.admin_url}/entra/federated-credentials"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(fed.ca_bundle))) as client:
        for n in range(19):
            created = client.post(
                url, json={"client_id": client_id, "name": f"fic-{n:02}", "subject": f"s{n}"}
            )
            assert created.status_code == 200, created.text
        refused = client.post(url, json={"client_id": client_id, "name": "fic-21", "subject": "s21"})
        listed = client.post(f"{url}/list", json={"client_id": client_id}).json()["value"]
    assert refused.status_code == 400
    assert "20" in refused.json()["error"]
    assert len(listed) == 20
    assert listed[1]["issuer"] == entra_issuer(fed.tenant_id)
    assert listed[1]["audiences"] == ["api://AzureADTokenExchange"]
