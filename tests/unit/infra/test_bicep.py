"""Infra is validated offline: every Bicep file parses, app settings match the code, no keys, least-privilege roles."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from localworld.infra_settings import infra_app_settings

INFRA = Path(__file__).resolve().parents[3] / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


@cache
def parse(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = dict(BicepParser().parse(file_path=path))
    return parsed


def app_settings() -> dict[str, Any]:
    """function.bicep's app settings, read the one way devhost and the production-settings test read them."""
    return dict(infra_app_settings())


def test_main_deploys_every_module_with_exactly_the_parameters_it_declares() -> None:
    """Every module main.bicep names exists and gets each parameter it requires and none it lacks, every file in
    infra/app is deployed, and main.parameters.json sets every required parameter of main.bicep and no other."""
    main = parse(INFRA / "main.bicep")
    deployed: set[Path] = set()
    problems: list[str] = []
    for name, module in main["modules"].items():
        path = INFRA / module["detail"]["path"]
        deployed.add(path)
        if not path.is_file():
            problems.append(f"module {name}: no file {path.relative_to(INFRA)}")
            continue
        declared = parse(path)["parameters"]
        required = {param for param, spec in declared.items() if spec["default"] is None}
        given = set(module["config"]["params"])
        problems += [
            f"module {name}: {param} is not a parameter of it" for param in sorted(given - set(declared))
        ]
        problems += [f"module {name}: required {param} is not passed" for param in sorted(required - given)]
    assert problems == []
    assert deployed == set((INFRA / "app").glob("*.bicep"))
    supplied = set(json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"])
    required = {param for param, spec in main["parameters"].items() if spec["default"] is None}
    assert required <= supplied <= set(main["parameters"])


def test_azd_can_set_every_parameter_of_main_and_its_defaults_are_the_bicep_ones() -> None:
    """Each parameter of main.bicep is mapped in main.parameters.json (so `azd env set NAME value` tunes it, as the
    runbook says), and a mapping's `${NAME=default}` default is the Bicep default: an unset variable changes
    nothing. azd turns a numeric string into a number for an int parameter (Azure/azure-dev,
    bicep_provider.go `armParameterFileValue`), so `"${BC_MAX_IN_FLIGHT=5}"` deploys the int 5."""
    declared = parse(INFRA / "main.bicep")["parameters"]
    mapped = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert set(mapped) == set(declared)
    for name, entry in mapped.items():
        found = re.fullmatch(r"\$\{(\w+)(?:=(.*))?\}", entry["value"])
        assert found, f"{name}: not an azd variable reference"
        if declared[name]["default"] is not None:
            assert (found[2] or "") == str(declared[name]["default"]), (
                f"{name}: default differs from main.bicep"
            )


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: path.name)
def test_every_bicep_file_parses(path: Path) -> None:
    """A syntax error in any Bicep file fails here, offline, before a deployment would."""
    assert parse(path)["resources"] or parse(path)["modules"]


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
    health = (INFRA.parent / "shared" / "auth" / "health.py").read_text()
    monitoring = (INFRA / "app" / "monitoring.bicep").read_text()
    assert '"auth.admin_needed"' in health
    assert 'customDimensions.event) == "auth.admin_needed"' in monitoring


def test_storage_creates_the_job_contract_queues_and_the_app_tables() -> None:
    """The queues an app writes to and reads from, and every table the app uses, exist before the first job."""
    from bcjobs import JOBS_QUEUE, POISON_QUEUE
    from bcjobs.rows import AUDIT_TABLE_SUFFIX, ITEMS_TABLE_SUFFIX, JOBS_TABLE_SUFFIX
    from shared.settings import JobSettings, StorageSettings

    text = (INFRA / "app" / "storage.bicep").read_text(encoding="utf-8")
    variables = parse(INFRA / "main.bicep")["variables"]
    assert f"'{JOBS_QUEUE}', '{POISON_QUEUE}', resultsQueueName" in text
    assert variables["resultsQueueName"]["value"] == JobSettings().results_queue
    assert variables["tablePrefix"]["value"] == StorageSettings().table_prefix
    for suffix in (JOBS_TABLE_SUFFIX, AUDIT_TABLE_SUFFIX, ITEMS_TABLE_SUFFIX, "auth", "throttle"):
        assert f"'{suffix}'" in text


