"""The connection check: steps in order, stopping at the first failure, each failure naming its fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID

import pytest

from shared.auth.compose import AuthServices
from shared.auth.errors import (
    AuthError,
    CredentialsRejectedError,
    NotAuthorizedError,
    ReauthorizationRequiredError,
    TokenRefreshFailedError,
)
from shared.bc.errors import AuthenticationError, AuthorizationError, NotFoundError
from shared.bc.models import Company
from shared.connections import Connection, Credential
from shared.connections.connection import Identity
from shared.connections.registry import ConnectionRegistry
from shared.errors import SettingsError
from shared.onboarding.check import (
    STEPS,
    CheckReport,
    CheckStep,
    ConnectionCheck,
    Links,
    PoolReport,
    aadsts_code,
)
from shared.onboarding.service import Onboarding
from shared.settings import load_settings
from shared.tokens import AccessToken, AuthMode

CONTOSO = UUID("11111111-1111-1111-1111-111111111111")
FABRIKAM = UUID("22222222-2222-2222-2222-222222222222")
CLIENT = "33333333-3333-3333-3333-333333333333"
SECRET_VALUE = "s3cr3t-value-never-shown"


def connection(**changes: object) -> Connection:
    values: dict[str, object] = {
        "name": "acme",
        "tenant_id": "acme.onmicrosoft.com",
        "environment": "production",
        "client_id": CLIENT,
        "company_name": "CRONUS",
        "credential": Credential.KEY_VAULT_SECRET,
        "secret_name": "bc-secret-acme",
    }
    return Connection(**{**values, **changes})


class Tokens:
    """TokenSource: a token, or the error Entra's answer became."""

    def __init__(self, error: AuthError | None = None) -> None:
        self.error = error
        self.calls: list[str] = []

    async def token(self) -> AccessToken:
        self.calls.append("token")
        return self._answer()

    async def refresh_now(self) -> AccessToken:
        self.calls.append("refresh_now")
        return self._answer()

    def _answer(self) -> AccessToken:
        if self.error is not None:
            raise self.error
        return AccessToken("at-secret", datetime.now(UTC) + timedelta(hours=1))


class Bc:
    """BcProbe with scripted answers."""

    def __init__(
        self,
        environments: tuple[str, ...] | None = ("production", "sandbox"),
        companies: tuple[Company, ...] = (Company(CONTOSO, "CRONUS"), Company(FABRIKAM, "Fabrikam")),
        companies_error: Exception | None = None,
        read_error: Exception | None = None,
    ) -> None:
        self._environments = environments
        self._companies = companies
        self._companies_error = companies_error
        self._read_error = read_error
        self.read_from: list[UUID] = []

    async def environments(self) -> tuple[str, ...] | None:
        return self._environments

    async def companies(self) -> tuple[Company, ...]:
        if self._companies_error is not None:
            raise self._companies_error
        return self._companies

    async def read_customers(self, company: UUID) -> None:
        self.read_from.append(company)
        if self._read_error is not None:
            raise self._read_error


async def consent_link() -> str:
    return "https://login.test/acme.onmicrosoft.com/v2.0/adminconsent?state=acme~x"


LINKS = Links(consent=consent_link, sign_in="https://app.test/api/connections/acme/sign-in")


async def run(c: Connection, tokens: Tokens | None = None, bc: Bc | None = None) -> CheckReport:
    return await ConnectionCheck(c, tokens or Tokens(), bc or Bc(), LINKS).run()


def failed_step(report: CheckReport) -> CheckStep:
    """The last step, failed with a fix, after steps that all passed."""
    assert not report.ok
    *passed, last = report.steps
    assert all(step.ok for step in passed)
    assert not last.ok
    assert last.fix
    return last


async def test_a_working_connection_passes_every_step_in_order_and_reads_its_company() -> None:
    bc = Bc()
    tokens = Tokens()
    report = await run(connection(), tokens, bc)
    assert report.ok
    assert [step.name for step in report.steps] == list(STEPS)
    assert report.to_json()["ok"] is True
    assert bc.read_from == [CONTOSO]
    assert tokens.calls == ["refresh_now"]  # client credentials: a fresh token, probing past any backoff


