"""One typed settings object, read once from the environment (app settings / local.settings.json Values).

Nothing else in the package reads os.environ. Groups follow the seams: storage, auth, bc, jobs.
Environment variable names are the aliases below; defaults are visible here and nowhere else.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import SettingsError
from shared.tokens import AuthMode

logger = logging.getLogger(__name__)

BC_RESOURCE = "https://api.businesscentral.dynamics.com"
REFRESH_SCHEDULE_SETTING = "BC_TOKEN_REFRESH_SCHEDULE"
DEFAULT_REFRESH_SCHEDULE = "0 0 * * * *"  # hourly, on the hour (UTC)
CALLBACK_PATH = "/api/auth/callback"
# host.json's functionTimeout: the host restarts the whole worker process when an invocation runs longer
# (tests/unit/jobs/test_time_budget.py checks that the two agree).
FUNCTION_TIMEOUT_SECONDS = 600.0
# What a jobs_process invocation needs besides a run's time budget and one request's timeout: holding the delivery
# for a BC slot (JobPolicy.no_slot_hold_seconds, 120 s) and recording the outcome (JobPolicy.record_allowance, 60 s).
INVOCATION_RESERVE_SECONDS = 180.0


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class StorageSettings(_Group):
    """Azure Storage used for jobs, leases and throttle state (connection string or identity-based URIs)."""

    # A connection string carries the account key: never in repr or logs.
    connection_string: str | None = Field(default=None, alias="JobsStorage", repr=False)
    queue_service_uri: str | None = Field(default=None, alias="JobsStorage__queueServiceUri")
    table_service_uri: str | None = Field(default=None, alias="JobsStorage__tableServiceUri")
    managed_identity_client_id: str | None = Field(default=None, alias="JobsStorage__clientId")
    table_prefix: str = Field(default="bc", alias="BC_TABLE_PREFIX", pattern=r"^[A-Za-z][A-Za-z0-9]{0,20}$")


class AuthSettings(_Group):
    """Entra ID app registration, Key Vault and refresh policy for one BC connection."""

    mode: AuthMode = Field(default=AuthMode.CLIENT_CREDENTIALS, alias="BC_AUTH_MODE")
    connection_name: str = Field(default="default", alias="BC_CONNECTION_NAME", pattern=r"^[a-z0-9-]{1,40}$")
    tenant_id: str | None = Field(default=None, alias="BC_TENANT_ID")
    client_id: str | None = Field(default=None, alias="BC_CLIENT_ID")
    # In Azure this is a Key Vault reference (@Microsoft.KeyVault(...)); never a literal in code or infra.
    client_secret: str | None = Field(default=None, alias="BC_CLIENT_SECRET", repr=False)
    authority_host: str = Field(default="https://login.microsoftonline.com", alias="BC_AUTHORITY_HOST")
    scope: str = Field(default=f"{BC_RESOURCE}/.default", alias="BC_SCOPE")
    redirect_uri: str | None = Field(default=None, alias="BC_REDIRECT_URI")
    key_vault_url: str | None = Field(default=None, alias="KEY_VAULT_URL")
    # The SDK checks that the vault host ends with the challenge's resource host; the local sandbox
    # serves the vault on 127.0.0.1, so local mode turns the check off. Leave it on in Azure.
    key_vault_verify_challenge_resource: bool = Field(
        default=True, alias="KEY_VAULT_VERIFY_CHALLENGE_RESOURCE"
    )
    reauth_webhook_url: str | None = Field(default=None, alias="BC_REAUTH_WEBHOOK_URL", repr=False)
    # Certificate instead of a secret (client credentials or delegated): a PFX path, e.g. one App Service
    # loads from Key Vault (WEBSITE_LOAD_CERTIFICATES). Takes precedence over BC_CLIENT_SECRET when set.
    client_certificate_path: Path | None = Field(default=None, alias="BC_CLIENT_CERTIFICATE_PATH")
    client_certificate_password: str | None = Field(
        default=None, alias="BC_CLIENT_CERTIFICATE_PASSWORD", repr=False
    )
    # How the app authenticates to Key Vault: managed_identity (Azure; the user-assigned identity named by
    # JobsStorage__clientId, else the system identity) or client_secret (the BC app registration, used
    # against the local sandbox). Unset: client_secret when LOCAL_CA_BUNDLE is set, else managed_identity.
    key_vault_credential: Literal["managed_identity", "client_secret"] | None = Field(
        default=None, alias="KEY_VAULT_CREDENTIAL"
    )
    # The platform's own host name (App Service / Functions set it): the only source, besides BC_REDIRECT_URI,
    # of the sign-in's redirect URI. Never a request's Host header, which any caller can forge.
    website_hostname: str | None = Field(default=None, alias="WEBSITE_HOSTNAME")

    @property
    def callback_uri(self) -> str | None:
        """The sign-in's redirect URI: BC_REDIRECT_URI, else https://{WEBSITE_HOSTNAME}/api/auth/callback."""
        if self.redirect_uri:
            return self.redirect_uri
        if self.website_hostname:
            return f"https://{self.website_hostname}{CALLBACK_PATH}"
        return None