def bicep_text(*parts: str) -> str:
    return (INFRA.joinpath(*parts)).read_text(encoding="utf-8")


# Flex Consumption's allowed maximumInstanceCount in every region: "The lowest maximum scale is currently 40. The
# highest currently supported value is 1000." (learn.microsoft.com/azure/azure-functions/flex-consumption-plan,
# Considerations; lower values only in some regions, in preview: Azure/azure-functions-host#10523).
FLEX_LOWEST_MAXIMUM_EVERYWHERE = 40
FLEX_HIGHEST_MAXIMUM = 1000


def decorator_limits(spec: dict[str, Any]) -> tuple[int, int]:
    limits = {d["type"]: d["argument"] for d in spec["decorators"]}
    return limits["min_value"], limits["max_value"]


def test_instance_cap_is_its_own_parameter_with_a_default_every_region_allows() -> None:
    """maximumInstanceCount comes from a parameter defaulting to 40..1000, which main.bicep passes to the site."""
    function = parse(INFRA / "app" / "function.bicep")
    scale = function["resources"]["site"]["config"]["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    main = parse(INFRA / "main.bicep")
    default = main["parameters"]["maximumInstanceCount"]["default"]
    assert FLEX_LOWEST_MAXIMUM_EVERYWHERE <= default <= FLEX_HIGHEST_MAXIMUM
    for spec in (main["parameters"]["maximumInstanceCount"], function["parameters"]["maximumInstanceCount"]):
        assert decorator_limits(spec)[1] == FLEX_HIGHEST_MAXIMUM
    assert main["modules"]["function"]["config"]["params"]["maximumInstanceCount"] == "maximumInstanceCount"


def test_bc_slots_no_longer_decide_the_instance_cap() -> None:
    """bcMaxInFlight feeds BC_MAX_IN_FLIGHT only, capped where shared/settings/model.py caps it, never the scale cap."""
    from shared.settings import BcSettings

    function = parse(INFRA / "app" / "function.bicep")
    site = function["resources"]["site"]["config"]
    assert "bcMaxInFlight" not in json.dumps(site)
    setting = app_settings()["BC_MAX_IN_FLIGHT"]
    assert setting["function"]["parameters"]["value_to_convert"] == "bcMaxInFlight"
    field = BcSettings.model_fields["max_in_flight"]
    le = next(rule.le for rule in field.metadata if hasattr(rule, "le"))
    assert decorator_limits(function["parameters"]["bcMaxInFlight"]) == (1, le)
    main = parse(INFRA / "main.bicep")["parameters"]["bcMaxInFlight"]
    assert main["default"] == BcSettings().max_in_flight


def test_the_app_sender_may_only_enqueue_jobs_and_read_job_rows() -> None:
    """Message Sender scoped to the bc-jobs queue and Table Data Reader scoped to the jobs table, nothing else."""
    rbac = parse(INFRA / "app" / "rbac.bicep")
    resources = rbac["resources"]
    sender = {
        name: resource["config"]
        for name, resource in resources.items()
        if "appSenderPrincipalId" in str(resource["config"].get("config", {}).get("properties", {}))
    }
    assert set(sender) == {"senderQueueRole", "senderTableRole"}
    assert sender["senderQueueRole"]["config"]["scope"] == "jobsQueue"
    assert sender["senderTableRole"]["config"]["scope"] == "jobsTable"
    assert resources["jobsQueue"]["config"]["name"] == "bc-jobs"
    roles = rbac["variables"]["roles"]["value"]
    assert roles["storageQueueDataMessageSender"] == "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"
    assert roles["storageTableDataReader"] == "76199698-9eea-4c19-bc75-cec21354c6b6"
    assert "storageQueueDataMessageSender" in str(sender["senderQueueRole"])
    assert "storageTableDataReader" in str(sender["senderTableRole"])
    assert "'${tablePrefix}jobs'" in bicep_text("app", "rbac.bicep")


ALERTS = {
    "bc-admin-needed",
    "bc-jobs-poisoned",
    "bc-job-failure-rate",
    "bc-sustained-429",
    "bc-token-expiring",
    "bc-queue-age",
    "bc-function-failures",
    "bc-dead-letter-failed",
    "bc-watch-unsubscribed",  # the change feed (issue 22)
    "bc-reconcile-behind",
    "bc-subscriptions-near-limit",
    "bc-notifications-waiting",
    "bc-identity-out",  # identity pools (issue 23)
}


def alert_definitions() -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = parse(INFRA / "app" / "monitoring.bicep")["variables"]["alerts"]["value"]
    return value


def test_the_alerts_ops_need_exist_and_each_has_a_runbook_entry() -> None:
    """The log alerts; docs/operations.md explains each (what it means, what to do, the KQL)."""
    names = {alert["name"] for alert in alert_definitions()}
    assert names == ALERTS
    runbook = (INFRA.parent / "docs" / "operations.md").read_text(encoding="utf-8")
    for name in names:
        assert f"### `{name}`" in runbook, name


def test_alert_and_workbook_queries_name_metrics_the_app_exports() -> None:
    """A renamed metric breaks this test, not a silent alert: every bc.* name in a query is in METRICS."""
    from shared.telemetry import METRICS

    exported = {metric.name for metric in METRICS}
    texts = [bicep_text("app", "monitoring.bicep"), bicep_text("app", "workbook.json")]
    used = {name.rstrip(".") for text in texts for name in re.findall(r'"(bc\.[a-z_.]+)"', text)}
    assert used
    assert used <= exported


def test_alert_queries_name_events_the_code_logs() -> None:
    """customDimensions.event values in alerts and the workbook are events shared/ logs."""
    source = "\n".join(path.read_text(encoding="utf-8") for path in (INFRA.parent / "shared").rglob("*.py"))
    texts = bicep_text("app", "monitoring.bicep") + bicep_text("app", "workbook.json")
    events = set(re.findall(r'event\)? == \\?"([a-z_]+\.[a-z_]+)\\?"', texts))
    events |= {
        e
        for group in re.findall(r"event\) in \(([^)]*)\)", texts)
        for e in re.findall(r"[a-z_]+\.[a-z_]+", group)
    }
    assert {"auth.admin_needed", "jobs.dead_lettered", "jobs.finished"} <= events
    for event in events:
        assert f'"{event}"' in source, event


def test_alerts_reach_email_and_webhook() -> None:
    """One action group with an email and a webhook receiver (each only when its parameter is set)."""
    group = parse(INFRA / "app" / "monitoring.bicep")["resources"]["actionGroup"]["config"]
    text = str(group)
    assert "emailReceivers" in text
    assert "webhookReceivers" in text
    assert "alertWebhookUrl" in text
    params = parse(INFRA / "app" / "monitoring.bicep")["parameters"]
    assert {"type": "secure"} in params["alertWebhookUrl"]["decorators"]


def test_the_workbook_shows_what_ops_look_at() -> None:
    """Token health, jobs by outcome, BC latency and 429s, throttle waits, queue depth, top BC error codes and the
    latest failed jobs with BC's request ids, as the dimensions the code logs."""
    workbook = json.loads(bicep_text("app", "workbook.json"))
    assert workbook["version"] == "Notebook/1.0"
    queries = {item["name"]: item["content"]["query"] for item in workbook["items"] if item["type"] == 3}
    assert {
        "token-expiry",
        "token-refreshes",
        "jobs-by-outcome",
        "bc-latency-429",
        "throttle-waits",
        "queue-depth",
        "top-bc-error-codes",
        "latest-failed-jobs",
    } <= set(queries)
    failed = queries["latest-failed-jobs"]
    processor = (INFRA.parent / "shared" / "jobs" / "processor.py").read_text(encoding="utf-8")
    for dimension in (
        "job_id",
        "error_code",
        "bc_code",
        "client_request_id",
        "bc_request_id",
        "correlation_id",
    ):
        assert f"customDimensions.{dimension}" in failed
        assert f'"{dimension}"' in processor
    monitoring = parse(INFRA / "app" / "monitoring.bicep")["resources"]["workbook"]
    assert monitoring["type"] == "Microsoft.Insights/workbooks"
    serialized = monitoring["config"]["properties"]["serializedData"]["function"]
    assert (serialized["type"], serialized["parameters"]["file_path"]) == (
        "load_text_content",
        "workbook.json",
    )


def test_every_skipped_checkov_check_says_why() -> None:
    """Skips live next to the resource, one check per line, with a reason a reviewer can judge."""
    skips = [
        match
        for path in BICEP_FILES
        for match in re.findall(r"checkov:skip=([A-Z_0-9]+)(:?[^\n]*)", path.read_text(encoding="utf-8"))
    ]
    assert skips
    for check, reason in skips:
        assert reason.startswith(":"), check
        assert len(reason.strip(": ")) >= 40, check


def test_the_dead_letter_failed_alert_names_the_job_the_poison_handler_logs() -> None:
    """bc-dead-letter-failed fires on the event PoisonHandler logs at error level, one alert per job_id."""
    [alert] = [alert for alert in alert_definitions() if alert["name"] == "bc-dead-letter-failed"]
    assert 'customDimensions.event) == "jobs.dead_letter_failed"' in alert["query"]
    assert "severityLevel >= 3" in alert["query"]
    assert "job_id = tostring(customDimensions.job_id)" in alert["query"]
    assert alert["dimensions"] == [{"name": "job_id", "operator": "Include", "values": ["*"]}]
    source = (INFRA.parent / "shared" / "jobs" / "deadletter.py").read_text(encoding="utf-8")
    assert '"event": "jobs.dead_letter_failed"' in source
    assert '"job_id": job_id' in source
    assert "dimensions: alert.dimensions" in bicep_text("app", "monitoring.bicep")


def test_alerts_about_a_connection_split_by_the_connection_dimension() -> None:
    """One alert per connection: the query projects `connection` from the custom dimension the code records."""
    split = {"bc-admin-needed", "bc-job-failure-rate", "bc-sustained-429", "bc-token-expiring"}
    by_name = {alert["name"]: alert for alert in alert_definitions()}
    for name in split:
        alert = by_name[name]
        assert alert["dimensions"] == [{"name": "connection", "operator": "Include", "values": ["*"]}], name
        assert "connection = tostring(customDimensions.connection)" in alert["query"], name
    from shared.telemetry.instruments import BC_THROTTLED, JOBS_FINISHED, TOKEN_EXPIRY, TOKEN_REFRESHES

    for spec in (BC_THROTTLED, JOBS_FINISHED, TOKEN_EXPIRY, TOKEN_REFRESHES):
        assert "connection" in spec.attributes, spec.name


def test_the_identity_out_alert_names_the_connection_and_identity_the_pool_logs() -> None:
    """bc-identity-out fires on the event IdentityPool logs at error level, one alert per connection and identity."""
    [alert] = [alert for alert in alert_definitions() if alert["name"] == "bc-identity-out"]
    assert 'customDimensions.event) == "jobs.identity_left"' in alert["query"]
    assert "severityLevel >= 3" in alert["query"]
    assert "connection = tostring(customDimensions.connection)" in alert["query"]
    assert "identity = tostring(customDimensions.identity)" in alert["query"]
    assert [d["name"] for d in alert["dimensions"]] == ["connection", "identity"]
    source = (INFRA.parent / "shared" / "jobs" / "pool.py").read_text(encoding="utf-8")
    assert '"jobs.identity_left"' in source
    assert '"event": event, "connection": connection, "identity": identity' in source
