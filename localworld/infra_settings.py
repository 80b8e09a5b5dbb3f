"""The app settings infra/app/function.bicep deploys, resolved against the local world: what a local run uses to run
the app exactly as Azure would (identity-based `JobsStorage__*` / `AzureWebJobsStorage__*`, Key Vault through the
managed identity, no connection string), shared by tests/integration/test_production_settings.py and the demo's S2S
mode.

The Bicep is read with pycep (offline, no Bicep CLI), as tests/unit/infra/test_bicep.py does; its parameters and the
properties of the resources it references (the storage account's endpoints, the site's host name) become the local
world's values. Names the local world adds (their Azure values are the code's public-cloud defaults) and values it
must change are declared here, so a run can say exactly how it differs from a deployment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

FUNCTION_BICEP = Path(__file__).resolve().parent.parent / "infra" / "app" / "function.bicep"
# Settings the local world adds to infra's: the sandbox's CA and its Entra and BC addresses.
LOCAL_ADDITIONS = frozenset({"LOCAL_CA_BUNDLE", "BC_API_BASE_URL", "BC_AUTHORITY_HOST"})
# ... and the value it must change: the vault answers on 127.0.0.1, which the SDK's challenge-resource check (the
# vault host must end with the challenge's vault.azure.net) cannot accept.
LOCAL_CHANGES: Mapping[str, str] = {"KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false"}
# What such a run decides itself: a runner's own values of these (a developer's shell) never reach devhost.
DECIDED_PREFIXES: tuple[str, ...] = (
    "BC_",
    "KEY_VAULT_",
    "LOCAL_CA_BUNDLE",
    "JobsStorage",
    "AzureWebJobs",
    "DEVHOST_",
)
DECIDED_PREFIXES += ("WEBSITE_", "APPLICATIONINSIGHTS_", "IDENTITY_", "MSI_", "AZURE_", "SSL_CERT_")
# A storage connection string or shared key in a value (Azure's and Azurite's forms).
_CONNECTION_STRING = re.compile("AccountKey|UseDevelopmentStorage|SharedAccessSignature|SharedAccessKey")


@cache
def infra_app_settings() -> dict[str, Any]:
    """The `appsettings` properties of function.bicep as pycep parses them (values may be expressions)."""
    parsed = BicepParser().parse(file_path=FUNCTION_BICEP)
    return dict(parsed["resources"]["settings"]["config"]["properties"])


@dataclass(frozen=True, slots=True)
class LocalResources:
    """Where infra's parameters and resource properties point locally."""

    sandbox_env: Mapping[str, str] = field(
        repr=False
    )  # the sandbox's env (file): URLs, app registration, secret
    queue_service_uri: str  # the OAuth Azurite's (or a proxy in front of it)
    table_service_uri: str
    host_name: str  # the site's defaultHostName: devhost's host:port
    table_prefix: str
    results_queue: str = "bc-results"
    max_in_flight: str = "5"
    # infra's bcCredential: `federated` deploys no secret (the sandbox's app registration then has none either:
    # `--federated-app 0`, SandboxConfig(secretless_apps=(0,), federated_credentials=...)).
    credential: str = "secret"


def _accessor_path(value: Mapping[str, Any]) -> str:
    """`storage.properties.primaryEndpoints.queue` from pycep's nested property_accessor operands."""
    operands = value["operator"]["operands"]
    rest = operands["operand_2"]
    return f"{operands['operand_1']}.{rest if isinstance(rest, str) else _accessor_path(rest)}"


def _resolve(value: Any, names: Mapping[str, str]) -> str:
    """A Bicep value with the module's parameters and resource properties replaced by the local world's."""
    if (
        isinstance(value, dict) and value.get("operator", {}).get("type") == "conditional"
    ):  # (p == 'x') ? a : b
        operands = value["operator"]["operands"]
        compared = operands["condition"]["operator"]["operands"]
        chosen = names[compared["operand_1"]] == compared["operand_2"]
        return _resolve(operands["true_value" if chosen else "false_value"], names)
    if isinstance(value, dict) and "function" in value:  # string(param)
        return names[value["function"]["parameters"]["value_to_convert"]]
    if isinstance(value, dict):
        return names[_accessor_path(value)]
    text = str(value)
    if text in names:  # a bare parameter reference
        return names[text]
    return re.sub(r"\$\{([^}]+)\}", lambda match: names[match.group(1)], text)


