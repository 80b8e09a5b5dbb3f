"""The typed settings object: defaults, aliases, validation that names the bad variable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from shared.errors import IntegrationError, SettingsError
from shared.settings import (
    Impact,
    InvalidSettingsError,
    get_settings,
    load_settings,
    log_settings_problems,
    refresh_schedule_binding,
    require,
    settings_problems,
)
from shared.tokens import AuthMode


def test_defaults_follow_bc_limits_and_hourly_refresh() -> None:
    """With nothing set, the BC limits and the hourly refresh schedule are the documented defaults."""
    settings = load_settings({})

    assert settings.bc.rate_limit_requests == 6000
    assert settings.bc.rate_limit_window_seconds == 300
    assert settings.bc.max_in_flight == 5
    assert settings.auth.mode is AuthMode.CLIENT_CREDENTIALS
    assert refresh_schedule_binding({}) == "0 0 * * * *"
    assert settings.auth.scope == "https://api.businesscentral.dynamics.com/.default"


def test_app_setting_names_map_to_typed_fields() -> None:
    """App settings are read by their exact names and converted to their types."""
    settings = load_settings(
        {
            "BC_AUTH_MODE": "delegated",
            "BC_MAX_IN_FLIGHT": "3",
            "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false",
            "JobsStorage": "UseDevelopmentStorage=true",
            "LOCAL_CA_BUNDLE": "/etc/local-ca/ca.pem",
        }
    )

    assert settings.auth.mode is AuthMode.DELEGATED
    assert settings.bc.max_in_flight == 3
    assert settings.auth.key_vault_verify_challenge_resource is False
    assert settings.storage.connection_string == "UseDevelopmentStorage=true"
    assert str(settings.local.ca_bundle) == "/etc/local-ca/ca.pem"


def test_empty_values_count_as_unset() -> None:
    """An app setting left empty falls back to the default instead of failing validation."""
    assert load_settings({"BC_MAX_IN_FLIGHT": ""}).bc.max_in_flight == 5


@pytest.mark.parametrize(
    ("name", "value"),
    [("BC_MAX_IN_FLIGHT", "9"), ("BC_AUTH_MODE", "password"), ("BC_RATE_SAFETY_MARGIN", "1.5")],
)
def test_bad_value_raises_settings_error_naming_the_variable(name: str, value: str) -> None:
    """A value BC or Entra cannot accept fails fast with the variable's name in the message."""
    with pytest.raises(SettingsError, match=name) as caught:
        load_settings({name: value})
    assert isinstance(caught.value, IntegrationError)


def test_settings_error_never_echoes_the_secret_value() -> None:
    """Validation errors name the setting, not its content (a client secret must not leak)."""
    with pytest.raises(SettingsError) as caught:
        load_settings({"BC_CLIENT_SECRET": "s3cr3t-value", "BC_MAX_IN_FLIGHT": "not-a-number"})
    assert "s3cr3t-value" not in str(caught.value)
    assert "not-a-number" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BC_CLIENT_SECRET", "s3cr3t-value"),
        ("BC_CLIENT_CERTIFICATE_PASSWORD", "s3cr3t-value"),
        ("JobsStorage", "AccountName=a;AccountKey=s3cr3t-value"),
        ("BC_REAUTH_WEBHOOK_URL", "https://hook.example/x?sig=s3cr3t-value"),
    ],
)
def test_secrets_are_hidden_from_repr(name: str, value: str) -> None:
    """Printing the settings object never shows a secret, a key or a signed URL."""
    settings = load_settings({name: value})
    assert "s3cr3t-value" not in repr(settings)


# --- the cold-start check: every misconfiguration named with its fix (issue 10, points 2, 6, 9) -----------------


@pytest.fixture
def good(tmp_path: Path) -> dict[str, str]:
    """Settings the app works with (the local sandbox's shape), with a real PEM file as the CA."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", encoding="utf-8")
    return {
        "BC_AUTH_MODE": "delegated",
        "BC_TENANT_ID": "tenant",
        "BC_CLIENT_ID": "client",
        "BC_CLIENT_SECRET": "s3cr3t-value",
        "BC_AUTHORITY_HOST": "https://127.0.0.1:7443",
        "BC_REDIRECT_URI": "http://127.0.0.1:7071/api/auth/callback",
        "KEY_VAULT_URL": "https://127.0.0.1:7444",
        "BC_API_BASE_URL": "https://127.0.0.1:7445",
        "LOCAL_CA_BUNDLE": str(ca),
        "JobsStorage": "UseDevelopmentStorage=true",
    }


def test_good_settings_have_no_problems(good: dict[str, str]) -> None:
    """The local world's settings pass the check."""
    assert settings_problems(good) == []


