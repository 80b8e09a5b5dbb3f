"""The cold-start checks: what the settings lack or hold wrongly beyond their types (required values, URL shapes,
files that must exist, a time budget that fits functionTimeout), each problem naming its setting, its fix and its
`Impact`. `log_settings_problems` runs them once at cold start; `require` refuses what a function cannot work with.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shared.settings.model import (
    CALLBACK_PATH,
    FUNCTION_TIMEOUT_SECONDS,
    INVOCATION_RESERVE_SECONDS,
    AuthSettings,
    BcSettings,
    JobSettings,
    Settings,
    get_settings,
    load_settings,
)
from shared.settings.problems import Impact, InvalidSettingsError, SettingProblem
from shared.tokens import AuthMode

if TYPE_CHECKING:
    from pydantic import BaseModel

# The package's name, not this module's: operators (and tests/integration/devhost) find the cold-start ERROR
# by logger "shared.settings", as before the model and the checks were split.
logger = logging.getLogger("shared.settings")

_NOT_SET = "is not set"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def check_settings(settings: Settings) -> list[SettingProblem]:
    """What the settings lack or hold wrongly beyond their types: required values, URL shapes, files that must
    exist. Empty when the app can work; every problem names its setting and how to fix it."""
    return [
        *_unresolved_references(settings),
        *_auth_problems(settings),
        *_storage_problems(settings),
        *_bc_problems(settings),
        *_time_budget_problems(settings),
        *_notification_problems(settings),
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


def require(settings: Settings, *impacts: Impact) -> None:
    """Raise InvalidSettingsError with the problems whose impact is one of `impacts`."""
    problems = [problem for problem in check_settings(settings) if problem.impact in impacts]
    if problems:
        raise InvalidSettingsError(problems)


# App Service puts the reference itself in the setting when it cannot resolve it ("If a reference isn't resolved
# properly, the reference string is used instead": learn.microsoft.com/azure/app-service/app-service-key-vault-
# references, "Troubleshoot Key Vault references"); the portal shows why (ResolveStatus: AccessToKeyVaultDenied,
# SecretNotFound, VaultNotFound, MSINotEnabled, ...).
_KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("


def _unresolved_references(settings: Settings) -> list[SettingProblem]:
    """A setting whose value is still `@Microsoft.KeyVault(...)`: the platform could not read the vault."""
    return [
        SettingProblem(
            name,
            "is still a Key Vault reference: the platform could not resolve it",
            "open the app's Environment variables in the portal to see why (access denied, secret or vault not "
            "found), give the app's identity Key Vault Secrets User on the vault, then restart the app",
            Impact.APP,
        )
        for name, value in _string_values(settings)
        if value.startswith(_KEY_VAULT_REFERENCE)
    ]


def _string_values(settings: Settings) -> list[tuple[str, str]]:
    """(setting name, text) of every text setting, secrets included (only checked, never shown)."""
    found: list[tuple[str, str]] = []
    for group in (settings.storage, settings.auth, settings.bc, settings.jobs, settings.local):
        for field, info in type(group).model_fields.items():
            text = getattr(group, field)  # secrets are plain str fields with repr=False (model.py)
            if isinstance(text, str):
                found.append((info.alias or field, text))
    return found


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
                Impact.TOKENS,
            )
        )
    if not auth.client_id:
        problems.append(
            SettingProblem(
                "BC_CLIENT_ID",
                _NOT_SET,
                "set it to the Application (client) ID of the Entra app registration (locally `make dev` sets it)",
                Impact.TOKENS,
            )
        )
    return problems


def _secret_problems(settings: Settings) -> list[SettingProblem]:
    """The app registration needs a secret, a certificate or a federated credential; the secret also opens Key
    Vault locally."""
    auth = settings.auth
    if settings.federated:
        return _federated_problems(settings)
    if not auth.client_secret and not auth.client_certificate_path:
        return [
            SettingProblem(
                "BC_CLIENT_SECRET",
                "is not set (nor BC_CLIENT_CERTIFICATE_PATH)",
                "set the app registration's client secret (in Azure a Key Vault reference) or a certificate path, "
                "or BC_CREDENTIAL=federated with a user-assigned managed identity (docs/operations.md, federation)",
                Impact.TOKENS,
            )
        ]
    if not auth.client_secret and settings.vault_credential == "client_secret":
        return [
            SettingProblem(
                "BC_CLIENT_SECRET",
                "is not set, but KEY_VAULT_CREDENTIAL is client_secret",
                "set BC_CLIENT_SECRET, or KEY_VAULT_CREDENTIAL=managed_identity",
                Impact.TOKENS,
            )
        ]
    return []


def _federated_problems(settings: Settings) -> list[SettingProblem]:
    """BC_CREDENTIAL=federated: a user-assigned identity's client id (a GUID), and no secret to open the vault."""
    problems, identity = [], settings.federated_identity_client_id
    if not identity or not _GUID.match(identity):
        problems.append(
            SettingProblem(
                "BC_MANAGED_IDENTITY_CLIENT_ID",
                "(or JobsStorage__clientId, its fallback) is not a client id (GUID)"
                if identity
                else "is not set (nor JobsStorage__clientId)",
                "set the client id of the user-assigned managed identity the app registration trusts as a federated "
                "credential (system-assigned identities cannot be one; docs/operations.md, federation)",
                Impact.TOKENS,
            )
        )
    if settings.auth.key_vault_credential == "client_secret":
        problems.append(
            SettingProblem(
                "KEY_VAULT_CREDENTIAL",
                "is client_secret, but BC_CREDENTIAL is federated: there is no secret",
                "set KEY_VAULT_CREDENTIAL=managed_identity, or remove it",
                Impact.TOKENS,
            )
        )
    return problems