@pytest.mark.parametrize("code", [700016, 7000229, 65001])
async def test_an_app_not_consented_in_the_tenant_is_told_the_consent_link(code: int) -> None:
    error = ReauthorizationRequiredError("refused", error_code=f"unauthorized_client/AADSTS{code}")
    step = failed_step(await run(connection(), Tokens(error)))
    assert step.name == "token"
    assert "grant admin consent in tenant acme.onmicrosoft.com" in str(step.fix)
    assert "adminconsent?state=acme~x" in str(step.fix)


class TokenLostBeforeEnvironments(Bc):
    """The probe asks the token source again for its first BC call, and that fails (BC refused the token the
    token step got, and Entra now refuses the application)."""

    async def environments(self) -> tuple[str, ...] | None:
        raise CredentialsRejectedError("refused", error_code="unauthorized_client/AADSTS700016")


async def test_a_token_lost_after_the_token_step_fails_the_step_it_stopped_with_the_tokens_fix() -> None:
    """The check reports the step whose BC call found no token, with the fix for that error, instead of raising
    (which the API answered with a 503 and no step at all)."""
    report = await run(connection(), Tokens(), TokenLostBeforeEnvironments())
    step = failed_step(report)
    assert [s.name for s in report.steps] == ["token", "environment"]
    assert "grant admin consent in tenant acme.onmicrosoft.com" in str(step.fix)


async def test_a_bad_secret_names_the_key_vault_secret_to_replace_and_never_its_value() -> None:
    error = CredentialsRejectedError("refused", error_code="invalid_client/AADSTS7000215")
    report = await run(connection(), Tokens(error))
    step = failed_step(report)
    answer = str(report.to_json())
    assert "Key Vault secret bc-secret-acme is wrong or expired" in str(step.fix)
    assert "PUT /api/connections/acme with a new clientSecret" in str(step.fix)
    assert SECRET_VALUE not in str(answer)
    assert "at-secret" not in str(answer)


async def test_a_bad_settings_secret_names_bc_client_secret() -> None:
    error = CredentialsRejectedError("refused", error_code="invalid_client/AADSTS7000222")
    c = connection(credential=Credential.SETTINGS, secret_name=None)
    assert "BC_CLIENT_SECRET" in str(failed_step(await run(c, Tokens(error))).fix)


async def test_an_unknown_tenant_asks_to_fix_the_tenant_id() -> None:
    error = TokenRefreshFailedError("Entra could not issue a token right now (invalid_request/AADSTS90002)")
    assert "fix tenantId" in str(failed_step(await run(connection(), Tokens(error))).fix)


async def test_a_delegated_connection_without_a_sign_in_is_given_its_own_sign_in_link() -> None:
    tokens = Tokens(NotAuthorizedError("no token set"))
    step = failed_step(await run(connection(mode=AuthMode.DELEGATED), tokens))
    assert step.fix == (
        "sign in as a user of tenant acme.onmicrosoft.com at https://app.test/api/connections/acme/sign-in"
    )
    assert tokens.calls == ["token"]  # delegated: the stored sign-in's token, no forced refresh


async def test_a_missing_environment_lists_the_tenants_environments() -> None:
    step = failed_step(
        await run(connection(environment="staging"), bc=Bc(environments=("production", "test")))
    )
    assert step.name == "environment"
    assert "no environment 'staging' (it has: production, test)" in str(step.detail)


async def test_without_an_environment_list_bcs_404_names_the_environment() -> None:
    missing = NotFoundError("The environment 'staging' does not exist.", status=404)
    report = await run(connection(environment="staging"), bc=Bc(environments=None, companies_error=missing))
    step = failed_step(report)
    assert step.name == "bc-accepts-token"
    assert "BC has no environment 'staging' in tenant acme.onmicrosoft.com" in str(step.fix)