def without(values: dict[str, str], *names: str) -> dict[str, str]:
    return {key: value for key, value in values.items() if key not in names}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"BC_TENANT_ID": ""},
            "BC_TENANT_ID is not set: set it to the Directory (tenant) ID of the Entra app registration (locally "
            "`make dev` sets it)",
        ),
        (
            {"BC_AUTH_MODE": "foo"},
            "BC_AUTH_MODE is invalid (Input should be 'client_credentials' or 'delegated'): set it to "
            "client_credentials or delegated",
        ),
        (
            {"LOCAL_CA_BUNDLE": "/var/empty/bc-sandbox-gone/sandbox-ca.pem"},
            "LOCAL_CA_BUNDLE points to /var/empty/bc-sandbox-gone/sandbox-ca.pem, which is not a readable PEM "
            "certificate (a sandbox that was restarted makes a new CA): run `make dev`, or copy LOCAL_CA_BUNDLE "
            "from the running sandbox's .local/sandbox.env; in Azure leave it unset",
        ),
        (
            {"KEY_VAULT_URL": "my vault"},
            "KEY_VAULT_URL is not a Key Vault URL (https://<host>/, no spaces, no path): set it to the vault's "
            "'Vault URI', https://<vault name>.vault.azure.net/ (locally the sandbox's KEY_VAULT_URL)",
        ),
        (
            {"KEY_VAULT_URL": "http://myvault.vault.azure.net"},
            "KEY_VAULT_URL is not a Key Vault URL (https://<host>/, no spaces, no path): set it to the vault's "
            "'Vault URI', https://<vault name>.vault.azure.net/ (locally the sandbox's KEY_VAULT_URL)",
        ),
        (
            {"BC_REDIRECT_URI": ""},
            "BC_REDIRECT_URI is not set (delegated mode needs it; it is never taken from a request's Host "
            "header): set it to the callback registered in Entra, https://<app host>/api/auth/callback (locally "
            "http://127.0.0.1:7071/api/auth/callback)",
        ),
        (
            {"BC_TOKEN_REFRESH_SCHEDULE": "hourly"},
            "BC_TOKEN_REFRESH_SCHEDULE is invalid (Value error, must be a 6-field NCRONTAB expression, seconds "
            "first, e.g. '0 0 * * * *'): set a 6-field NCRONTAB expression (UTC, seconds first), or remove it for "
            "the default '0 0 * * * *'",
        ),
        (
            {"BC_CLIENT_SECRET": ""},
            "BC_CLIENT_SECRET is not set (nor BC_CLIENT_CERTIFICATE_PATH): set the app registration's client "
            "secret (in Azure a Key Vault reference) or a certificate path, or BC_CREDENTIAL=federated with a "
            "user-assigned managed identity (docs/operations.md, federation)",
        ),
        (
            {"JobsStorage": ""},
            "JobsStorage is not set (nor JobsStorage__tableServiceUri and JobsStorage__queueServiceUri): set a "
            "storage connection string (locally `make dev` sets Azurite's), or in Azure the service URIs with "
            "JobsStorage__clientId",
        ),
    ],
    ids=[
        "no-tenant",
        "mode-foo",
        "stale-ca",
        "vault-spaces",
        "vault-http",
        "no-redirect",
        "schedule",
        "no-secret",
        "no-storage",
    ],
)
def test_each_misconfiguration_is_named_with_its_fix(
    good: dict[str, str], change: dict[str, str], expected: str
) -> None:
    """One problem per bad setting: the setting's name, what is wrong, what to do (never the value)."""
    problems = settings_problems({**good, **change})

    assert [str(problem) for problem in problems] == [expected]


def test_problems_never_repeat_a_secret_value(good: dict[str, str]) -> None:
    """A webhook URL with a signature or a secret next to a bad value is never echoed."""
    problems = settings_problems(
        {**good, "BC_REAUTH_WEBHOOK_URL": "ftp://hook.example/x?sig=s3cr3t-sig", "BC_MAX_IN_FLIGHT": "nine"}
    )
    text = " ".join(str(problem) for problem in problems)
    assert "BC_MAX_IN_FLIGHT" in text
    assert "s3cr3t" not in text


