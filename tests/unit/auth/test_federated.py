"""A federated credential: the managed identity's exchange token as MSAL's client assertion, its refusals named
with the fix, and settings that need no secret at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ServiceRequestError
from azure.identity import CredentialUnavailableError

from shared.auth.compose import _assertion_identity, _identity_provider, _Shared, msal_config
from shared.auth.errors import CredentialsRejectedError, TokenRefreshFailedError
from shared.auth.federated import RENEW_BEFORE_SECONDS, TOKEN_EXCHANGE_SCOPE, ManagedIdentityAssertion
from shared.auth.identity import classify
from shared.auth.msal_identity import MsalConfig, MsalIdentity
from shared.auth.notify import NoNotifier
from shared.clock import SystemClock
from shared.connections.connection import Credential, Identity, connection_from_settings
from shared.settings import load_settings, settings_problems

MANAGED = "44444444-4444-4444-4444-444444444444"
OTHER_MANAGED = "55555555-5555-5555-5555-555555555555"
APP = "11111111-1111-1111-1111-111111111111"


class FakeManagedIdentity:
    """The ManagedIdentitySource seam: hands out numbered tokens expiring `lifetime` after the fake time, or raises."""

    def __init__(self, now: list[float], lifetime: int = 3600) -> None:
        self.now = now
        self.lifetime = lifetime
        self.scopes: list[str] = []
        self.error: Exception | None = None
        self.closed = False

    def get_token(self, *scopes: str) -> AccessToken:
        self.scopes.extend(scopes)
        if self.error is not None:
            raise self.error
        return AccessToken(f"mi-token-{len(self.scopes)}", int(self.now[0]) + self.lifetime)

    def close(self) -> None:
        self.closed = True


def test_the_assertion_is_the_exchange_token_kept_until_shortly_before_it_expires() -> None:
    """One managed-identity request serves every token request until RENEW_BEFORE_SECONDS before expiry."""
    now = [1_000_000.0]
    source = FakeManagedIdentity(now)
    assertion = ManagedIdentityAssertion(lambda: source, MANAGED, now=lambda: now[0])

    assert [assertion(), assertion()] == ["mi-token-1", "mi-token-1"]
    now[0] += 3600 - RENEW_BEFORE_SECONDS - 1
    assert assertion() == "mi-token-1"
    now[0] += 1
    assert assertion() == "mi-token-2"
    assert source.scopes == [TOKEN_EXCHANGE_SCOPE, TOKEN_EXCHANGE_SCOPE]
    assert assertion.fetches == 2
    asyncio.run(assertion.close())
    assert source.closed


def test_renewing_drops_the_kept_token_and_the_credential_whose_cache_holds_it() -> None:
    """After Entra found the token expired (AADSTS700024), a new credential fetches a new token; both are closed."""
    now = [0.0]
    made: list[FakeManagedIdentity] = []

    def make() -> FakeManagedIdentity:
        made.append(FakeManagedIdentity(now))
        return made[-1]

    assertion = ManagedIdentityAssertion(make, MANAGED, now=lambda: now[0])
    assert assertion() == "mi-token-1"
    assertion.renew()
    assert assertion() == "mi-token-1"  # the new credential's first token
    assert len(made) == 2
    assert assertion.fetches == 2
    asyncio.run(assertion.close())
    assert all(source.closed for source in made)


def test_a_missing_identity_is_refused_with_the_fix_and_an_unreachable_endpoint_is_transient() -> None:
    """The endpoint's 400 (no such identity on this host) needs an admin; a connection failure is retried."""
    now = [0.0]
    source = FakeManagedIdentity(now)
    assertion = ManagedIdentityAssertion(lambda: source, MANAGED, now=lambda: now[0])
    source.error = CredentialUnavailableError("400, Unable to load the proper Managed Identity.")
    with pytest.raises(CredentialsRejectedError, match="attach that user-assigned identity") as refused:
        assertion()
    assert MANAGED in str(refused.value)
    assert "BC_MANAGED_IDENTITY_CLIENT_ID" in str(refused.value)
    source.error = ServiceRequestError("connection refused")
    with pytest.raises(TokenRefreshFailedError):
        assertion()


def test_msal_gets_the_assertion_as_a_callable_before_any_secret_or_certificate() -> None:
    """client_credential={"client_assertion": callable}: MSAL asks it for a fresh assertion (msal 1.39)."""
    assertion = ManagedIdentityAssertion(lambda: FakeManagedIdentity([0.0]), MANAGED)
    config = MsalConfig(APP, "tenant", "https://login.microsoftonline.com", "s/.default", assertion=assertion)
    assert config.credential() == {"client_assertion": assertion}
    assert "assertion" not in repr(config)


