"""The whole app under devhost with exactly the app settings infra/app/function.bicep deploys, pointed at the local
world: storage through Azurite with OAuth and Key Vault through the sandbox's managed-identity endpoint, no
connection string anywhere — the credential path every production deployment runs."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from devhost.azurite import AzuriteEndpoints
from devhost.environment import process_environment
from devhost.ports import free_port, wait_for_port
from devhost.waiting import wait_until
from sandbox import Sandbox
from tests.unit.infra.test_bicep import app_settings

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
# What the test decides; the runner's own values of these never reach devhost.
_OWN: tuple[str, ...] = ("BC_", "KEY_VAULT_", "LOCAL_CA_BUNDLE", "JobsStorage", "AzureWebJobs", "DEVHOST_")
_OWN += ("WEBSITE_", "APPLICATIONINSIGHTS_", "IDENTITY_", "MSI_", "AZURE_", "SSL_CERT_")
# Settings the local world adds to infra's (their Azure values are the code's public-cloud defaults, or Azure's own
# trust store), and the values it must change: the vault answers on 127.0.0.1, which the SDK's challenge-resource
# check (the vault host must end with the challenge's vault.azure.net) cannot accept.
LOCAL_ADDITIONS = {"LOCAL_CA_BUNDLE", "BC_API_BASE_URL", "BC_AUTHORITY_HOST", "DEVHOST_FUNCTION_KEY"}
LOCAL_CHANGES = {"KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false"}


def _accessor_path(value: Mapping[str, Any]) -> str:
    """`storage.properties.primaryEndpoints.queue` from pycep's nested property_accessor operands."""
    operands = value["operator"]["operands"]
    rest = operands["operand_2"]
    return f"{operands['operand_1']}.{rest if isinstance(rest, str) else _accessor_path(rest)}"


def _resolve(value: Any, names: Mapping[str, str]) -> str:
    """A Bicep value with the module's parameters and resource properties replaced by the local world's."""
    if isinstance(value, dict) and "function" in value:  # string(param)
        return names[value["function"]["parameters"]["value_to_convert"]]
    if isinstance(value, dict):
        return names[_accessor_path(value)]
    text = str(value)
    if text in names:  # a bare parameter reference
        return names[text]
    return re.sub(r"\$\{([^}]+)\}", lambda match: names[match.group(1)], text)


def production_settings(
    sandbox: Sandbox, azurite: AzuriteEndpoints, port: int, prefix: str
) -> dict[str, str]:
    """infra's app settings, resolved against the sandbox, the OAuth Azurite and this devhost."""
    env = sandbox.env
    names = {
        "identityClientId": sandbox.managed_identity_client_id,
        # The host's own blob storage (deployment package, timer locks): devhost uses none, Azurite serves no blob.
        "storage.properties.primaryEndpoints.blob": f"https://{azurite.host}:1/devstoreaccount1",
        "storage.properties.primaryEndpoints.queue": azurite.queue_service_uri,
        "storage.properties.primaryEndpoints.table": azurite.table_service_uri,
        "appInsightsConnectionString": "",  # no Application Insights locally: telemetry stays off
        "keyVaultUri": env["KEY_VAULT_URL"],
        "keyVaultName": "sandbox",
        "bcAuthMode": "client_credentials",
        "bcTenantId": env["BC_TENANT_ID"],
        "bcClientId": env["BC_CLIENT_ID"],
        "site.properties.defaultHostName": f"127.0.0.1:{port}",
        "bcReauthWebhookUrl": "",
        "bcEnvironment": env["BC_ENVIRONMENT"],
        "bcCompanyName": env["BC_COMPANY_NAME"],
        "bcMaxInFlight": "5",
        "tablePrefix": prefix,
        "resultsQueueName": "bc-results",
    }
    settings = {name: _resolve(value, names) for name, value in app_settings().items()}
    # The platform resolves the Key Vault reference before the app starts; devhost does not, so the value here is
    # what the reference names in the sandbox: the app registration's secret.
    assert settings["BC_CLIENT_SECRET"].startswith("@Microsoft.KeyVault(")
    settings["BC_CLIENT_SECRET"] = env["BC_CLIENT_SECRET"]
    local = {key: env[key] for key in ("LOCAL_CA_BUNDLE", "BC_API_BASE_URL", "BC_AUTHORITY_HOST")}
    return {**settings, **LOCAL_CHANGES, **local}


@pytest.fixture
def production_app(
    sandbox: Sandbox, azurite_oauth: AzuriteEndpoints
) -> Iterator[tuple[str, str, dict[str, str]]]:
    """`python -m devhost` on function_app.py with the production settings; (base URL, function key, settings)."""
    port, key = free_port(), secrets.token_urlsafe(16)
    settings = {
        **production_settings(sandbox, azurite_oauth, port, "p" + uuid.uuid4().hex[:8]),
        "DEVHOST_FUNCTION_KEY": key,
    }
    # What App Service puts in the environment (not app settings): the managed-identity endpoint; and the machine's
    # trust store, which in Azure holds the public CAs and here the sandbox's (Azurite's HTTPS certificate).
    platform = {**sandbox.managed_identity_env, "SSL_CERT_FILE": str(sandbox.ca_bundle)}
    runner = {k: v for k, v in process_environment().items() if not k.startswith(_OWN)}
    command = [
        sys.executable, "-m", "devhost", "--port", str(port), "--app", "function_app:app",
        "--settings", str(REPO_ROOT / "absent.local.settings.json"), "--host-json", str(REPO_ROOT / "host.json"),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**runner, **platform, **settings},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield f"http://127.0.0.1:{port}", key, settings
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr[-3000:]


def test_a_job_runs_with_the_settings_infra_deploys(
    production_app: tuple[str, str, dict[str, str]], sandbox: Sandbox
) -> None:
    """Enqueued through the front door, a job runs on the queue trigger against BC and succeeds; storage and the
    token set in Key Vault were reached only as the managed identity, and no setting holds a connection string."""
    base_url, key, settings = production_app
    infra_names = set(app_settings())
    assert set(settings) == infra_names | LOCAL_ADDITIONS
    assert not any(name in settings for name in ("JobsStorage", "AzureWebJobsStorage"))
    assert not any(
        re.search("AccountKey|UseDevelopmentStorage|SharedAccessSignature", v) for v in settings.values()
    )
    headers = {"x-functions-key": key}
    job = {
        "jobId": "prod-1",
        "operation": "create",
        "entitySet": "customers",
        "data": {"displayName": "Contoso"},
    }
    accepted = httpx.post(f"{base_url}/api/jobs", json=job, headers=headers, timeout=30)
    assert accepted.status_code == 202, accepted.text

    def state() -> str | None:
        answer = httpx.get(f"{base_url}/api/jobs/prod-1", headers=headers, timeout=30)
        return str(answer.json()["state"]) if answer.status_code == 200 else None

    wait_until(
        lambda: state() in ("succeeded", "failed", "rejected"), timeout=30, what="job prod-1 to finish"
    )
    assert state() == "succeeded"
    assert [c["displayName"] for c in sandbox.bc.records("customers")].count("Contoso") == 1
    identity = sandbox.managed_identity_client_id
    assert set(sandbox.vault.callers) == {identity}  # the BC token set: read and written as the identity only
    assert sandbox.vault.writes >= 1
    assert set(sandbox.identity.token_calls) == {"https://storage.azure.com", "https://vault.azure.net"}
