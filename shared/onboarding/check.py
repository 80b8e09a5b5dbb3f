"""The onboarding check: can this connection run jobs? Five steps in order, stopping at the first failure, each
failure naming its fix (POST /api/connections/{name}/check, `bcjobs connections check NAME`). It runs for one
identity of the connection's pool (`?identity=X`, its own token manager and app) or for each of them: BC refuses
every identity's app until it is on the environment's Microsoft Entra Applications page (reference (c)).

1. token: Entra issues the connection's token (client credentials: a fresh one, probing past any backoff;
   delegated: the stored sign-in's). AADSTS codes name the fix (bc-facts.md 5b; reference (b) B1 "S2S per
   tenant"): app not in the tenant or no consent -> the admin-consent link; bad or expired secret -> which secret;
   unknown tenant -> tenantId; delegated without a sign-in -> the connection's sign-in link.
2. environment: BC's environment list (`GET {base}/environments/v1.2`,
   learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/api-get-environments) names it; when BC
   does not list them (an app token may not be allowed to), step 3's answer tells.
3. BC accepts the token: `GET .../companies`; 401 -> the app is not on the environment's *Microsoft Entra
   Applications* page (reference (b) B1 "S2S per tenant"; bc-facts.md 3d "Common 401 causes for S2S").
4. the company: the connection's companyId or companyName is among those companies (they are listed when not).
5. a read: `GET customers?$top=1` in that company; 403 -> a permission set is missing.

Nothing here holds a token or a secret: details are error messages (already free of both) and BC's names.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from shared.auth.errors import (
    AuthError,
    NotAuthorizedError,
    ReauthorizationRequiredError,
    TokenUnavailableError,
)
from shared.bc.errors import (
    AuthenticationError,
    AuthorizationError,
    BusinessCentralError,
    NotFoundError,
)
from shared.bc.models import Company
from shared.connections.connection import Connection, Credential, Identity
from shared.redaction import redact
from shared.tokens import AccessToken, AuthMode

TOKEN = "token"
ENVIRONMENT = "environment"
BC_ACCEPTS_TOKEN = "bc-accepts-token"
COMPANY = "company"
READ_CUSTOMERS = "read-customers"
STEPS = (TOKEN, ENVIRONMENT, BC_ACCEPTS_TOKEN, COMPANY, READ_CUSTOMERS)

# AADSTS codes (bc-facts.md 5b; learn.microsoft.com/entra/identity-platform/reference-error-codes): the app has no
# service principal or no consent in the tenant (700016 app not found in tenant, 7000229 missing service principal,
# 65001 no consent, 500011 resource principal not found, 650051/650052 consent incomplete) -> admin consent.
CONSENT_CODES = frozenset({700016, 7000229, 65001, 500011, 650051, 650052})
SECRET_CODES = frozenset({7000215, 7000222})  # invalid client secret, expired client secret
TENANT_CODES = frozenset({90002, 90072})  # tenant not found; account's tenant not in the directory
_AADSTS = re.compile(r"AADSTS(\d+)")
_DETAIL_LIMIT = 400


class TokenSource(Protocol):
    """The connection's token manager, as the check uses it (shared.auth.manager.TokenManager)."""

    async def token(self) -> AccessToken: ...

    async def refresh_now(self) -> AccessToken: ...


class BcProbe(Protocol):
    """The BC requests of the check (shared.onboarding.probe.ClientProbe; fakes in unit tests)."""

    async def environments(self) -> tuple[str, ...] | None:
        """The names of the tenant's environments; None when BC did not list them."""
        ...

    async def companies(self) -> tuple[Company, ...]:
        """Every company of the connection's environment."""
        ...

    async def read_customers(self, company: UUID) -> None:
        """`GET customers?$top=1` in that company."""
        ...


@dataclass(frozen=True, slots=True)
class CheckStep:
    """One step's outcome: what was found, and the fix when it failed."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, str | bool | None]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The check of one connection: the steps run, in order (it stops at the first failure)."""

    connection: str
    steps: tuple[CheckStep, ...]
    identity: str = "primary"

    @property
    def ok(self) -> bool:
        """True when every step ran and passed."""
        return len(self.steps) == len(STEPS) and all(step.ok for step in self.steps)

    def to_json(self) -> dict[str, object]:
        """The HTTP answer and the CLI's --json output."""
        steps = [s.to_json() for s in self.steps]
        return {"connection": self.connection, "identity": self.identity, "ok": self.ok, "steps": steps}


@dataclass(frozen=True, slots=True)
class PoolReport:
    """The check of every identity of a connection's pool, the primary one first."""

    reports: tuple[CheckReport, ...]

    @property
    def ok(self) -> bool:
        """True when every identity passed every step."""
        return all(report.ok for report in self.reports)

    def to_json(self) -> dict[str, object]:
        """The primary's report as before pools existed (`steps`), `ok` for the whole pool, one per identity."""
        primary = self.reports[0]
        return {
            **primary.to_json(),
            "ok": self.ok,
            "identities": [report.to_json() for report in self.reports],
        }