def _names(world: LocalResources) -> dict[str, str]:
    env = world.sandbox_env
    queue_host = world.queue_service_uri.split("://", 1)[-1].split(":", 1)[0]
    return {
        "identityClientId": env["SANDBOX_MANAGED_IDENTITY_CLIENT_ID"],
        # The host's own blob storage (deployment package, timer locks): devhost uses none, Azurite serves no blob.
        "storage.properties.primaryEndpoints.blob": f"https://{queue_host}:1/devstoreaccount1",
        "storage.properties.primaryEndpoints.queue": world.queue_service_uri,
        "storage.properties.primaryEndpoints.table": world.table_service_uri,
        "appInsightsConnectionString": "",  # no Application Insights locally: telemetry stays off
        "keyVaultUri": env["KEY_VAULT_URL"],
        "keyVaultName": "sandbox",
        "bcAuthMode": "client_credentials",
        "bcCredential": world.credential,
        "bcTenantId": env["BC_TENANT_ID"],
        "bcClientId": env["BC_CLIENT_ID"],
        "site.properties.defaultHostName": world.host_name,
        "bcReauthWebhookUrl": "",
        "bcEnvironment": env["BC_ENVIRONMENT"],
        "bcCompanyName": env["BC_COMPANY_NAME"],
        "bcMaxInFlight": world.max_in_flight,
        "tablePrefix": world.table_prefix,
        "resultsQueueName": world.results_queue,
    }


def production_settings(world: LocalResources) -> dict[str, str]:
    """infra's app settings resolved against the local world, plus LOCAL_ADDITIONS, with LOCAL_CHANGES."""
    settings = {name: _resolve(value, _names(world)) for name, value in infra_app_settings().items()}
    # The platform resolves the Key Vault reference before the app starts; devhost does not, so the value here is
    # what the reference names in the sandbox: the app registration's secret. Federated: empty, as infra deploys it.
    if world.credential != "federated":
        if not settings["BC_CLIENT_SECRET"].startswith("@Microsoft.KeyVault("):
            raise ValueError("BC_CLIENT_SECRET in function.bicep is no longer a Key Vault reference")
        settings["BC_CLIENT_SECRET"] = world.sandbox_env["BC_CLIENT_SECRET"]
    local = {key: world.sandbox_env[key] for key in sorted(LOCAL_ADDITIONS)}
    return {**settings, **LOCAL_CHANGES, **local}


def platform_environment(sandbox_env: Mapping[str, str]) -> dict[str, str]:
    """What App Service puts in a site's environment (not app settings): the managed-identity endpoint; and the
    machine's trust store, which in Azure holds the public CAs and here the sandbox's (Azurite's HTTPS certificate).
    The sandbox's env file keeps the endpoint under SANDBOX_ names so nothing picks the identity up by accident."""
    return {
        "IDENTITY_ENDPOINT": sandbox_env["SANDBOX_IDENTITY_ENDPOINT"],
        "IDENTITY_HEADER": sandbox_env["SANDBOX_IDENTITY_HEADER"],
        "SSL_CERT_FILE": sandbox_env["LOCAL_CA_BUNDLE"],
    }


def undecided(environment: Mapping[str, str]) -> dict[str, str]:
    """A runner's environment without what a production-settings run decides itself (DECIDED_PREFIXES)."""
    return {key: value for key, value in environment.items() if not key.startswith(DECIDED_PREFIXES)}


def connection_strings(environment: Mapping[str, str]) -> list[str]:
    """Names in an environment that hold a storage connection string or key (none for a run as infra deploys)."""
    exact = {"JobsStorage", "AzureWebJobsStorage"}
    return sorted(k for k, v in environment.items() if k in exact or _CONNECTION_STRING.search(v))
