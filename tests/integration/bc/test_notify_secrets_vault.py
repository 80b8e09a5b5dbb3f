"""The notification secrets on the sandbox's Key Vault (real SDK): created once as JSON, read back, cached."""

from __future__ import annotations

import json

import pytest
from azure.identity.aio import ClientSecretCredential
from azure.keyvault.secrets.aio import SecretClient

from sandbox import Sandbox
from shared.changes.secrets import KeyVaultNotifySecrets, NotifySecretsUnavailableError, notify_secret_name
from testkit.clock import ManualClock

pytestmark = pytest.mark.integration


async def test_ensure_writes_one_json_secret_that_get_reads_back(sandbox: Sandbox) -> None:
    env = sandbox.env
    async with (
        ClientSecretCredential(
            env["BC_TENANT_ID"], env["BC_CLIENT_ID"], env["BC_CLIENT_SECRET"], authority=env["BC_AUTHORITY_HOST"],
            disable_instance_discovery=True, connection_verify=env["LOCAL_CA_BUNDLE"],
        ) as credential,
        SecretClient(
            env["KEY_VAULT_URL"], credential, verify_challenge_resource=False,
            connection_verify=env["LOCAL_CA_BUNDLE"],
        ) as client,
    ):  # fmt: skip
        writer = KeyVaultNotifySecrets(client, ManualClock())
        reader = KeyVaultNotifySecrets(client, ManualClock())  # another process
        assert await reader.get("contoso") is None

        created = await writer.ensure("contoso")
        again = await writer.ensure("contoso")
        stored = json.loads(sandbox.vault.peek(notify_secret_name("contoso")) or "")
        fresh = KeyVaultNotifySecrets(client, ManualClock())

        assert created == again == await fresh.get("contoso")
        assert stored == {"key": created.key, "clientState": created.client_state}
        assert await reader.get("contoso") is None  # its "missing" is remembered for a few seconds only


async def test_a_vault_that_refuses_is_an_error_naming_the_fix(sandbox: Sandbox) -> None:
    env = sandbox.env
    async with (
        ClientSecretCredential(
            env["BC_TENANT_ID"], env["BC_CLIENT_ID"], "not-the-secret", authority=env["BC_AUTHORITY_HOST"],
            disable_instance_discovery=True, connection_verify=env["LOCAL_CA_BUNDLE"],
        ) as credential,
        SecretClient(
            env["KEY_VAULT_URL"], credential, verify_challenge_resource=False,
            connection_verify=env["LOCAL_CA_BUNDLE"],
        ) as client,
    ):  # fmt: skip
        with pytest.raises(NotifySecretsUnavailableError, match="KEY_VAULT_URL"):
            await KeyVaultNotifySecrets(client, ManualClock()).ensure("contoso")
