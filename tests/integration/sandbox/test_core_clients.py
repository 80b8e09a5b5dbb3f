"""The sandbox is usable by the real clients with only the env keys."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import httpx
import msal
import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from sandbox import Sandbox
from shared.settings import load_settings
from tests.integration.sandbox.conftest import BC_SCOPE

pytestmark = pytest.mark.integration


def test_env_keys_load_into_settings(sandbox_env: dict[str, str]) -> None:
    """The env keys load straight into the app's settings."""
    settings = load_settings(sandbox_env)
    assert settings.auth.tenant_id == sandbox_env["BC_TENANT_ID"]
    assert settings.bc.api_base_url.startswith("https://127.0.0.1:")
    assert settings.auth.key_vault_verify_challenge_resource is False
    assert settings.local.ca_bundle is not None
    assert settings.local.ca_bundle.exists()


def test_msal_client_credentials_with_verify_kwarg(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """MSAL's documented `verify=ca_path` works once no *_CA_BUNDLE variable overrides it."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    env = sandbox.env
    app = msal.ConfidentialClientApplication(
        env["BC_CLIENT_ID"],
        client_credential=env["BC_CLIENT_SECRET"],
        authority=f"{env['BC_AUTHORITY_HOST']}/{env['BC_TENANT_ID']}",
        instance_discovery=False,
        verify=env["LOCAL_CA_BUNDLE"],
    )
    first = app.acquire_token_for_client(scopes=[BC_SCOPE])
    second = app.acquire_token_for_client(scopes=[BC_SCOPE])
    assert first["token_type"] == "Bearer"
    assert first["expires_in"] >= 3600
    assert second["token_source"] == "cache"
    assert sandbox.entra.token_calls["client_credentials"] == 1


def test_secret_client_sets_and_gets_through_the_challenge(sandbox: Sandbox) -> None:
    """SecretClient with ClientSecretCredential passes the 401 challenge and round-trips a secret."""
    env = sandbox.env
    credential = ClientSecretCredential(
        env["BC_TENANT_ID"],
        env["BC_CLIENT_ID"],
        env["BC_CLIENT_SECRET"],
        authority=env["BC_AUTHORITY_HOST"],
        disable_instance_discovery=True,
        connection_verify=env["LOCAL_CA_BUNDLE"],
    )
    client = SecretClient(
        env["KEY_VAULT_URL"],
        credential,
        verify_challenge_resource=False,
        connection_verify=env["LOCAL_CA_BUNDLE"],
    )
    with client, credential:
        client.set_secret("bc-token-default", '{"access_token": "x"}', content_type="application/json")
        fetched = client.get_secret("bc-token-default")
    assert fetched.value == '{"access_token": "x"}'
    assert fetched.properties.content_type == "application/json"
    assert (sandbox.vault.writes, sandbox.vault.reads) == (1, 1)


def test_vault_challenges_a_request_without_token(sandbox: Sandbox) -> None:
    """A token-less request gets 401 with the bearer challenge naming the sandbox authority and the vault resource."""
    context = ssl.create_default_context(cafile=str(sandbox.ca_bundle))
    with httpx.Client(verify=context) as client:
        response = client.get(f"{sandbox.env['KEY_VAULT_URL']}/secrets/x", params={"api-version": "7.6"})
    assert response.status_code == 401
    expected = f'Bearer authorization="{sandbox.env["BC_AUTHORITY_HOST"]}/{sandbox.env["BC_TENANT_ID"]}", resource="https://vault.azure.net"'
    assert response.headers["www-authenticate"] == expected


async def test_httpx_lists_customers_of_the_demo_company(bc: httpx.AsyncClient, company_url: str) -> None:
    """GET customers returns seeded customers, each with an @odata.etag."""
    response = await bc.get(f"{company_url}/customers", params={"$top": "5"})
    assert response.status_code == 200
    customers: list[dict[str, Any]] = response.json()["value"]
    assert len(customers) == 5
    assert all(c["@odata.etag"].startswith('W/"') and c["number"] for c in customers)


def test_client_fixtures_build_fresh_msal_apps(
    msal_app: Callable[..., msal.ConfidentialClientApplication],
) -> None:
    """Each factory call is a new app, so MSAL's per-app throttle cache never leaks between tests."""
    assert msal_app() is not msal_app()
