"""The production route end to end, offline: configure_telemetry with a connection string whose ingestion endpoint
is a local HTTP sink (tests/fixtures/ingestion.py), in a child process (the global OpenTelemetry providers are set once per process).
What Application Insights would receive: log records as traces with the job's custom dimensions, the app's
metrics under their names, and no secret in either."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.ingestion import IngestionSink

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FwaS5idXNpbmVzc2NlbnRyYWwifQ.c2lnbmF0dXJl"
CHILD = """
import logging, sys
from opentelemetry import _logs, metrics
from shared import telemetry
from shared.settings import telemetry_settings

settings = telemetry_settings({"APPLICATIONINSIGHTS_CONNECTION_STRING": sys.argv[1]})
assert telemetry.configure_telemetry(settings.connection_string)
assert telemetry.configure_telemetry(settings.connection_string)  # once only
telemetry.set_default_dimensions(connection="default")
log = logging.getLogger("shared.jobs.processor")
with telemetry.job_scope(message_id="m-1"):
    telemetry.note_job(job_id="export-1", correlation_id="crm-export", operation="create", attempt=1)
    log.info("job export-1 succeeded after 1 attempts", extra={"event": "jobs.finished", "access_token": sys.argv[2]})
    logging.getLogger("azure.core").warning("not a product log: stays with the host")
telemetry.bc_request("POST", 429, 31.5, "Application_TooManyRequests")
_logs.get_logger_provider().force_flush()
metrics.get_meter_provider().force_flush()
"""


def test_configured_telemetry_exports_traces_with_dimensions_and_metrics(
    ingestion: IngestionSink, tmp_path: Path
) -> None:
    """One job's record and one BC request reach the ingestion endpoint as App Insights would store them."""
    settings = ingestion.app_settings(tmp_path)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("APPLICATIONINSIGHTS_", "OTEL_"))},
        **{k: v for k, v in settings.items() if k != "APPLICATIONINSIGHTS_CONNECTION_STRING"},
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, ingestion.connection_string, JWT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    messages = ingestion.messages()
    metrics = ingestion.items("MetricData")
    (job,) = [m for m in messages if m["message"].startswith("job export-1")]
    assert {
        k: job["properties"][k] for k in ("event", "job_id", "correlation_id", "operation", "attempt")
    } == {
        "event": "jobs.finished",
        "job_id": "export-1",
        "correlation_id": "crm-export",
        "operation": "create",
        "attempt": "1",
    }
    assert job["properties"]["connection"] == "default"
    assert job["properties"]["access_token"] == "[REDACTED]"
    assert not [m for m in messages if "not a product log" in m["message"]]
    by_name = {metric["metrics"][0]["name"]: metric for metric in metrics}
    assert by_name["bc.requests"]["properties"] == {
        "method": "POST",
        "status": "429",
        "bc_code": "Application_TooManyRequests",
        "connection": "default",  # the job's connection (here the settings' one): alerts split by it
    }
    assert by_name["bc.requests.throttled"]["metrics"][0]["value"] == 1
    assert by_name["bc.request.duration"]["metrics"][0]["value"] == 31.5
    assert JWT not in ingestion.text()
