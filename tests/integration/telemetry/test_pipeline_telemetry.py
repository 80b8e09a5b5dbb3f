"""function_app.py under devhost with Azurite and the sandbox, its telemetry read from OpenTelemetry's in-memory
reader and exporter: one job through the real trigger, then the status page as an admin opens it."""

from __future__ import annotations

import httpx
import pytest

from devhost.waiting import wait_until
from sandbox import Sandbox
from tests.fakes.telemetry import Captured, capture
from tests.integration.jobs.conftest import JobsWorld

pytestmark = pytest.mark.integration

JOB = {
    "jobId": "telemetry-create-1",
    "operation": "create",
    "entitySet": "customers",
    "data": {"displayName": "Fabrikam Telemetry"},
    "correlationId": "crm-telemetry-1",
}


def finished(captured: Captured) -> list[dict[str, object]]:
    return captured.events("jobs.finished")


def test_a_job_through_the_trigger_exports_its_metrics_and_dimensions(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """BC refuses once with 429, then creates: the metrics carry method/status/state/operation, the finished
    record carries the job's dimensions, and neither holds a JWT or the app's client secret."""
    with capture() as captured:
        sandbox.bc.fail_next(1, "429")
        pipeline.send(JOB)
        report = pipeline.wait_for("telemetry-create-1")
        wait_until(lambda: bool(finished(captured)), timeout=10, what="the jobs.finished record")
        assert report.state == "succeeded"
        assert captured.total("bc.requests", method="POST", status="429") == 1
        assert captured.total("bc.requests", method="POST", status="201") == 1
        assert captured.total("bc.requests.throttled", method="POST") == 1
        assert sum(p.count for p in captured.points("bc.request.duration")) >= 2
        assert sum(p.count for p in captured.points("bc.throttle.wait")) >= 2
        assert captured.total("bc.jobs.finished", state="succeeded", operation="create") == 1
        assert [p.count for p in captured.points("bc.job.duration")] == [1]
        assert captured.total("bc.token.refreshes", outcome="refreshed") >= 1
        (record,) = finished(captured)
        text = captured.exported_text()
    assert {
        key: record[key] for key in ("job_id", "correlation_id", "operation", "attempt", "connection")
    } == {
        "job_id": "telemetry-create-1",
        "correlation_id": "crm-telemetry-1",
        "operation": "create customers",
        "attempt": "1",
        "connection": pipeline.connection,
    }
    assert "eyJ" not in text
    assert sandbox.env["BC_CLIENT_SECRET"] not in text


def test_the_status_page_answers_with_the_function_key_only(pipeline: JobsWorld, sandbox: Sandbox) -> None:
    """GET /api/status: 401 without the key; with it, HTML under a strict CSP showing the connection and the job."""
    pipeline.send(JOB)
    pipeline.wait_for("telemetry-create-1")
    assert httpx.get(f"{pipeline.base_url}/api/status", timeout=10).status_code == 401
    page = pipeline.get("/api/status")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'none'; style-src 'sha256-")
    assert page.headers["cache-control"] == "no-store"
    body = page.text
    assert ">ok</span>" in body
    assert "client credentials" in body
    assert "<td>succeeded</td><td class='n'>1</td><td class='n'>1</td>" in body
    assert "<code>bc-jobs-poison</code>" in body
    assert "Instances sharing it</dt><dd>1</dd>" in body
    assert "eyJ" not in body
    assert sandbox.env["BC_CLIENT_SECRET"] not in body
