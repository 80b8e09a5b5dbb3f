"""Settings parity: infra/app/function.bicep sets exactly the settings the app reads plus those the Functions host
reads (each with its source), and every setting the app reads that Azure leaves unset is listed with the reason its
default is right there. The app's list comes from the Settings model (shared/settings/model.py is the only module that
reads the environment), not from a copy."""

from __future__ import annotations

from typing import Any

from shared.settings import APPLICATION_INSIGHTS_SETTING, REFRESH_SCHEDULE_SETTING, Settings, load_settings
from tests.unit.infra.test_bicep import INFRA, app_settings, parse

_HOST_STORAGE = (
    "the host's own storage through the managed identity: learn.microsoft.com/azure/azure-functions/"
    "functions-reference#connecting-to-host-storage-with-an-identity"
)
_JOBS_CONNECTION = (
    "the queue trigger's `connection=JobsStorage` as an identity-based connection group: learn.microsoft.com/azure/"
    "azure-functions/functions-bindings-storage-queue-trigger#identity-based-connections, "
    "functions-reference#common-properties-for-identity-based-connections"
)
# Settings the Functions host (or a library the app loads) reads rather than shared/settings/model.py, with the source that
# says so. Exact names, not prefixes: a misspelt AzureWebJobsStorage__queueServiceUrl must fail here.
HOST_READS = {
    "AzureWebJobsStorage__credential": _HOST_STORAGE,
    "AzureWebJobsStorage__clientId": _HOST_STORAGE,
    "AzureWebJobsStorage__blobServiceUri": _HOST_STORAGE,
    "AzureWebJobsStorage__queueServiceUri": _HOST_STORAGE,
    "AzureWebJobsStorage__tableServiceUri": _HOST_STORAGE,
    "JobsStorage__credential": _JOBS_CONNECTION,
    "JobsStorage__clientId": _JOBS_CONNECTION + " (the app reads it too: the identity's client id)",
    "JobsStorage__queueServiceUri": _JOBS_CONNECTION + " (the app reads it too: its own queue clients)",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "the host's own telemetry: learn.microsoft.com/azure/azure-functions/"
    "functions-app-settings#applicationinsights_connection_string (the app reads it too: shared/settings/model.py TelemetrySettings)",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra-only ingestion for the host and the Azure Monitor exporter: "
    "learn.microsoft.com/azure/azure-functions/functions-app-settings#applicationinsights_authentication_string",
    REFRESH_SCHEDULE_SETTING: "the host resolves the timer binding's %BC_TOKEN_REFRESH_SCHEDULE% from app settings: "
    "learn.microsoft.com/azure/azure-functions/functions-bindings-expressions-patterns"
    "#binding-expressions---app-settings (the app only validates it)",
}

# Settings the app reads that Azure leaves to the code's default, each with the reason. Every other setting of
# shared/settings/model.py must be set in function.bicep: a new setting has to be decided here or there.
DEFAULTED_IN_AZURE = {
    "JobsStorage": "a connection string carries the account key; Azure uses JobsStorage__*ServiceUri + identity",
    "BC_CLIENT_CERTIFICATE_PATH": "the secret (a Key Vault reference) is used; a certificate is the documented option",
    "BC_CLIENT_CERTIFICATE_PASSWORD": "only with a certificate",
    "BC_MANAGED_IDENTITY_CLIENT_ID": "BC_CREDENTIAL=federated uses the app's own identity, JobsStorage__clientId, its "
    "fallback: the identity infra attaches and whose principal id the federated credential names",
    "BC_AUTHORITY_HOST": "the public cloud's Entra endpoint is the default",
    "BC_SCOPE": "BC online's scope is the default",
    "BC_API_BASE_URL": "BC online's API host is the default",
    "BC_COMPANY_ID": "the company is named (BC_COMPANY_NAME) or is the environment's only one",
    "LOCAL_CA_BUNDLE": "local world only: the sandbox's CA",
    "WEBSITE_HOSTNAME": "set by the platform",
    "BC_NOTIFICATION_BASE_URL": "https://{WEBSITE_HOSTNAME}, the platform's own name, is the default",
    "BC_RECONCILE_OVERLAP_SECONDS": "the default overlap (5 minutes) covers skew and late commits",
    "BC_RECONCILE_DELETES_HOURS": "the default (daily) comparison of ids is the documented one",
    "BC_CHANGES_HELD_RECHECK_SECONDS": "the default (30 s) is about a job's first retry delay",
    "BC_CHANGES_RETENTION_DAYS": "the default (7 days) is the documented promise of GET /api/changes?after=",
}


def app_reads() -> set[str]:
    """Every setting the app reads: each alias of the Settings model's groups, and the telemetry switch
    function_app.py reads with telemetry_settings."""
    aliases = {APPLICATION_INSIGHTS_SETTING}
    for group in Settings.model_fields.values():
        model = group.annotation
        assert model is not None
        aliases.update(field.alias for field in model.model_fields.values() if field.alias)
    return aliases


def literal_values() -> dict[str, str]:
    """The app settings infra gives a fixed value (not a parameter, a resource property or an interpolation)."""
    params = set(parse(INFRA / "app" / "function.bicep")["parameters"])
    settings: dict[str, Any] = app_settings()
    return {
        name: value
        for name, value in settings.items()
        if isinstance(value, str) and value not in params and "${" not in value
    }


def test_infra_sets_no_setting_that_neither_the_app_nor_the_host_reads() -> None:
    """A misspelt or stale app setting in Bicep would silently leave the app on its default; catch it."""
    assert set(app_settings()) - app_reads() - set(HOST_READS) == set()


def test_the_app_reads_no_setting_infra_leaves_unset_without_a_reason() -> None:
    """A setting added to shared/settings/model.py must be set by infra or listed in DEFAULTED_IN_AZURE with its reason."""
    assert app_reads() - set(app_settings()) - set(DEFAULTED_IN_AZURE) == set()


def test_the_lists_of_exceptions_hold_no_stale_entry() -> None:
    """Each host setting listed is one infra sets; each defaulted one is read by the app and not set by infra."""
    infra = set(app_settings())
    assert set(HOST_READS) - infra == set()
    assert set(DEFAULTED_IN_AZURE) - app_reads() == set()
    assert set(DEFAULTED_IN_AZURE) & infra == set()
    assert all("learn.microsoft.com/" in source for source in HOST_READS.values())


def test_the_fixed_values_infra_sets_are_ones_the_app_and_host_accept() -> None:
    """Literal values pass the app's own validation, and the identity connections name the documented credential."""
    values = literal_values()
    assert {"KEY_VAULT_CREDENTIAL", "BC_RATE_LIMIT_REQUESTS", REFRESH_SCHEDULE_SETTING} <= set(values)
    load_settings(values)  # raises InvalidSettingsError naming any value the app refuses
    # "credential: managedidentity" (functions-reference#common-properties-for-identity-based-connections).
    assert values["AzureWebJobsStorage__credential"] == values["JobsStorage__credential"] == "managedidentity"
