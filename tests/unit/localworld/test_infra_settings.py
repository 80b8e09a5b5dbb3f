"""infra's app settings resolved for a local run: every name infra deploys, identity-based storage and Key Vault
through the managed identity, the local world's differences declared, no connection string."""

from __future__ import annotations

import dataclasses

from localworld.infra_settings import (
    LOCAL_ADDITIONS,
    LOCAL_CHANGES,
    LocalResources,
    connection_strings,
    infra_app_settings,
    platform_environment,
    production_settings,
    undecided,
)

ENV = {
    "SANDBOX_MANAGED_IDENTITY_CLIENT_ID": "mi-client",
    "SANDBOX_IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token",
    "SANDBOX_IDENTITY_HEADER": "header",
    "KEY_VAULT_URL": "https://127.0.0.1:8/",
    "BC_TENANT_ID": "tenant",
    "BC_CLIENT_ID": "app-client",
    "BC_CLIENT_SECRET": "app-secret",
    "BC_ENVIRONMENT": "production",
    "BC_COMPANY_NAME": "CRONUS",
    "LOCAL_CA_BUNDLE": "sandbox/ca.pem",
    "BC_API_BASE_URL": "https://127.0.0.1:7",
    "BC_AUTHORITY_HOST": "https://127.0.0.1:6",
}
WORLD = LocalResources(
    ENV,
    queue_service_uri="https://127.0.0.1:5/devstoreaccount1",
    table_service_uri="https://127.0.0.1:4/devstoreaccount1",
    host_name="127.0.0.1:3",
    table_prefix="bc",
)


def test_the_local_run_gets_every_setting_infra_deploys_and_only_the_declared_additions() -> None:
    """Names: infra's plus LOCAL_ADDITIONS; values: the local world's, LOCAL_CHANGES applied, the vault reference
    resolved to the sandbox's secret."""
    settings = production_settings(WORLD)
    assert set(settings) == set(infra_app_settings()) | LOCAL_ADDITIONS
    assert settings["JobsStorage__queueServiceUri"] == WORLD.queue_service_uri
    assert settings["AzureWebJobsStorage__tableServiceUri"] == WORLD.table_service_uri
    assert settings["JobsStorage__credential"] == "managedidentity"
    assert settings["JobsStorage__clientId"] == settings["AzureWebJobsStorage__clientId"] == "mi-client"
    assert settings["KEY_VAULT_CREDENTIAL"] == "managed_identity"
    assert settings["BC_CLIENT_SECRET"] == "app-secret"
    assert settings["BC_REDIRECT_URI"] == "https://127.0.0.1:3/api/auth/callback"
    assert all(settings[name] == value for name, value in LOCAL_CHANGES.items())
    assert connection_strings(settings) == []


def test_a_federated_local_run_has_no_client_secret_and_names_the_credential() -> None:
    """bcCredential federated: BC_CLIENT_SECRET is deployed empty (no Key Vault reference to resolve), and the app
    settings name the credential."""
    values = {key: value for key, value in ENV.items() if key != "BC_CLIENT_SECRET"}
    settings = production_settings(dataclasses.replace(WORLD, sandbox_env=values, credential="federated"))
    assert settings["BC_CREDENTIAL"] == "federated"
    assert settings["BC_CLIENT_SECRET"] == ""
    assert production_settings(WORLD)["BC_CREDENTIAL"] == "secret"


def test_a_connection_string_or_key_is_found_by_name_or_value() -> None:
    """An exact JobsStorage/AzureWebJobsStorage setting, or an account key in any value, is named."""
    found = connection_strings(
        {
            "JobsStorage": "x",
            "OTHER": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k;",
            "JobsStorage__queueServiceUri": "https://a",
        }
    )
    assert found == ["JobsStorage", "OTHER"]


def test_the_platform_gives_the_managed_identity_endpoint_and_the_sandbox_ca() -> None:
    """IDENTITY_ENDPOINT/IDENTITY_HEADER from the sandbox's SANDBOX_ keys, SSL_CERT_FILE its CA."""
    assert platform_environment(ENV) == {
        "IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token",
        "IDENTITY_HEADER": "header",
        "SSL_CERT_FILE": "sandbox/ca.pem",
    }


def test_a_runners_own_storage_and_bc_values_never_reach_a_production_settings_run() -> None:
    """A JobsStorage exported in the shell, BC_ and IDENTITY_ values are dropped; PATH stays."""
    runner = {
        "PATH": "/bin",
        "JobsStorage": "UseDevelopmentStorage=true",
        "BC_AUTH_MODE": "x",
        "IDENTITY_HEADER": "y",
    }
    assert undecided(runner) == {"PATH": "/bin"}
