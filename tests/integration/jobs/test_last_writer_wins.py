"""Jobs without an etag against the sandbox's BC: last writer wins, with `If-Match: *` and no read before the write."""

from __future__ import annotations

from typing import Any

from bcjobs import JobReport
from sandbox import Sandbox
from tests.integration.jobs.conftest import JobsWorld


def run(world: JobsWorld, job: dict[str, Any]) -> JobReport:
    world.send(job)
    return world.wait_for(job["jobId"])


def methods(world: JobsWorld, job_id: str) -> list[str]:
    return [i.method for i in world.interactions(job_id)]


def test_update_and_delete_without_etag_overwrite_a_change_made_after_the_app_read_the_record(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """Another writer changes the record after the app read it: the etag-less jobs still succeed, in one request."""
    customer = sandbox.bc.records("customers")[2]
    read = run(
        pipeline, {"jobId": "read-1", "operation": "get", "entitySet": "customers", "id": customer["id"]}
    )
    assert read.result is not None
    seen = read.result.etag
    other = {"operation": "update", "entitySet": "customers", "id": customer["id"], "etag": seen}
    assert run(pipeline, {**other, "jobId": "other-1", "data": {"phoneNumber": "other"}}).state == "succeeded"
    mine = {"operation": "update", "entitySet": "customers", "id": customer["id"]}
    updated = run(pipeline, {**mine, "jobId": "mine-1", "data": {"phoneNumber": "mine"}})
    assert updated.state == "succeeded", updated.error
    assert methods(pipeline, "mine-1") == ["PATCH"]
    [record] = [row for row in sandbox.bc.records("customers") if row["id"] == customer["id"]]
    assert record["phoneNumber"] == "mine"
    stale = run(pipeline, {**mine, "jobId": "stale-1", "data": {"phoneNumber": "late"}, "etag": seen})
    assert stale.state == "failed"
    assert stale.error is not None
    assert stale.error.code == "bc_etag_changed"
    deleted = run(
        pipeline, {"jobId": "del-1", "operation": "delete", "entitySet": "customers", "id": customer["id"]}
    )
    assert deleted.state == "succeeded", deleted.error
    assert methods(pipeline, "del-1") == ["DELETE"]
    assert not [row for row in sandbox.bc.records("customers") if row["id"] == customer["id"]]
