"""Infra is validated offline: every Bicep file parses, app settings match the code, no keys, least-privilege roles."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from shared.settings import Settings

INFRA = Path(__file__).resolve().parents[3] / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
# Settings the Functions host (not shared/settings.py) reads.
HOST_SETTING_PREFIXES = ("AzureWebJobsStorage__", "APPLICATIONINSIGHTS_", "JobsStorage__credential")


@cache
def parse(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = dict(BicepParser().parse(file_path=path))
    return parsed


def settings_aliases() -> set[str]:
    aliases: set[str] = set()
    for group in Settings.model_fields.values():
        model = group.annotation
        assert model is not None
        aliases.update(field.alias for field in model.model_fields.values() if field.alias)
    return aliases


def app_settings() -> dict[str, Any]:
    config: dict[str, Any] = parse(INFRA / "app" / "function.bicep")["resources"]["settings"]["config"]
    return config["properties"]  # type: ignore[no-any-return]


def test_there_is_infra_to_check() -> None:
    """The orchestration file and one module per concern exist."""
    names = {path.name for path in BICEP_FILES}
    assert {"main.bicep", "function.bicep", "storage.bicep", "keyvault.bicep", "rbac.bicep"} <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: path.name)
def test_every_bicep_file_parses(path: Path) -> None:
    """A syntax error in any Bicep file fails here, offline, before a deployment would."""
    assert parse(path)["resources"] or parse(path)["modules"]


def test_every_app_setting_is_read_by_the_code_or_the_host() -> None:
    """A misspelt app setting name in Bicep would silently fall back to a default; catch it."""
    known = settings_aliases()
    unknown = [
        name for name in app_settings() if name not in known and not name.startswith(HOST_SETTING_PREFIXES)
    ]
    assert unknown == []


def test_azure_gets_the_settings_that_have_no_safe_default() -> None:
    """Key Vault, the BC app registration and identity-based storage are configured in Azure."""
    required = {
        "KEY_VAULT_URL",
        "BC_TENANT_ID",
        "BC_CLIENT_ID",
        "BC_AUTH_MODE",
        "JobsStorage__queueServiceUri",
        "JobsStorage__tableServiceUri",
        "JobsStorage__clientId",
    }
    assert required <= set(app_settings())


def test_no_storage_keys_or_connection_strings_reach_app_settings() -> None:
    """Everything authenticates with the managed identity; keys never appear in infra."""
    text = "\n".join(path.read_text() for path in BICEP_FILES)
    assert "listKeys" not in text
    assert "AccountKey" not in text
    assert "JobsStorage" not in {name for name in app_settings() if "__" not in name}


def test_storage_and_vault_are_locked_down() -> None:
    """Shared-key access is off; the vault uses RBAC with purge protection."""
    account = parse(INFRA / "app" / "storage.bicep")["resources"]["account"]["config"]["properties"]
    vault = parse(INFRA / "app" / "keyvault.bicep")["resources"]["vault"]["config"]["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert vault["enableRbacAuthorization"] is True
    assert vault["enablePurgeProtection"] is True


def test_app_identity_gets_exactly_the_data_plane_roles_it_needs() -> None:
    """Queue, Table and Blob roles on storage, Secrets Officer on the vault, Metrics Publisher on App Insights."""
    rbac = (INFRA / "app" / "rbac.bicep").read_text()
    for role_id in (
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        "3913510d-42f4-4e42-8a64-420c390055eb",
    ):
        assert role_id in rbac
    assert "8e3af657-a8ff-443c-a75c-2fe8c4bcb635" not in rbac  # Owner
    assert "b24988ac-6180-42a0-ab88-20f7382dd24c" not in rbac  # Contributor


def test_admin_alert_matches_the_event_the_token_lifecycle_logs() -> None:
    """The alert query names the `event` custom dimension shared/auth logs when an admin must act."""
    states = (INFRA.parent / "shared" / "auth" / "states.py").read_text()
    monitoring = (INFRA / "app" / "monitoring.bicep").read_text()
    assert '"auth.admin_needed"' in states
    assert 'customDimensions.event) == "auth.admin_needed"' in monitoring


def test_storage_creates_the_job_contract_queues_and_the_app_tables() -> None:
    """The queues an app writes to and reads from, and every table the app uses, exist before the first job."""
    from bcjobs import JOBS_QUEUE, POISON_QUEUE
    from bcjobs.rows import AUDIT_TABLE_SUFFIX, JOBS_TABLE_SUFFIX
    from shared.settings import JobSettings, StorageSettings

    text = (INFRA / "app" / "storage.bicep").read_text(encoding="utf-8")
    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert f"'{JOBS_QUEUE}', '{POISON_QUEUE}', resultsQueueName" in text
    assert f"resultsQueueName: '{JobSettings().results_queue}'" in main
    assert f"tablePrefix: '{StorageSettings().table_prefix}'" in main
    for suffix in (JOBS_TABLE_SUFFIX, AUDIT_TABLE_SUFFIX, "auth", "throttle"):
        assert f"'{suffix}'" in text