def _certificate_problems(settings: Settings) -> list[SettingProblem]:
    path = settings.auth.client_certificate_path
    if path is None or path.is_file():
        return []
    return [
        SettingProblem(
            "BC_CLIENT_CERTIFICATE_PATH",
            "does not point to a file",
            "give the path of the PFX (in Azure the one WEBSITE_LOAD_CERTIFICATES loads), or remove it",
            Impact.TOKENS,
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
                Impact.TOKENS,
            )
        ]
    if not _https_url(url, allow_path=False):
        return [
            SettingProblem(
                "KEY_VAULT_URL",
                "is not a Key Vault URL (https://<host>/, no spaces, no path)",
                "set it to the vault's 'Vault URI', https://<vault name>.vault.azure.net/ (locally the sandbox's KEY_VAULT_URL)",
                Impact.TOKENS,
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
                f"remove it ({_default(AuthSettings, 'authority_host')}) or set the sandbox's https://127.0.0.1:<port>",
                Impact.TOKENS,
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
                Impact.TOKENS,
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
            Impact.TOKENS,
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
                Impact.SIGN_IN,
            )
        ]
    if not (_https_url(uri) or _is_local_http(uri)) or not urlsplit(uri).path.endswith(CALLBACK_PATH):
        return [
            SettingProblem(
                "BC_REDIRECT_URI",
                f"is not an https URL ending in {CALLBACK_PATH} (http only for 127.0.0.1 or localhost)",
                f"set it to the callback registered in Entra, https://<app host>{CALLBACK_PATH}",
                Impact.SIGN_IN,
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
            Impact.STORAGE,
        )
    ]


def _bc_problems(settings: Settings) -> list[SettingProblem]:
    if _https_url(settings.bc.api_base_url):
        return []
    return [
        SettingProblem(
            "BC_API_BASE_URL",
            "is not an https URL",
            f"remove it for BC online ({_default(BcSettings, 'api_base_url')}) or set the sandbox's URL",
            Impact.BC,
        )
    ]


def _notification_problems(settings: Settings) -> list[SettingProblem]:
    """BC delivers notifications only to a reachable https URL (reference (a)); http to this machine is the local
    world's devhost, which the sandbox calls."""
    url = settings.changes.notification_base_url
    if not url or _https_url(url) or _is_local_http(url):
        return []
    return [
        SettingProblem(
            "BC_NOTIFICATION_BASE_URL",
            "is not an https URL without query",
            "set the https base BC can reach (e.g. https://<app>.azurewebsites.net), or remove it to use "
            "https://{WEBSITE_HOSTNAME}",
            Impact.BC,
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
            f"lower it (default {_default(BcSettings, 'request_timeout_seconds')}) or raise BC_JOB_TIME_BUDGET_SECONDS "
            f"(default {_default(JobSettings, 'time_budget_seconds')})",
            Impact.BC,
        )
        return [problem]
    if request + budget > limit:
        problem = SettingProblem(
            "BC_JOB_TIME_BUDGET_SECONDS",
            f"plus BC_REQUEST_TIMEOUT_SECONDS is over {limit:.0f} s (host.json's functionTimeout of "
            f"{FUNCTION_TIMEOUT_SECONDS:.0f} s would then restart the worker under a run that records its outcome)",
            f"keep the two together at or under {limit:.0f} s (defaults {_default(JobSettings, 'time_budget_seconds')} + "
            f"{_default(BcSettings, 'request_timeout_seconds')})",
            Impact.BC,
        )
        return [problem]
    return []


def _is_pem_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return b"-----BEGIN CERTIFICATE-----" in handle.read(1 << 20)
    except OSError:
        return False


def _default(group: type[BaseModel], field: str) -> str:
    """A setting's default as a fix message quotes it (taken from the model, never written a second time)."""
    value = group.model_fields[field].default
    return f"{value:g}" if isinstance(value, float) else str(value)
