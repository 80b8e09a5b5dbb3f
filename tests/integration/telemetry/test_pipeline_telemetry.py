"""function_app.py under devhost with Azurite and the sandbox, exporting as in production: its connection string
points at a local Application Insights ingestion endpoint, and the test reads what that endpoint received. The app
runs in devhost's worker processes (one per function group), so what they export is the only view of its telemetry,
as it is on Azure."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from localworld.polling import wait_until
from sandbox import Sandbox
from tests.fixtures.ingestion import IngestionSink
from tests.integration.jobs.conftest import JobsWorld
from tests.integration.telemetry.conftest import JOB

pytestmark = pytest.mark.integration


@pytest.fixture
def jobs_env(jobs_env: dict[str, str], ingestion: IngestionSink, tmp_path: Path) -> dict[str, str]:
    """The pipeline's app settings, exporting to the local ingestion endpoint on short timers."""
    return {**jobs_env, **ingestion.app_settings(tmp_path)}


def exported_facts(ingestion: IngestionSink) -> dict[str, object]:
    """What the ingestion endpoint holds about the job: the metrics' figures by their dimensions, the records."""
    return {
        "bc.requests POST 429": ingestion.total("bc.requests", method="POST", status="429"),
        "bc.requests POST 201": ingestion.total("bc.requests", method="POST", status="201"),
        "bc.requests.throttled POST": ingestion.total("bc.requests.throttled", method="POST"),
        "bc.request.duration count >= 2": sum(p.count for p in ingestion.points("bc.request.duration")) >= 2,
        "bc.throttle.wait count >= 2": sum(p.count for p in ingestion.points("bc.throttle.wait")) >= 2,
        "bc.jobs.finished succeeded create": ingestion.total(
            "bc.jobs.finished", state="succeeded", operation="create"
        ),
        "bc.job.duration counts": [p.count for p in ingestion.points("bc.job.duration")],
        "bc.token.refreshes refreshed >= 1": ingestion.total("bc.token.refreshes", outcome="refreshed") >= 1,
        "jobs.finished records": len(ingestion.events("jobs.finished")),
    }


EXPECTED = {
    "bc.requests POST 429": 1,
    "bc.requests POST 201": 1,
    "bc.requests.throttled POST": 1,
    "bc.request.duration count >= 2": True,
    "bc.throttle.wait count >= 2": True,
    "bc.jobs.finished succeeded create": 1,
    "bc.job.duration counts": [1],
    "bc.token.refreshes refreshed >= 1": True,
    "jobs.finished records": 1,
}


def test_a_job_through_the_trigger_exports_its_metrics_and_dimensions(
    pipeline: JobsWorld, ingestion: IngestionSink, sandbox: Sandbox
) -> None:
    """BC refuses once with 429, then creates: the metrics carry method/status/state/operation, the finished
    record carries the job's dimensions, and neither holds a JWT or the app's client secret."""
    sandbox.bc.fail_next(1, "429")
    pipeline.send(JOB)
    report = pipeline.wait_for("telemetry-create-1")
    assert report.state == "succeeded"
    # The worker exports every 200 ms (metrics) and 100 ms (records): poll until everything has arrived, then
    # compare, so that a missing or wrong figure is named rather than reported as a timeout.
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: exported_facts(ingestion) == EXPECTED, timeout=10, what="the job's telemetry")
    assert exported_facts(ingestion) == EXPECTED
    (record,) = ingestion.events("jobs.finished")
    assert {
        key: record.get(key) for key in ("job_id", "correlation_id", "operation", "attempt", "connection")
    } == {
        "job_id": "telemetry-create-1",
        "correlation_id": "crm-telemetry-1",
        "operation": "create customers",
        "attempt": "1",
        "connection": pipeline.connection,
    }
    text = ingestion.text()
    assert "eyJ" not in text
    assert sandbox.env["BC_CLIENT_SECRET"] not in text
