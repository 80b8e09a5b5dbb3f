"""Error classification for the token endpoint and MSAL configuration derived from settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.auth.errors import (
    AuthError,
    CredentialsRejectedError,
    ReauthorizationRequiredError,
    TokenRefreshFailedError,
)
from shared.auth.identity import classify
from shared.auth.msal_identity import ClientCertificate, MsalConfig, _http_client
from shared.azure_clients import SDK_OPTIONS


@pytest.mark.parametrize(
    ("error", "codes", "expected"),
    [
        ("invalid_grant", [70008], ReauthorizationRequiredError),
        ("invalid_grant", [700082], ReauthorizationRequiredError),
        ("invalid_grant", [50173], ReauthorizationRequiredError),
        ("interaction_required", [50076], ReauthorizationRequiredError),
        ("invalid_client", [7000222], CredentialsRejectedError),
        ("unauthorized_client", [700016], CredentialsRejectedError),
        ("temporarily_unavailable", [], TokenRefreshFailedError),
        ("something_new", [], TokenRefreshFailedError),
    ],
)
def test_token_endpoint_errors_are_classified_by_protocol_error(
    error: str, codes: list[int], expected: type[AuthError]
) -> None:
    """invalid_grant family -> reauthorization, app errors -> credentials rejected, the rest transient."""
    assert type(classify(error, codes)) is expected


def test_dead_grant_error_names_the_aadsts_code_and_the_next_step() -> None:
    """The message and error_code carry the AADSTS number and /api/auth/login."""
    error = classify("invalid_grant", [700082])
    assert isinstance(error, ReauthorizationRequiredError)
    assert error.error_code == "invalid_grant/AADSTS700082"
    assert "/api/auth/login" in str(error)


def config(host: str, **kwargs: object) -> MsalConfig:
    return MsalConfig("client", "tenant", host, "scope/.default", **kwargs)  # type: ignore[arg-type]


def test_instance_discovery_stays_default_for_microsoft_hosts_and_is_off_elsewhere() -> None:
    """login.microsoftonline.com keeps MSAL's default; a sandbox on 127.0.0.1 turns discovery off."""
    assert config("https://login.microsoftonline.com").instance_discovery is None
    assert config("https://127.0.0.1:8443").instance_discovery is False


def test_authority_joins_host_and_tenant() -> None:
    """The tenant-specific authority is host/tenant without a double slash."""
    assert (
        config("https://login.microsoftonline.com/").authority == "https://login.microsoftonline.com/tenant"
    )


def test_certificate_takes_precedence_over_secret() -> None:
    """With a PFX configured MSAL gets the pfx dict, otherwise the secret; neither -> a clear error."""
    cert = ClientCertificate(Path("/certs/app.pfx"), "pw")
    both = config("https://login.microsoftonline.com", client_secret="s", certificate=cert)
    assert both.credential() == {"private_key_pfx_path": "/certs/app.pfx", "passphrase": "pw"}
    assert config("https://login.microsoftonline.com", client_secret="s").credential() == "s"
    with pytest.raises(AuthError, match="BC_CLIENT_SECRET"):
        config("https://login.microsoftonline.com").credential()
    assert "pw" not in repr(both)


def test_msal_session_applies_the_sdk_timeouts_and_the_local_ca_on_every_request() -> None:
    """MSAL's requests session gets the same (connect, read) timeouts as the Azure SDK clients, and the CA."""
    session = _http_client(Path("ca.pem"))
    try:
        keywords = session.request.keywords  # type: ignore[attr-defined]
    finally:
        session.close()

    assert keywords["timeout"] == (SDK_OPTIONS["connection_timeout"], SDK_OPTIONS["read_timeout"])
    assert keywords["verify"] == "ca.pem"