def test_load_settings_raises_one_error_naming_every_bad_value() -> None:
    """Several bad values: one InvalidSettingsError listing each setting (settings property in order)."""
    with pytest.raises(InvalidSettingsError) as caught:
        load_settings({"BC_AUTH_MODE": "foo", "BC_MAX_IN_FLIGHT": "9"})
    assert caught.value.settings == ["BC_AUTH_MODE", "BC_MAX_IN_FLIGHT"]


def test_redirect_uri_comes_from_the_setting_or_the_platform_host_name_only(good: dict[str, str]) -> None:
    """BC_REDIRECT_URI wins; else https://{WEBSITE_HOSTNAME}/api/auth/callback; else none (and a problem)."""
    assert load_settings(good).auth.callback_uri == "http://127.0.0.1:7071/api/auth/callback"
    platform = {**without(good, "BC_REDIRECT_URI"), "WEBSITE_HOSTNAME": "bc-func.azurewebsites.net"}
    assert load_settings(platform).auth.callback_uri == "https://bc-func.azurewebsites.net/api/auth/callback"
    assert settings_problems(platform) == []
    assert load_settings(without(good, "BC_REDIRECT_URI")).auth.callback_uri is None


def test_client_credentials_mode_needs_no_redirect_uri(good: dict[str, str]) -> None:
    """Only delegated mode signs in, so only it needs a callback."""
    assert settings_problems({**without(good, "BC_REDIRECT_URI"), "BC_AUTH_MODE": "client_credentials"}) == []


def test_refresh_schedule_binding_is_the_setting_when_set_else_the_default_itself() -> None:
    """Unset, the timer gets the default expression (a %SETTING% naming nothing fails indexing); set, the host
    resolves %BC_TOKEN_REFRESH_SCHEDULE%."""
    assert refresh_schedule_binding({}) == "0 0 * * * *"
    assert refresh_schedule_binding({"BC_TOKEN_REFRESH_SCHEDULE": ""}) == "0 0 * * * *"
    assert (
        refresh_schedule_binding({"BC_TOKEN_REFRESH_SCHEDULE": "0 30 * * * *"})
        == "%BC_TOKEN_REFRESH_SCHEDULE%"
    )


def test_require_raises_only_for_the_impacts_asked(good: dict[str, str]) -> None:
    """A missing redirect URI breaks sign-in, not the token lifecycle (workers keep running)."""
    settings = load_settings(without(good, "BC_REDIRECT_URI"))
    require(settings, Impact.TOKENS, Impact.STORAGE)
    with pytest.raises(InvalidSettingsError, match="BC_REDIRECT_URI"):
        require(settings, Impact.SIGN_IN)


def test_cold_start_check_logs_one_error_naming_each_setting(
    good: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """function_app.py's check: one ERROR record naming every bad setting; nothing when all is well."""
    for key, value in {**good, "BC_TENANT_ID": "", "KEY_VAULT_URL": "my vault"}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        with caplog.at_level(logging.ERROR):
            problems = log_settings_problems()
    finally:
        get_settings.cache_clear()

    assert [problem.setting for problem in problems] == ["BC_TENANT_ID", "KEY_VAULT_URL"]
    assert len(caplog.records) == 1
    assert "BC_TENANT_ID is not set" in caplog.records[0].getMessage()
    assert "KEY_VAULT_URL is not a Key Vault URL" in caplog.records[0].getMessage()


def test_an_unresolved_key_vault_reference_is_named_with_what_to_do(good: dict[str, str]) -> None:
    """App Service leaves `@Microsoft.KeyVault(...)` in a setting it could not resolve: the check names the
    setting (a secret one too) and the fix, and shows no part of the reference."""
    reference = "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/bc-client-secret/)"
    problems = settings_problems({**good, "BC_CLIENT_SECRET": reference, "BC_COMPANY_NAME": reference})
    assert {problem.setting for problem in problems} == {"BC_CLIENT_SECRET", "BC_COMPANY_NAME"}
    text = " ".join(str(problem) for problem in problems)
    assert "Key Vault Secrets User" in text
    assert "kv-x" not in text
