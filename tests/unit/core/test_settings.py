"""The typed settings object: defaults, aliases, validation that names the bad variable."""

from __future__ import annotations

import pytest

from shared.errors import IntegrationError, SettingsError
from shared.settings import AuthMode, load_settings


def test_defaults_follow_bc_limits_and_hourly_refresh() -> None:
    """With nothing set, the BC limits and the hourly refresh schedule are the documented defaults."""
    settings = load_settings({})

    assert settings.bc.rate_limit_requests == 6000
    assert settings.bc.rate_limit_window_seconds == 300
    assert settings.bc.max_in_flight == 5
    assert settings.auth.mode is AuthMode.CLIENT_CREDENTIALS
    assert settings.auth.refresh_schedule == "0 0 * * * *"
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
