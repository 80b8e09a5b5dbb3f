"""How devhost resolves a binding's `connection`, as the host does: connection strings and identity-based settings."""

from __future__ import annotations

import azure.functions as func
import pytest

from devhost.catalog import build_catalog, functions_of
from devhost.errors import ConfigError
from devhost.storage import StorageConnection, storage_connection

QUEUE_URI = "https://127.0.0.1:10001/devstoreaccount1"
TABLE_URI = "https://127.0.0.1:10002/devstoreaccount1"
# The shape infra/app/function.bicep deploys for the app's own storage.
IDENTITY = {
    "JobsStorage__credential": "managedidentity",
    "JobsStorage__clientId": "5e29463d-71da-4fe0-8e69-999b57db23b0",
    "JobsStorage__queueServiceUri": QUEUE_URI,
    "JobsStorage__tableServiceUri": TABLE_URI,
}


def _queue_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="bc-jobs", connection="JobsStorage")
    @app.queue_output(arg_name="out", queue_name="bc-results", connection="JobsStorage")
    def process(msg: func.QueueMessage, out: func.Out[str]) -> None:
        return None

    return app


def test_queue_triggers_run_with_the_identity_settings_infra_deploys() -> None:
    """JobsStorage__* with managedidentity serves the queue trigger and its output (was: skipped, no string)."""
    catalog = build_catalog(functions_of(_queue_app()), IDENTITY)
    assert catalog.problems == ()
    [process] = catalog.queues
    assert process.connection == StorageConnection(
        "JobsStorage",
        queue_service_uri=QUEUE_URI,
        table_service_uri=TABLE_URI,
        managed_identity=True,
        client_id=IDENTITY["JobsStorage__clientId"],
    )
    assert [o.connection for o in process.spec.outputs] == [process.connection]


def test_service_uri_is_an_alias_the_queue_service_uri_form_wins_over() -> None:
    """`__serviceUri` names the queue service; when both are set, `__queueServiceUri` is used."""
    alias = storage_connection("Jobs", {"Jobs__serviceUri": "https://a/q"}, "queue")
    both = storage_connection(
        "Jobs", {"Jobs__serviceUri": "https://a/q", "Jobs__queueServiceUri": "https://b/q"}, "queue"
    )
    assert (alias.queue_service_uri, both.queue_service_uri) == ("https://a/q", "https://b/q")
    assert alias.managed_identity is False  # no __credential: the developer's credentials (local development)


def test_an_exact_connection_string_setting_wins_over_prefixed_settings() -> None:
    """A setting named exactly like the connection is a connection string even when `<name>__...` settings exist."""
    found = storage_connection("JobsStorage", {**IDENTITY, "JobsStorage": "AccountKey=s3cr3t"}, "queue")
    assert found.connection_string == "AccountKey=s3cr3t"
    assert "s3cr3t" not in repr(found)


def test_a_binding_whose_service_uri_is_missing_is_refused() -> None:
    """A table binding on a connection with only a queue URI, or an unknown credential kind, is a ConfigError."""
    queue_only = {"JobsStorage__queueServiceUri": QUEUE_URI}
    with pytest.raises(ConfigError, match="JobsStorage__tableServiceUri"):
        storage_connection("JobsStorage", queue_only, "table")
    with pytest.raises(ConfigError, match="credential"):
        storage_connection("JobsStorage", {**queue_only, "JobsStorage__credential": "key"}, "queue")
    with pytest.raises(ConfigError, match="not set"):
        storage_connection("Other", queue_only, "queue")
