"""The typed settings: one group per seam (storage, auth, bc, jobs, local), read once from the environment (app
settings / local.settings.json Values) by `load_settings`.

Nothing else in the product reads os.environ. Environment variable names are the aliases below; defaults are
visible here and nowhere else: the policies built from the settings (JobPolicy, PoisonRetry, ThrottleConfig) have
no default of their own for what a setting gives them (tests/unit/core/test_single_defaults.py), and the checks'
fix messages quote the defaults from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bcjobs import RESULTS_QUEUE
from shared.settings.problems import InvalidSettingsError, SettingProblem
from shared.tokens import AuthMode

# The product uses no pydantic plugin. Unless told so, the first model built looks for one in every installed
# distribution's entry points (pydantic/plugin/_loader.py `get_plugins`, read when a model's validator is made, so
# this line precedes every model of the process: shared.settings is the first to build one). That scan was 15 ms
# of a cold start's 30 ms of the product's own import (issue 24, point 4). An app setting of the same name wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

BC_RESOURCE = "https://api.businesscentral.dynamics.com"
REFRESH_SCHEDULE_SETTING = "BC_TOKEN_REFRESH_SCHEDULE"
DEFAULT_REFRESH_SCHEDULE = "0 0 * * * *"  # hourly, on the hour (UTC)
# The change feed's timers (issue 22): the subscription manager and the reconciliation pull, every 15 minutes by
# default: a renewal is due 36 h before a subscription's 3 days end, so a run missed now and then loses nothing.
SUBSCRIPTIONS_SCHEDULE_SETTING = "BC_SUBSCRIPTIONS_SCHEDULE"
DEFAULT_SUBSCRIPTIONS_SCHEDULE = "0 */15 * * * *"
RECONCILE_SCHEDULE_SETTING = "BC_RECONCILE_SCHEDULE"
DEFAULT_RECONCILE_SCHEDULE = "30 7-59/15 * * * *"  # every 15 minutes, between the manager's runs
# The retention sweep of the change log and the echo journal (shared/changes/retention.py): daily, at a quiet hour.
RETENTION_SCHEDULE_SETTING = "BC_RETENTION_SCHEDULE"
DEFAULT_RETENTION_SCHEDULE = "0 40 3 * * *"
CALLBACK_PATH = "/api/auth/callback"
# host.json's functionTimeout: the host restarts the whole worker process when an invocation runs longer
# (tests/unit/jobs/test_time_budget.py checks that the two agree).
FUNCTION_TIMEOUT_SECONDS = 600.0
# What a jobs_process invocation needs besides a run's time budget and one request's timeout: holding the delivery
# for a BC slot (JobPolicy.no_slot_hold_seconds, 120 s) and recording the outcome (JobPolicy.record_allowance, 60 s).
INVOCATION_RESERVE_SECONDS = 180.0
# Azure Monitor's connection string: the Functions host reads it for its own telemetry, the app for its exporter.
APPLICATION_INSIGHTS_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"


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
    # How the app registration proves itself to Entra: `secret` (BC_CLIENT_SECRET or BC_CLIENT_CERTIFICATE_PATH) or
    # `federated`: a user-assigned managed identity's token for api://AzureADTokenExchange is the client assertion,
    # no secret exists (reference (d); learn.microsoft.com/entra/workload-id/
    # workload-identity-federation-config-app-trust-managed-identity).
    credential: Literal["secret", "federated"] = Field(default="secret", alias="BC_CREDENTIAL")
    # `federated`: that identity's client id; unset, the app's own user-assigned identity (JobsStorage__clientId).
    managed_identity_client_id: str | None = Field(default=None, alias="BC_MANAGED_IDENTITY_CLIENT_ID")
    # How the app authenticates to Key Vault: managed_identity (Azure; the user-assigned identity named by
    # JobsStorage__clientId, else the system identity) or client_secret (the BC app registration, used
    # against the local sandbox). Unset: client_secret when LOCAL_CA_BUNDLE is set and BC_CREDENTIAL is secret,
    # else managed_identity (`vault_credential`).
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
    # BC online's limits per user or app: 6,000 requests per 5-minute sliding window, 5 in flight (more wait in
    # BC's queue): learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/operational-limits-online
    rate_limit_requests: int = Field(default=6000, alias="BC_RATE_LIMIT_REQUESTS", gt=0)
    rate_limit_window_seconds: float = Field(default=300.0, alias="BC_RATE_LIMIT_WINDOW_SECONDS", gt=0)
    rate_safety_margin: float = Field(default=0.05, alias="BC_RATE_SAFETY_MARGIN", ge=0, lt=1)
    max_in_flight: int = Field(default=5, alias="BC_MAX_IN_FLIGHT", ge=1, le=5)
    request_timeout_seconds: float = Field(default=60.0, alias="BC_REQUEST_TIMEOUT_SECONDS", gt=0)


class JobSettings(_Group):
    """The job pipeline: retries, deadlines, the claim lease and where results go.

    The trigger's queue names are fixed in the contract (`bcjobs.JOBS_QUEUE`, `bcjobs.POISON_QUEUE`): a
    binding resolves `%SETTING%` from app settings at indexing time, where a default here could not reach it.
    """

    results_queue: str = Field(
        default=RESULTS_QUEUE, alias="BC_RESULTS_QUEUE", pattern=r"^[a-z0-9](-?[a-z0-9]){2,62}$"
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
    # runs out of it continues in a new delivery. Checked against functionTimeout by check_settings. The default
    # is half of functionTimeout, and still inside it with the no-slot hold before the claim, one request's
    # timeout and the time to record the outcome (tests/unit/jobs/test_time_budget.py reads host.json); BC's own
    # limits are 8 min per operation and 10 per request (bc-facts, operational limits), so a run is cut off by
    # us, never by the host. Also no longer than DEFAULT_MIN_VALIDITY: the token a run starts with lasts the run.
    time_budget_seconds: float = Field(
        default=300.0, alias="BC_JOB_TIME_BUDGET_SECONDS", gt=0, le=FUNCTION_TIMEOUT_SECONDS
    )


class _TimerSettings(_Group):
    """Validated with the others but not kept in Settings: the Functions host, not the app, reads the schedule
    (the timer binding's `%BC_TOKEN_REFRESH_SCHEDULE%`, see refresh_schedule_binding)."""

    refresh_schedule: str = Field(default=DEFAULT_REFRESH_SCHEDULE, alias=REFRESH_SCHEDULE_SETTING)
    subscriptions_schedule: str = Field(
        default=DEFAULT_SUBSCRIPTIONS_SCHEDULE, alias=SUBSCRIPTIONS_SCHEDULE_SETTING
    )
    reconcile_schedule: str = Field(default=DEFAULT_RECONCILE_SCHEDULE, alias=RECONCILE_SCHEDULE_SETTING)
    retention_schedule: str = Field(default=DEFAULT_RETENTION_SCHEDULE, alias=RETENTION_SCHEDULE_SETTING)

    @field_validator("refresh_schedule", "subscriptions_schedule", "reconcile_schedule", "retention_schedule")
    @classmethod
    def _six_field_ncrontab(cls, value: str) -> str:
        if len(value.split()) != 6:
            raise ValueError("must be a 6-field NCRONTAB expression, seconds first, e.g. '0 0 * * * *'")
        return value


class ChangeSettings(_Group):
    """The change feed (issue 22): where BC sends notifications, and how reconciliation heals gaps."""

    # The base of the URL BC is given (`{base}/api/notifications/{connection}/{key}`); unset: the platform's own
    # https://{WEBSITE_HOSTNAME}. Set it behind a proxy or front door, or to http://127.0.0.1:<port> locally.
    notification_base_url: str | None = Field(default=None, alias="BC_NOTIFICATION_BASE_URL")
    # Reconciliation reads `lastModifiedDateTime gt (watermark - overlap)`: the overlap covers clock skew and
    # transactions that commit after a later one (their lastModifiedDateTime is earlier than what was read).
    reconcile_overlap_seconds: float = Field(
        default=300.0, alias="BC_RECONCILE_OVERLAP_SECONDS", ge=0, le=86400
    )
    # How often reconciliation compares BC's ids with the feed's to find deletes no notification reported.
    reconcile_deletes_hours: float = Field(default=24.0, alias="BC_RECONCILE_DELETES_HOURS", gt=0, le=24 * 30)
    # A notification whose changes a job's ambiguous write holds (its answer lost, its retry pending) is queued
    # again this much later (shared/changes/expansion_compose.py): about a job's first retry delay.
    held_recheck_seconds: float = Field(default=30.0, alias="BC_CHANGES_HELD_RECHECK_SECONDS", ge=1, le=3600)
    # How long `GET /api/changes?after=` can read an event back (and the id index dedupes its version). At least
    # 2 days: above BC's notification retries (~18.5 h) and the echo journal's TTL (shared/changes/retention.py).
    changes_retention_days: float = Field(default=7.0, alias="BC_CHANGES_RETENTION_DAYS", ge=2, le=366)


class LocalSettings(_Group):
    """Local world only: the sandbox's CA. Unset in Azure, where the system trust store is used."""

    ca_bundle: Path | None = Field(default=None, alias="LOCAL_CA_BUNDLE")


class TelemetrySettings(_Group):
    """Where the app's telemetry goes (Azure Monitor); unset, nothing is exported (the local world, tests).

    Not a group of Settings: telemetry is configured before the cold-start check, whatever the other settings
    hold, so that the check's own ERROR about them is exported too (see telemetry_settings)."""

    connection_string: str | None = Field(default=None, alias=APPLICATION_INSIGHTS_SETTING, repr=False)


class Settings(_Group):
    """Everything the app reads from its environment."""

    storage: StorageSettings
    auth: AuthSettings
    bc: BcSettings
    jobs: JobSettings
    local: LocalSettings
    changes: ChangeSettings = ChangeSettings()

    @property
    def federated(self) -> bool:
        """Whether the settings' app registration authenticates with a federated credential (BC_CREDENTIAL)."""
        return self.auth.credential == "federated"

    @property
    def federated_identity_client_id(self) -> str | None:
        """The user-assigned identity whose token is the federated assertion: BC_MANAGED_IDENTITY_CLIENT_ID, else
        the app's own (JobsStorage__clientId, the identity infra/app/identity.bicep creates and attaches)."""
        return self.auth.managed_identity_client_id or self.storage.managed_identity_client_id

    @property
    def vault_credential(self) -> Literal["managed_identity", "client_secret"]:
        """KEY_VAULT_CREDENTIAL, else client_secret locally with a secret (the sandbox), else managed_identity: a
        federated deployment has no secret to open the vault with."""
        if self.auth.key_vault_credential:
            return self.auth.key_vault_credential
        return "client_secret" if self.local.ca_bundle and not self.federated else "managed_identity"


_GROUPS: dict[str, type[_Group]] = {
    "storage": StorageSettings,
    "auth": AuthSettings,
    "bc": BcSettings,
    "jobs": JobSettings,
    "local": LocalSettings,
    "changes": ChangeSettings,
}
# Checked by load_settings so that a bad value is named at startup, then dropped.
_VALIDATED_ONLY: dict[str, type[_Group]] = {"timer": _TimerSettings}


# How to fix a value that failed its field's own validation (the message never repeats the value: it may be a
# secret). Kept with the fields, not with the checks: only load_settings meets these failures.
_FIXES = {
    "BC_AUTH_MODE": "set it to client_credentials or delegated",
    "BC_CONNECTION_NAME": "use 1-40 lowercase letters, digits or dashes",
    "BC_TABLE_PREFIX": "use a letter, then up to 20 letters or digits",
    REFRESH_SCHEDULE_SETTING: f"set a 6-field NCRONTAB expression (UTC, seconds first), or remove it for the default '{DEFAULT_REFRESH_SCHEDULE}'",
    SUBSCRIPTIONS_SCHEDULE_SETTING: f"set a 6-field NCRONTAB expression (UTC, seconds first), or remove it for the default '{DEFAULT_SUBSCRIPTIONS_SCHEDULE}'",
    RECONCILE_SCHEDULE_SETTING: f"set a 6-field NCRONTAB expression (UTC, seconds first), or remove it for the default '{DEFAULT_RECONCILE_SCHEDULE}'",
    RETENTION_SCHEDULE_SETTING: f"set a 6-field NCRONTAB expression (UTC, seconds first), or remove it for the default '{DEFAULT_RETENTION_SCHEDULE}'",
    "KEY_VAULT_CREDENTIAL": "set it to managed_identity or client_secret, or remove it",
    "BC_CREDENTIAL": "set it to secret (BC_CLIENT_SECRET or a certificate) or federated (a managed identity)",
    "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "set it to true (Azure) or false (the local sandbox only)",
}


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


def telemetry_settings(environ: Mapping[str, str] | None = None) -> TelemetrySettings:
    """The telemetry group alone, read apart from the others (it cannot be invalid, and must not wait for them)."""
    source = os.environ if environ is None else environ
    return TelemetrySettings.model_validate({key: value for key, value in source.items() if value != ""})


def refresh_schedule_binding(environ: Mapping[str, str] | None = None) -> str:
    """The token_refresh timer's `schedule` as the binding takes it.

    `%BC_TOKEN_REFRESH_SCHEDULE%` when that app setting exists (the host resolves it), else the default expression
    itself: a binding expression naming a setting that does not exist fails indexing ("does not resolve to a
    value"), so the documented default could not otherwise be real. It lives with the model, beside
    _TimerSettings: it reads the environment (at indexing, before any Settings exist) and must agree with the
    setting's name and default.
    """
    return schedule_binding(REFRESH_SCHEDULE_SETTING, DEFAULT_REFRESH_SCHEDULE, environ)


def schedule_binding(setting: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    """A timer's `schedule`: `%SETTING%` when that app setting exists, else the default expression (see
    refresh_schedule_binding for why)."""
    source = os.environ if environ is None else environ
    return f"%{setting}%" if source.get(setting) else default


def notification_base(settings: Settings) -> str | None:
    """The base of the notification URL BC is given: BC_NOTIFICATION_BASE_URL, else https://{WEBSITE_HOSTNAME}
    (the platform's own name, never a request's Host header); None when neither is set."""
    if settings.changes.notification_base_url:
        return settings.changes.notification_base_url.rstrip("/")
    if settings.auth.website_hostname:
        return f"https://{settings.auth.website_hostname}"
    return None
