"""Sandbox Key Vault against azure-keyvault-secrets with an azure-identity credential."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture
def credential(sandbox: Sandbox) -> Iterator[ClientSecretCredential]:
    """The primary app's credential against the sandbox Entra."""
    env = sandbox.env
    with ClientSecretCredential(
        env["BC_TENANT_ID"],
        env["BC_CLIENT_ID"],
        env["BC_CLIENT_SECRET"],
        authority=env["BC_AUTHORITY_HOST"],
        disable_instance_discovery=True,
        connection_verify=env["LOCAL_CA_BUNDLE"],
    ) as cred:
        yield cred


@pytest.fixture
def secrets(sandbox: Sandbox, credential: ClientSecretCredential) -> Iterator[SecretClient]:
    """A SecretClient that does not retry (so 429/503 reach the test)."""
    env = sandbox.env
    with SecretClient(
        env["KEY_VAULT_URL"],
        credential,
        verify_challenge_resource=False,
        connection_verify=env["LOCAL_CA_BUNDLE"],
        retry_total=0,
    ) as client:
        yield client


def test_versions_are_kept_and_readable_by_version(secrets: SecretClient) -> None:
    """Each set makes a version; latest and older versions are both readable; versions are listed."""
    first = secrets.set_secret("token", "v1")
    second = secrets.set_secret("token", "v2")
    assert secrets.get_secret("token").value == "v2"
    assert secrets.get_secret("token", first.properties.version).value == "v1"
    versions = {p.version for p in secrets.list_properties_of_secret_versions("token")}
    assert versions == {first.properties.version, second.properties.version}


def test_list_properties_pages_through_all_secrets(secrets: SecretClient) -> None:
    """Listing follows nextLink across pages (maxresults 25) and returns every secret without values."""
    for index in range(30):
        secrets.set_secret(f"s{index}", "x")
    listed = list(secrets.list_properties_of_secrets())
    assert sorted(str(p.name) for p in listed) == sorted(f"s{index}" for index in range(30))


def test_deleted_secret_is_gone_and_name_blocked_until_purged(secrets: SecretClient) -> None:
    """begin_delete_secret soft-deletes; get gives 404; set gives 409 until purge."""
    secrets.set_secret("old", "x")
    secrets.begin_delete_secret("old").result()
    with pytest.raises(ResourceNotFoundError):
        secrets.get_secret("old")
    with pytest.raises(HttpResponseError) as conflict:
        secrets.set_secret("old", "y")
    assert conflict.value.status_code == 409
    secrets.purge_deleted_secret("old")
    assert secrets.set_secret("old", "y").value == "y"


def test_value_over_25_kb_is_refused(secrets: SecretClient) -> None:
    """Key Vault's 25 KB value limit: the largest value passes, one byte more is a 400."""
    assert secrets.set_secret("big", "a" * 25600).value is not None
    with pytest.raises(HttpResponseError) as refused:
        secrets.set_secret("big", "a" * 25601)
    assert refused.value.status_code == 400


def test_throttle_knob_gives_429_with_retry_after(sandbox: Sandbox, secrets: SecretClient) -> None:
    """throttle_next answers 429 with Retry-After, then requests pass again."""
    secrets.set_secret("t", "x")
    sandbox.vault.throttle_next(1, retry_after_seconds=7)
    with pytest.raises(HttpResponseError) as throttled:
        secrets.get_secret("t")
    assert throttled.value.status_code == 429
    response = throttled.value.response
    assert response is not None
    assert response.headers["Retry-After"] == "7"  # type: ignore[attr-defined]
    assert secrets.get_secret("t").value == "x"


def test_outage_knob_makes_every_call_503(sandbox: Sandbox, secrets: SecretClient) -> None:
    """With outage on, calls fail with 503; off again, they work."""
    sandbox.vault.outage = True
    with pytest.raises(HttpResponseError) as down:
        secrets.set_secret("t", "x")
    assert down.value.status_code == 503
    sandbox.vault.outage = False
    assert secrets.set_secret("t", "x").value == "x"
    assert sandbox.vault.writes == 1


def test_a_bc_token_is_refused_by_the_vault(
    sandbox: Sandbox, app_token: str, ca_context: ssl.SSLContext
) -> None:
    """A token for BC's audience gets the vault's 401 challenge."""
    with httpx.Client(verify=ca_context) as client:
        response = client.get(
            f"{sandbox.env['KEY_VAULT_URL']}/secrets/x",
            params={"api-version": "7.6"},
            headers={"Authorization": f"Bearer {app_token}"},
        )
    assert response.status_code == 401
    assert 'resource="https://vault.azure.net"' in response.headers["www-authenticate"]
    assert sandbox.vault.reads == 0


async def test_async_secret_client_with_aiohttp_transport(sandbox: Sandbox) -> None:
    """The aio SecretClient and aio ClientSecretCredential (aiohttp) accept the same kwargs and round-trip a secret."""
    from azure.identity.aio import ClientSecretCredential as AsyncCredential
    from azure.keyvault.secrets.aio import SecretClient as AsyncSecretClient

    env = sandbox.env
    async with (
        AsyncCredential(
            env["BC_TENANT_ID"],
            env["BC_CLIENT_ID"],
            env["BC_CLIENT_SECRET"],
            authority=env["BC_AUTHORITY_HOST"],
            disable_instance_discovery=True,
            connection_verify=env["LOCAL_CA_BUNDLE"],
        ) as credential,
        AsyncSecretClient(
            env["KEY_VAULT_URL"],
            credential,
            verify_challenge_resource=False,
            connection_verify=env["LOCAL_CA_BUNDLE"],
        ) as client,
    ):
        await client.set_secret("aio", "value")
        assert (await client.get_secret("aio")).value == "value"
    assert sandbox.vault.peek("aio") == "value"
