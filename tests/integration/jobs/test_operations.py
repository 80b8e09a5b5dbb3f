"""Every operation type through the real trigger: the row, the result message and the status route agree."""

from __future__ import annotations

from sandbox import Sandbox
from tests.integration.jobs.conftest import JobsWorld


def test_a_created_customer_is_recorded_reported_and_audited(pipeline: JobsWorld, sandbox: Sandbox) -> None:
    """create → succeeded with BC's id and number; one result message; the status route shows the interactions."""
    before = len(sandbox.bc.records("customers"))
    pipeline.send(
        {
            "jobId": "create-1",
            "operation": "create",
            "entitySet": "customers",
            "data": {"displayName": "Adatum"},
            "correlationId": "crm-1",
        }
    )
    report = pipeline.wait_for("create-1")
    assert report.state == "succeeded", report
    assert report.attempts == 1
    assert report.result is not None and report.result.id and report.result.number
    assert len(sandbox.bc.records("customers")) == before + 1
    results = pipeline.results()
    assert [(r.job_id, r.state, r.correlation_id) for r in results] == [("create-1", "succeeded", "crm-1")]
    status = pipeline.get("/api/jobs/create-1")
    assert status.status_code == 200
    body = status.json()
    assert body["state"] == "succeeded" and body["correlationId"] == "crm-1"
    assert [i["method"] for i in body["interactions"]][-1] == "POST"
    assert all(i.get("clientRequestId") for i in body["interactions"])