class BcSettings(_Group):
    """Business Central endpoint and the limits the throttle keeps under."""

    api_base_url: str = Field(default=BC_RESOURCE, alias="BC_API_BASE_URL")
    environment: str = Field(default="production", alias="BC_ENVIRONMENT")
    company_id: str | None = Field(default=None, alias="BC_COMPANY_ID")
    company_name: str | None = Field(default=None, alias="BC_COMPANY_NAME")
    rate_limit_requests: int = Field(default=6000, alias="BC_RATE_LIMIT_REQUESTS", gt=0)
    rate_limit_window_seconds: float = Field(default=300.0, alias="BC_RATE_LIMIT_WINDOW_SECONDS", gt=0)
    rate_safety_margin: float = Field(default=0.05, alias="BC_RATE_SAFETY_MARGIN", ge=0, lt=1)
    max_in_flight: int = Field(default=5, alias="BC_MAX_IN_FLIGHT", ge=1, le=5)
    request_timeout_seconds: float = Field(default=60.0, alias="BC_REQUEST_TIMEOUT_SECONDS", gt=0)


class JobSettings(_Group):
    """The job pipeline: retries, deadlines, the claim lease and where results go.

    The trigger's queue names (`bc-jobs`, `bc-jobs-poison`) are fixed in the contract (bcjobs.contract): a
    binding resolves `%SETTING%` from app settings at indexing time, where a default here could not reach it.
    """

    results_queue: str = Field(
        default="bc-results", alias="BC_RESULTS_QUEUE", pattern=r"^[a-z0-9](-?[a-z0-9]){2,62}$"
    )
    max_attempts: int = Field(default=8, alias="BC_JOB_MAX_ATTEMPTS", ge=1, le=100)
    backoff_base_seconds: float = Field(default=5.0, alias="BC_JOB_BACKOFF_BASE_SECONDS", gt=0)
    backoff_cap_seconds: float = Field(default=900.0, alias="BC_JOB_BACKOFF_CAP_SECONDS", gt=0, le=86400)
    # Jobs parked while an admin must act are looked at again at most this far apart.
    authorization_recheck_seconds: float = Field(
        default=300.0, alias="BC_JOB_AUTHORIZATION_RECHECK_SECONDS", gt=0, le=86400
    )
    default_deadline_hours: float = Field(
        default=24.0, alias="BC_JOB_DEFAULT_DEADLINE_HOURS", gt=0, le=24 * 30
    )
    # How long a delivery owns a job before another may take it over (a crashed worker's successor); longer
    # than host.json's functionTimeout (10 min), so a live run is never taken over.
    claim_lease_seconds: float = Field(default=660.0, alias="BC_JOB_CLAIM_LEASE_SECONDS", gt=0, le=3600)
    # How long one run of a job may take (token, BC requests, retries in the call, throttle waits); a batch that
    # runs out of it continues in a new delivery. Checked against functionTimeout by check_settings.
    time_budget_seconds: float = Field(
        default=300.0, alias="BC_JOB_TIME_BUDGET_SECONDS", gt=0, le=FUNCTION_TIMEOUT_SECONDS
    )