@dataclass(frozen=True, slots=True)
class Links:
    """Where the admin acts: a fresh admin-consent link (made only when a step needs it) and the sign-in link."""

    consent: Callable[[], Awaitable[str]]
    sign_in: str


def aadsts_code(error: AuthError) -> int | None:
    """The AADSTS number the lifecycle's error carries in its label (`invalid_client/AADSTS7000215`)."""
    label = getattr(error, "error_code", None) or str(error)
    found = _AADSTS.search(label)
    return int(found.group(1)) if found else None


def _safe(error: Exception) -> str:
    return redact(str(error))[:_DETAIL_LIMIT]


class ConnectionCheck:
    """Runs the steps for one connection with its own token manager and a BC client for its environment."""

    def __init__(
        self,
        connection: Connection,
        tokens: TokenSource,
        bc: BcProbe,
        links: Links,
        identity: Identity | None = None,
    ) -> None:
        self._c = connection
        self._identity = identity or connection.primary
        self._tokens = tokens
        self._bc = bc
        self._links = links
        self._companies: tuple[Company, ...] = ()
        self._company: Company | None = None

    async def run(self) -> CheckReport:
        """Every step in order until one fails."""
        steps: list[CheckStep] = []
        for name, step in zip(STEPS, self._steps(), strict=True):
            try:
                outcome = await step()
            except AuthError as exc:  # a later step's BC call asks for the token again, and that can fail too
                outcome = CheckStep(name, False, _safe(exc), await self._token_fix(exc))
            steps.append(outcome)
            if not outcome.ok:
                break
        return CheckReport(self._c.name, tuple(steps), self._identity.name)

    def _steps(self) -> tuple[Callable[[], Awaitable[CheckStep]], ...]:
        return (self._token, self._environment, self._bc_accepts_token, self._company_step, self._read)

    # -- 1. token -------------------------------------------------------------------------------------------

    async def _token(self) -> CheckStep:
        c = self._c
        try:
            if c.mode is AuthMode.CLIENT_CREDENTIALS:
                await self._tokens.refresh_now()
            else:
                await self._tokens.token()
        except AuthError as exc:
            return CheckStep(TOKEN, False, _safe(exc), await self._token_fix(exc))
        who = (
            f"app {self._identity.client_id}"
            if c.mode is AuthMode.CLIENT_CREDENTIALS
            else "the signed-in user"
        )
        return CheckStep(TOKEN, True, f"Entra issued a token for {who} in tenant {c.tenant_id}")

    async def _token_fix(self, error: AuthError) -> str:
        code, c = aadsts_code(error), self._c
        if code in CONSENT_CODES:
            return (
                f"grant admin consent in tenant {c.tenant_id}: {await self._links.consent()} (open it signed in as "
                "an administrator of that tenant and accept; consent can take a few minutes to apply)"
            )
        if code in SECRET_CODES:
            return self._secret_fix()
        if code in TENANT_CODES or "discovery failed" in str(error):
            return (
                f"Entra knows no tenant '{c.tenant_id}': fix tenantId (the customer's tenant id or its "
                f"*.onmicrosoft.com domain) with PUT /api/connections/{c.name}"
            )
        return self._other_token_fix(error)

    def _other_token_fix(self, error: AuthError) -> str:
        if self._c.mode is AuthMode.DELEGATED and isinstance(
            error, NotAuthorizedError | ReauthorizationRequiredError
        ):
            return f"sign in as a user of tenant {self._c.tenant_id} at {self._links.sign_in}"
        if isinstance(error, TokenUnavailableError):
            return "Entra or Key Vault did not answer in time: run the check again in a few minutes"
        return f"{_safe(error)}; then run the check again"

    def _secret_fix(self) -> str:
        c, acting = self._c, self._identity
        route = f"/api/connections/{c.name}" + ("" if acting.primary else f"/identities/{acting.name}")
        if acting.credential is Credential.KEY_VAULT_SECRET:
            return (
                f"the client secret in Key Vault secret {acting.secret_name} is wrong or expired: PUT "
                f"{route} with a new clientSecret (a secret of app {acting.client_id})"
            )
        return (
            "the deployment's client secret (BC_CLIENT_SECRET) is wrong or expired: set a new secret of app "
            f"{acting.client_id} in the app settings (or PUT {route} with a clientSecret of its own)"
        )

    # -- 2. environment -------------------------------------------------------------------------------------

    async def _environment(self) -> CheckStep:
        c = self._c
        try:
            names = await self._bc.environments()
        except BusinessCentralError:
            names = None
        if not names:
            detail = (
                "BC did not list the tenant's environments; the next step's answer shows whether it exists"
            )
            return CheckStep(ENVIRONMENT, True, detail)
        if c.environment.lower() in {name.lower() for name in names}:
            return CheckStep(ENVIRONMENT, True, f"tenant {c.tenant_id} has environment {c.environment}")
        listed = ", ".join(sorted(names))
        return CheckStep(
            ENVIRONMENT,
            False,
            f"tenant {c.tenant_id} has no environment '{c.environment}' (it has: {listed})",
            f"set environment to one of {listed} with PUT /api/connections/{c.name}, or create "
            f"'{c.environment}' in the Business Central admin center of tenant {c.tenant_id}",
        )

    # -- 3. BC accepts the token ----------------------------------------------------------------------------

    async def _bc_accepts_token(self) -> CheckStep:
        try:
            self._companies = await self._bc.companies()
        except BusinessCentralError as exc:
            return CheckStep(BC_ACCEPTS_TOKEN, False, _safe(exc), self._bc_fix(exc))
        return CheckStep(
            BC_ACCEPTS_TOKEN,
            True,
            f"BC accepted the token: environment {self._c.environment} has {len(self._companies)} companies",
        )

    def _bc_fix(self, error: BusinessCentralError) -> str:
        c = self._c
        if isinstance(error, AuthenticationError):
            return self._entra_applications_fix()
        if isinstance(error, AuthorizationError):
            return self._permission_fix("companies")
        if isinstance(error, NotFoundError):
            return (
                f"BC has no environment '{c.environment}' in tenant {c.tenant_id}: set the right environment with "
                f"PUT /api/connections/{c.name} (the Business Central admin center lists them)"
            )
        if error.retriable:
            return "BC did not answer in time or is busy: run the check again in a few minutes"
        return "BC refused the request (see detail): check the connection's environment and tenant"

    def _entra_applications_fix(self) -> str:
        c = self._c
        if c.mode is AuthMode.DELEGATED:
            return (
                f"BC refused the signed-in user: give that user access (a license and permission sets) in "
                f"environment {c.environment} of tenant {c.tenant_id}, or sign in as another user at "
                f"{self._links.sign_in}"
            )
        return (
            f"add the app (client id {self._identity.client_id}) on the Microsoft Entra Applications page of environment "
            f"{c.environment} of tenant {c.tenant_id}, State Enabled, with permission sets (SUPER is not allowed); "
            "then run the check again"
        )

    def _permission_fix(self, what: str) -> str:
        c = self._c
        who = (
            f"the app {self._identity.client_id}"
            if c.mode is AuthMode.CLIENT_CREDENTIALS
            else "the signed-in user"
        )
        return (
            f"{who} may not read {what} in environment {c.environment}: add a permission set that reads it (for "
            "example D365 READ, or the sets your jobs need) on its Microsoft Entra Applications card (users: its "
            "user card); SUPER is not allowed for apps"
        )

    # -- 4. company ----------------------------------------------------------------------------------------

    async def _company_step(self) -> CheckStep:
        c, companies = self._c, self._companies
        listed = "; ".join(f"{co.name} ({co.id})" for co in companies) or "none"
        if c.company_id is None and c.company_name is None:
            self._company = companies[0] if companies else None
            if self._company is None:
                return CheckStep(COMPANY, False, f"environment {c.environment} has no company", _NO_COMPANY)
            detail = f"no default company set: jobs must name theirs (there are: {listed})"
            return CheckStep(COMPANY, True, detail)
        self._company = next((co for co in companies if _is_wanted(c, co)), None)
        if self._company is not None:
            return CheckStep(COMPANY, True, f"company '{self._company.name}' ({self._company.id}) exists")
        wanted = c.company_id or c.company_name
        return CheckStep(
            COMPANY,
            False,
            f"environment {c.environment} has no company {wanted} (it has: {listed})",
            f"set companyId or companyName to one of those with PUT /api/connections/{c.name}",
        )

    # -- 5. a read -----------------------------------------------------------------------------------------

    async def _read(self) -> CheckStep:
        company = self._company
        if company is None:  # unreachable: the company step failed first
            return CheckStep(READ_CUSTOMERS, False, "no company to read from", _NO_COMPANY)
        try:
            await self._bc.read_customers(company.id)
        except BusinessCentralError as exc:
            fix = (
                self._permission_fix("customers")
                if isinstance(exc, AuthorizationError)
                else self._bc_fix(exc)
            )
            return CheckStep(READ_CUSTOMERS, False, _safe(exc), fix)
        return CheckStep(READ_CUSTOMERS, True, f"read customers of company '{company.name}'")


_NO_COMPANY = (
    "create a company in the environment (Business Central: Companies page), then run the check again"
)


def _is_wanted(connection: Connection, company: Company) -> bool:
    if connection.company_id is not None:
        return company.id == connection.company_id
    return (connection.company_name or "").casefold() == company.name.casefold()
