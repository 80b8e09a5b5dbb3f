"""The sandbox's managed-identity endpoint against azure-identity, configured only by App Service's env vars."""

from __future__ import annotations

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from azure.keyvault.secrets.aio import SecretClient

from sandbox import Sandbox

pytestmark = pytest.mark.integration

VAULT_SCOPE = "https://vault.azure.net/.default"


@pytest.fixture
def app_service_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The test process looks like an App Service site with the sandbox's managed identity."""
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT", "MSI_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in sandbox.managed_identity_env.items():
        monkeypatch.setenv(name, value)
    return sandbox


async def test_managed_identity_token_reads_the_vault_as_that_identity(app_service_env: Sandbox) -> None:
    """The async ManagedIdentityCredential gets a vault token the sandbox Key Vault accepts, as the identity."""
    sandbox = app_service_env
    sandbox.vault.set_secret("token-set", "value", None, None, True)
    client_id = sandbox.managed_identity_client_id
    async with (
        AsyncManagedIdentityCredential(client_id=client_id) as credential,
        SecretClient(
            sandbox.vault_url,
            credential,
            verify_challenge_resource=False,
            connection_verify=str(sandbox.ca_bundle),
        ) as secrets,
    ):
        secret = await secrets.get_secret("token-set")
    assert secret.value == "value"
    assert sandbox.vault.callers == {client_id: 1}
    assert sandbox.identity.token_calls == {"https://vault.azure.net": 1}


def test_default_azure_credential_picks_the_endpoint_from_the_environment(app_service_env: Sandbox) -> None:
    """DefaultAzureCredential (sync, through MSAL) finds the endpoint from IDENTITY_ENDPOINT and IDENTITY_HEADER."""
    sandbox = app_service_env
    client_id = sandbox.managed_identity_client_id
    with DefaultAzureCredential(managed_identity_client_id=client_id) as credential:
        token = credential.get_token("https://storage.azure.com/.default")
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert (claims["aud"], claims["appid"], claims["tid"]) == (
        "https://storage.azure.com",
        client_id,
        sandbox.tenant_id,
    )
    assert claims["iss"] == f"https://sts.windows.net/{sandbox.tenant_id}/"
    assert token.expires_on == claims["exp"]


def test_an_identity_the_site_does_not_have_is_refused(app_service_env: Sandbox) -> None:
    """A client id that is not the site's identity, or no id without a system identity: 400, no token."""
    with (
        ManagedIdentityCredential(client_id="00000000-0000-4000-8000-000000000000") as credential,
        pytest.raises(ClientAuthenticationError, match="Unable to load the proper Managed Identity"),
    ):
        credential.get_token(VAULT_SCOPE)
    answer = httpx.get(
        app_service_env.identity_url,
        params={"resource": "https://vault.azure.net", "api-version": "2019-08-01"},
        headers={"X-IDENTITY-HEADER": app_service_env.identity.header},
    )
    assert answer.status_code == 400
    assert answer.json()["message"] == "Unable to load the proper Managed Identity."
    assert app_service_env.identity.token_calls == {}


def test_a_request_without_the_identity_header_is_refused(app_service_env: Sandbox) -> None:
    """The SSRF header is required: missing or wrong, the endpoint answers 400 and issues nothing."""
    params = {
        "resource": "https://vault.azure.net",
        "api-version": "2019-08-01",
        "client_id": app_service_env.managed_identity_client_id,
    }
    missing = httpx.get(app_service_env.identity_url, params=params)
    wrong = httpx.get(app_service_env.identity_url, params=params, headers={"X-IDENTITY-HEADER": "guess"})
    assert (missing.status_code, wrong.status_code) == (400, 400)
    assert "access_token" not in missing.text + wrong.text
    assert app_service_env.identity.refusals == 2