@pytest.mark.parametrize(
    ("error", "code", "says"),
    [
        ("invalid_request", 70021, "no record matches"),
        ("invalid_client", 700211, "issuer differs"),
        ("invalid_client", 700212, "audience differs"),
        ("invalid_client", 700213, "subject differs"),
        ("invalid_client", 700024, "expired"),
    ],
)
def test_a_refused_assertion_is_rejected_credentials_naming_the_federated_record_and_the_command(
    error: str, code: int, says: str
) -> None:
    """AADSTS70021 arrives as invalid_request, which alone would pass for transient: the code decides."""
    refused = classify(error, [code], app_only=True)
    assert isinstance(refused, CredentialsRejectedError)
    assert refused.error_code == f"{error}/AADSTS{code}"
    message = str(refused)
    assert says in message
    for fix in ("subject", "api://AzureADTokenExchange", "az ad app federated-credential create"):
        assert fix in message


def federated_settings(**extra: str) -> dict[str, str]:
    return {
        "BC_TENANT_ID": "tenant",
        "BC_CLIENT_ID": APP,
        "BC_CREDENTIAL": "federated",
        "KEY_VAULT_URL": "https://vault.example.net",
        "JobsStorage__clientId": MANAGED,
        "JobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
        "JobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
        **extra,
    }


def test_federated_settings_need_no_secret_and_use_the_apps_own_identity_when_none_is_named() -> None:
    """No BC_CLIENT_SECRET, no problem; the vault is opened as the managed identity; the settings' connection's
    primary identity is federated through JobsStorage__clientId, or BC_MANAGED_IDENTITY_CLIENT_ID when set."""
    assert settings_problems(federated_settings()) == []
    settings = load_settings(federated_settings())
    assert settings.vault_credential == "managed_identity"
    primary = connection_from_settings(settings).primary
    assert (primary.credential, primary.managed_identity_client_id) == (Credential.FEDERATED, MANAGED)
    named = load_settings(federated_settings(BC_MANAGED_IDENTITY_CLIENT_ID=OTHER_MANAGED))
    assert connection_from_settings(named).primary.managed_identity_client_id == OTHER_MANAGED


def test_federated_settings_name_a_missing_identity_and_a_vault_credential_that_needs_a_secret(
    tmp_path: Path,
) -> None:
    """Each problem names its setting and fix; locally (a CA) the default vault credential is the identity too."""
    values = {k: v for k, v in federated_settings().items() if k != "JobsStorage__clientId"}
    problems = settings_problems({**values, "KEY_VAULT_CREDENTIAL": "client_secret"})
    assert [p.setting for p in problems] == ["BC_MANAGED_IDENTITY_CLIENT_ID", "KEY_VAULT_CREDENTIAL"]
    assert "user-assigned" in problems[0].fix
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", encoding="utf-8")
    assert load_settings(federated_settings(LOCAL_CA_BUNDLE=str(ca))).vault_credential == "managed_identity"


def shared_parts(settings_values: dict[str, str]) -> _Shared:
    settings = load_settings(settings_values)
    return _Shared(None, None, SystemClock(), NoNotifier(), settings)  # type: ignore[arg-type]


def test_identities_federated_through_one_managed_identity_share_its_assertion() -> None:
    """Two identities (and the settings' own, when federated) on one managed identity: one assertion, one token
    request per lifetime; a secret identity gets none."""
    shared = shared_parts(federated_settings())
    config = msal_config(shared.settings)
    closers: list[object] = []
    one = Identity(
        name="one", client_id=APP, credential=Credential.FEDERATED, managed_identity_client_id=MANAGED
    )
    two = Identity(name="two", client_id=OTHER_MANAGED, credential=Credential.SETTINGS)
    first = _identity_provider(config, shared, one, "c--one", closers)  # type: ignore[arg-type]
    second = _identity_provider(config, shared, two, "c--two", closers)  # type: ignore[arg-type]
    assert isinstance(first, MsalIdentity)
    assert isinstance(second, MsalIdentity)
    assert first._config.assertion is second._config.assertion is shared.assertions[MANAGED]
    assert first._config.client_secret is None
    secret = load_settings({**federated_settings(), "BC_CREDENTIAL": "secret", "BC_CLIENT_SECRET": "x"})
    assert _assertion_identity(secret, two) is None
    assert _assertion_identity(secret, one) == MANAGED