class _TimerSettings(_Group):
    """Validated with the others but not kept in Settings: the Functions host, not the app, reads the schedule
    (the timer binding's `%BC_TOKEN_REFRESH_SCHEDULE%`, see refresh_schedule_binding)."""

    refresh_schedule: str = Field(default=DEFAULT_REFRESH_SCHEDULE, alias=REFRESH_SCHEDULE_SETTING)

    @field_validator("refresh_schedule")
    @classmethod
    def _six_field_ncrontab(cls, value: str) -> str:
        if len(value.split()) != 6:
            raise ValueError("must be a 6-field NCRONTAB expression, seconds first, e.g. '0 0 * * * *'")
        return value


class LocalSettings(_Group):
    """Local world only: the sandbox's CA. Unset in Azure, where the system trust store is used."""

    ca_bundle: Path | None = Field(default=None, alias="LOCAL_CA_BUNDLE")


class Settings(_Group):
    """Everything the app reads from its environment."""

    storage: StorageSettings
    auth: AuthSettings
    bc: BcSettings
    jobs: JobSettings
    local: LocalSettings


_GROUPS: dict[str, type[_Group]] = {
    "storage": StorageSettings,
    "auth": AuthSettings,
    "bc": BcSettings,
    "jobs": JobSettings,
    "local": LocalSettings,
}
# Checked by load_settings so that a bad value is named at startup, then dropped.
_VALIDATED_ONLY: dict[str, type[_Group]] = {"timer": _TimerSettings}


class Need(StrEnum):
    """What a setting problem breaks (functions that need it answer 500 naming it)."""

    TOKENS = "tokens"  # the token lifecycle: every auth route, the timer, the job pipeline
    SIGN_IN = "sign_in"  # GET /api/auth/login (delegated mode)
    STORAGE = "storage"  # Table and queue storage
    BC = "bc"  # calls to Business Central
    APP = "app"  # the whole app (a value that could not be read at all)


@dataclass(frozen=True, slots=True)
class SettingProblem:
    """One bad or missing setting: its name, what is wrong, how to fix it. Never holds a setting's value."""

    setting: str
    problem: str
    fix: str
    needs: Need = Need.APP

    def __str__(self) -> str:
        return f"{self.setting} {self.problem}: {self.fix}"