async def test_bcs_401_asks_to_add_the_app_on_the_entra_applications_page_of_that_environment() -> None:
    refused = AuthenticationError("The server has rejected the client credentials.", status=401)
    step = failed_step(await run(connection(), bc=Bc(companies_error=refused)))
    assert step.name == "bc-accepts-token"
    assert step.fix == (
        f"add the app (client id {CLIENT}) on the Microsoft Entra Applications page of environment production "
        "of tenant acme.onmicrosoft.com, State Enabled, with permission sets (SUPER is not allowed); then run the "
        "check again"
    )


async def test_a_missing_company_lists_the_companies_there() -> None:
    step = failed_step(await run(connection(company_name="Nope")))
    assert step.name == "company"
    assert f"CRONUS ({CONTOSO}); Fabrikam ({FABRIKAM})" in str(step.detail)


async def test_a_company_id_is_matched_by_id() -> None:
    bc = Bc()
    assert (await run(connection(company_name=None, company_id=FABRIKAM), bc=bc)).ok
    assert bc.read_from == [FABRIKAM]


async def test_a_403_on_customers_names_a_permission_set() -> None:
    forbidden = AuthorizationError("no permission", status=403)
    step = failed_step(await run(connection(), bc=Bc(read_error=forbidden)))
    assert step.name == "read-customers"
    assert "may not read customers in environment production" in str(step.fix)


def test_the_aadsts_code_comes_from_the_errors_label() -> None:
    assert aadsts_code(CredentialsRejectedError("x", error_code="invalid_client/AADSTS7000215")) == 7000215
    assert aadsts_code(AuthError("no code here")) is None


SECOND_APP = "44444444-4444-4444-4444-444444444444"
SECOND = Identity(
    name="second",
    client_id=SECOND_APP,
    credential=Credential.KEY_VAULT_SECRET,
    secret_name="bc-conn-acme--second-secret",
)


async def run_identity(tokens: Tokens | None = None, bc: Bc | None = None) -> CheckReport:
    pooled = connection(identities=(SECOND,))
    return await ConnectionCheck(pooled, tokens or Tokens(), bc or Bc(), LINKS, SECOND).run()


async def test_an_identity_bc_refuses_is_told_to_add_its_own_app_on_the_entra_applications_page() -> None:
    refused = AuthenticationError("The server has rejected the client credentials.", status=401)
    report = await run_identity(bc=Bc(companies_error=refused))
    step = failed_step(report)
    assert step.name == "bc-accepts-token"
    assert f"add the app (client id {SECOND_APP}) on the Microsoft Entra Applications page" in str(step.fix)
    assert report.to_json()["identity"] == "second"


async def test_an_identity_s_bad_secret_names_its_own_secret_and_route() -> None:
    error = CredentialsRejectedError("refused", error_code="invalid_client/AADSTS7000215")
    step = failed_step(await run_identity(Tokens(error)))
    assert "Key Vault secret bc-conn-acme--second-secret" in str(step.fix)
    assert "PUT /api/connections/acme/identities/second with a new clientSecret" in str(step.fix)


async def test_the_pool_report_keeps_the_primary_s_steps_and_is_ok_only_when_every_identity_is() -> None:
    good = await run(connection())
    refused = AuthenticationError("refused", status=401)
    bad = await run_identity(bc=Bc(companies_error=refused))
    body = PoolReport((good, bad)).to_json()
    assert body["ok"] is False
    assert body["steps"] == good.to_json()["steps"]
    assert body["identities"] == [good.to_json(), bad.to_json()]
    assert PoolReport((good,)).ok


class UnbuildableAuth:
    """AuthServices whose identities cannot be built (a credential this deployment cannot use yet)."""

    def for_identity(self, connection: Connection, identity: Identity) -> object:
        raise SettingsError(f"identity '{identity.name}': federated credentials are not supported yet")


async def test_an_identity_whose_credential_cannot_be_built_fails_its_token_step_and_names_its_route() -> (
    None
):
    onboarding = Onboarding(
        load_settings({}), cast(ConnectionRegistry, None), cast(AuthServices, UnbuildableAuth())
    )
    report = await onboarding.check(connection(identities=(SECOND,)), SECOND)
    step = failed_step(report)
    assert (report.identity, step.name) == ("second", "token")
    assert "not supported yet" in step.detail
    assert "PUT /api/connections/acme/identities/second" in str(step.fix)
