"""status_body: what GET /api/jobs/{jobId} shows after the processor ran a job (report plus BC interactions)."""

from __future__ import annotations

from shared.bc import ThrottledError
from shared.jobs import status_body
from tests.fakes.jobs import MemoryJobReader
from tests.functional.jobs.conftest import Pipeline
from tests.functional.jobs.fakes import wire

CREATE = {
    "jobId": "create-1",
    "operation": "create",
    "entitySet": "customers",
    "data": {"displayName": "Adatum"},
    "correlationId": "crm-1",
}


async def test_the_status_shows_the_report_and_every_runs_interactions(pipeline: Pipeline) -> None:
    """Wire JSON (camelCase, unset fields left out) plus the audit rows of both runs, in order."""
    pipeline.runner.script(ThrottledError("slow down", status=429, retry_after=1))
    await pipeline.deliver(wire(CREATE), "m1")
    await pipeline.deliver_copy("m2")
    body = await status_body(MemoryJobReader(pipeline.store, pipeline.audit), "create-1")
    assert body is not None
    assert (body["jobId"], body["state"], body["attempts"], body["correlationId"]) == (
        "create-1",
        "succeeded",
        2,
        "crm-1",
    )
    assert "error" not in body
    assert [(item["attempt"], item["sequence"]) for item in body["interactions"]] == [(1, 1), (2, 1)]
    assert all(item["clientRequestId"] for item in body["interactions"])
    assert "Adatum" not in str(body)


async def test_the_status_of_an_unknown_job_is_none(pipeline: Pipeline) -> None:
    """No row: the route answers 404."""
    assert await status_body(MemoryJobReader(pipeline.store, pipeline.audit), "nobody") is None