class InvalidSettingsError(SettingsError):
    """Settings the app cannot work with; `problems` names each setting and its fix."""

    def __init__(self, problems: Sequence[SettingProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid settings: " + "; ".join(str(problem) for problem in self.problems))

    @property
    def settings(self) -> list[str]:
        """The names of the bad settings, in order, without repeats."""
        return list(dict.fromkeys(problem.setting for problem in self.problems))


# How to fix a value that failed validation (the message never repeats the value: it may be a secret).
_FIXES = {
    "BC_AUTH_MODE": "set it to client_credentials or delegated",
    "BC_CONNECTION_NAME": "use 1-40 lowercase letters, digits or dashes",
    "BC_TABLE_PREFIX": "use a letter, then up to 20 letters or digits",
    REFRESH_SCHEDULE_SETTING: f"set a 6-field NCRONTAB expression (UTC, seconds first), or remove it for the default '{DEFAULT_REFRESH_SCHEDULE}'",
    "KEY_VAULT_CREDENTIAL": "set it to managed_identity or client_secret, or remove it",
    "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "set it to true (Azure) or false (the local sandbox only)",
}
_NOT_SET = "is not set"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build and validate the settings; a bad value raises InvalidSettingsError naming the variable and its fix."""
    source = dict(os.environ if environ is None else environ)
    # Empty strings mean "not set" (app settings cannot hold None).
    source = {key: value for key, value in source.items() if value != ""}
    problems: list[SettingProblem] = []
    groups: dict[str, _Group] = {}
    for name, model in {**_GROUPS, **_VALIDATED_ONLY}.items():
        try:
            groups[name] = model.model_validate(source)
        except ValidationError as exc:
            for error in exc.errors():
                setting = str(error["loc"][0]) if error["loc"] else name
                fix = _FIXES.get(
                    setting, "correct it or remove it to use the default (see the README's settings)"
                )
                problems.append(SettingProblem(setting, f"is invalid ({error['msg']})", fix))
    if problems:
        raise InvalidSettingsError(problems) from None
    return Settings.model_validate({name: groups[name] for name in _GROUPS})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once at cold start."""
    return load_settings()


def refresh_schedule_binding(environ: Mapping[str, str] | None = None) -> str:
    """The token_refresh timer's `schedule` as the binding takes it.

    `%BC_TOKEN_REFRESH_SCHEDULE%` when that app setting exists (the host resolves it), else the default expression
    itself: a binding expression naming a setting that does not exist fails indexing ("does not resolve to a
    value"), so the documented default could not otherwise be real.
    """
    source = os.environ if environ is None else environ
    if source.get(REFRESH_SCHEDULE_SETTING):
        return f"%{REFRESH_SCHEDULE_SETTING}%"
    return DEFAULT_REFRESH_SCHEDULE


def check_settings(settings: Settings) -> list[SettingProblem]:
    """What the settings lack or hold wrongly beyond their types: required values, URL shapes, files that must
    exist. Empty when the app can work; every problem names its setting and how to fix it."""
    return [
        *_auth_problems(settings),
        *_storage_problems(settings),
        *_bc_problems(settings),
        *_time_budget_problems(settings),
    ]


def settings_problems(environ: Mapping[str, str] | None = None) -> list[SettingProblem]:
    """Every problem of the current settings (validation and checks); uses the process-wide settings."""
    try:
        settings = get_settings() if environ is None else load_settings(environ)
    except InvalidSettingsError as exc:
        return list(exc.problems)
    return check_settings(settings)


def log_settings_problems() -> list[SettingProblem]:
    """The cold-start check (function_app.py calls it once at import): one ERROR naming every bad setting and its
    fix; nothing when all is well. Returns the problems."""
    problems = settings_problems()
    if problems:
        logger.error(
            "%d app setting(s) need fixing; until then the functions that need them answer 500 naming them and "
            "/api/health says degraded: %s",
            len(problems),
            " | ".join(str(problem) for problem in problems),
            extra={"event": "settings.invalid", "settings": ",".join(p.setting for p in problems)},
        )
    return problems


def require(settings: Settings, *needs: Need) -> None:
    """Raise InvalidSettingsError with the problems that break `needs`."""
    problems = [problem for problem in check_settings(settings) if problem.needs in needs]
    if problems:
        raise InvalidSettingsError(problems)


def _https_url(value: str, *, allow_path: bool = True) -> bool:
    """An absolute https URL with a host and no whitespace (a path only when allowed)."""
    parts = urlsplit(value)
    return (
        parts.scheme == "https"
        and bool(parts.hostname)
        and not any(ch.isspace() for ch in value)
        and not parts.query
        and not parts.fragment
        and (allow_path or parts.path in ("", "/"))
    )


def _webhook_url(value: str) -> bool:
    """https with a host (a query is fine), or http to this machine."""
    parts = urlsplit(value)
    return bool(parts.hostname) and (parts.scheme == "https" or _is_local_http(value))


def _is_local_http(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")


def _auth_problems(settings: Settings) -> list[SettingProblem]:
    checks = (
        _registration_problems,
        _secret_problems,
        _certificate_problems,
        _vault_problems,
        _endpoint_problems,
        _webhook_problems,
        _sign_in_problems,
    )
    return [problem for check in checks for problem in check(settings)]


def _registration_problems(settings: Settings) -> list[SettingProblem]:
    """The Entra app registration's two ids."""
    auth, problems = settings.auth, []
    if not auth.tenant_id:
        problems.append(
            SettingProblem(
                "BC_TENANT_ID",
                _NOT_SET,
                "set it to the Directory (tenant) ID of the Entra app registration (locally `make dev` sets it)",
                Need.TOKENS,
            )
        )
    if not auth.client_id:
        problems.append(
            SettingProblem(
                "BC_CLIENT_ID",
                _NOT_SET,
                "set it to the Application (client) ID of the Entra app registration (locally `make dev` sets it)",
                Need.TOKENS,
            )
        )
    return problems


def _secret_problems(settings: Settings) -> list[SettingProblem]:
    """The app registration needs a secret or a certificate; the secret also opens Key Vault locally."""
    auth = settings.auth
    key_vault_credential = auth.key_vault_credential or (
        "client_secret" if settings.local.ca_bundle else "managed_identity"
    )
    if not auth.client_secret and not auth.client_certificate_path:
        return [
            SettingProblem(
                "BC_CLIENT_SECRET",
                "is not set (nor BC_CLIENT_CERTIFICATE_PATH)",
                "set the app registration's client secret (in Azure a Key Vault reference) or a certificate path",
                Need.TOKENS,
            )
        ]
    if not auth.client_secret and key_vault_credential == "client_secret":
        return [
            SettingProblem(
                "BC_CLIENT_SECRET",
                "is not set, but KEY_VAULT_CREDENTIAL is client_secret",
                "set BC_CLIENT_SECRET, or KEY_VAULT_CREDENTIAL=managed_identity",
                Need.TOKENS,
            )
        ]
    return []


def _certificate_problems(settings: Settings) -> list[SettingProblem]:
    path = settings.auth.client_certificate_path
    if path is None or path.is_file():
        return []
    return [
        SettingProblem(
            "BC_CLIENT_CERTIFICATE_PATH",
            "does not point to a file",
            "give the path of the PFX (in Azure the one WEBSITE_LOAD_CERTIFICATES loads), or remove it",
            Need.TOKENS,
        )
    ]


def _vault_problems(settings: Settings) -> list[SettingProblem]:
    url = settings.auth.key_vault_url
    if not url:
        return [
            SettingProblem(
                "KEY_VAULT_URL",
                _NOT_SET,
                "set it to the vault's 'Vault URI', https://<vault name>.vault.azure.net/ (locally `make dev` sets it)",
                Need.TOKENS,
            )
        ]
    if not _https_url(url, allow_path=False):
        return [
            SettingProblem(
                "KEY_VAULT_URL",
                "is not a Key Vault URL (https://<host>/, no spaces, no path)",
                "set it to the vault's 'Vault URI', https://<vault name>.vault.azure.net/ (locally the sandbox's KEY_VAULT_URL)",
                Need.TOKENS,
            )
        ]
    return []


def _endpoint_problems(settings: Settings) -> list[SettingProblem]:
    """Where Entra is, which CA to trust locally, where re-authorization alerts go."""
    auth, local, problems = settings.auth, settings.local, []
    if not _https_url(auth.authority_host, allow_path=False):
        problems.append(
            SettingProblem(
                "BC_AUTHORITY_HOST",
                "is not an https URL of a host",
                "remove it (https://login.microsoftonline.com) or set the sandbox's https://127.0.0.1:<port>",
                Need.TOKENS,
            )
        )
    if local.ca_bundle is not None and not _is_pem_file(local.ca_bundle):
        problems.append(
            SettingProblem(
                "LOCAL_CA_BUNDLE",
                f"points to {local.ca_bundle}, which is not a readable PEM certificate (a sandbox that was "
                "restarted makes a new CA)",
                "run `make dev`, or copy LOCAL_CA_BUNDLE from the running sandbox's .local/sandbox.env; in Azure "
                "leave it unset",
                Need.TOKENS,
            )
        )
    return problems


def _webhook_problems(settings: Settings) -> list[SettingProblem]:
    url = settings.auth.reauth_webhook_url
    if not url or _webhook_url(url):
        return []
    # The value is never repeated: it may carry a signature (a Logic App's sig=).
    return [
        SettingProblem(
            "BC_REAUTH_WEBHOOK_URL",
            "is not an https URL",
            "set the https URL to POST re-authorization alerts to, or remove it",
            Need.TOKENS,
        )
    ]


def _sign_in_problems(settings: Settings) -> list[SettingProblem]:
    auth = settings.auth
    if auth.mode is not AuthMode.DELEGATED:
        return []
    uri = auth.callback_uri
    if uri is None:
        return [
            SettingProblem(
                "BC_REDIRECT_URI",
                "is not set (delegated mode needs it; it is never taken from a request's Host header)",
                f"set it to the callback registered in Entra, https://<app host>{CALLBACK_PATH} (locally "
                f"http://127.0.0.1:7071{CALLBACK_PATH})",
                Need.SIGN_IN,
            )
        ]
    if not (_https_url(uri) or _is_local_http(uri)) or not urlsplit(uri).path.endswith(CALLBACK_PATH):
        return [
            SettingProblem(
                "BC_REDIRECT_URI",
                f"is not an https URL ending in {CALLBACK_PATH} (http only for 127.0.0.1 or localhost)",
                f"set it to the callback registered in Entra, https://<app host>{CALLBACK_PATH}",
                Need.SIGN_IN,
            )
        ]
    return []


def _storage_problems(settings: Settings) -> list[SettingProblem]:
    storage = settings.storage
    if storage.connection_string or (storage.table_service_uri and storage.queue_service_uri):
        return []
    return [
        SettingProblem(
            "JobsStorage",
            _NOT_SET + " (nor JobsStorage__tableServiceUri and JobsStorage__queueServiceUri)",
            "set a storage connection string (locally `make dev` sets Azurite's), or in Azure the service URIs "
            "with JobsStorage__clientId",
            Need.STORAGE,
        )
    ]


def _bc_problems(settings: Settings) -> list[SettingProblem]:
    if _https_url(settings.bc.api_base_url):
        return []
    return [
        SettingProblem(
            "BC_API_BASE_URL",
            "is not an https URL",
            "remove it for BC online (https://api.businesscentral.dynamics.com) or set the sandbox's URL",
            Need.BC,
        )
    ]


def _time_budget_problems(settings: Settings) -> list[SettingProblem]:
    """A request must fit inside a run's time budget, and both inside functionTimeout with the reserve."""
    request, budget = settings.bc.request_timeout_seconds, settings.jobs.time_budget_seconds
    limit = FUNCTION_TIMEOUT_SECONDS - INVOCATION_RESERVE_SECONDS
    if request >= budget:
        problem = SettingProblem(
            "BC_REQUEST_TIMEOUT_SECONDS",
            "is not shorter than BC_JOB_TIME_BUDGET_SECONDS (a request that cannot finish inside a run's time "
            "budget is cut off every time)",
            "lower it (default 60) or raise BC_JOB_TIME_BUDGET_SECONDS (default 300)",
            Need.BC,
        )
        return [problem]
    if request + budget > limit:
        problem = SettingProblem(
            "BC_JOB_TIME_BUDGET_SECONDS",
            f"plus BC_REQUEST_TIMEOUT_SECONDS is over {limit:.0f} s (host.json's functionTimeout of "
            f"{FUNCTION_TIMEOUT_SECONDS:.0f} s would then restart the worker under a run that records its outcome)",
            f"keep the two together at or under {limit:.0f} s (defaults 300 + 60)",
            Need.BC,
        )
        return [problem]
    return []


def _is_pem_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return b"-----BEGIN CERTIFICATE-----" in handle.read(1 << 20)
    except OSError:
        return False
