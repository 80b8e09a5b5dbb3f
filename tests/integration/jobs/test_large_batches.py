"""A batch whose item outcomes do not fit in a Table property or a results message, through the real pipeline."""

from __future__ import annotations

from bcjobs import InvalidJobError, Job, JobState
from bcjobs.wire import encode
from sandbox import Sandbox
from tests.integration.jobs.conftest import JobsWorld

# A small create: a batch of as many as one queue message carries, about 700 (the contract's 1,000 operations of any
# shape exceed the message's 48 KiB of JSON); the row's Result column overflowed from about 280.
OPERATION = {"operation": "create", "entitySet": "items", "data": {"displayName": "x"}}


def largest_batch(job_id: str) -> Job:
    """The batch with the most OPERATIONs that the client can still put in one queue message."""
    count = 1000
    while True:
        job = Job.model_validate({"jobId": job_id, "operation": "batch", "operations": [OPERATION] * count})
        try:
            encode(job)
        except InvalidJobError:
            count -= 10
            continue
        return job


def test_the_largest_batch_succeeds_with_a_bounded_row_and_report_and_a_full_status(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """It ends succeeded (not ambiguous_write); row and report hold counts; the status route lists every item."""
    before = len(sandbox.bc.records("items"))
    job = largest_batch("big-1")
    count = len(job.steps)
    assert count >= 650
    pipeline.send(None, raw=encode(job))
    report = pipeline.wait_for("big-1", timeout=120)
    assert report.state is JobState.SUCCEEDED, report.error
    assert report.result is not None
    assert (report.result.count, report.result.items_truncated) == (count, True)
    assert (report.result.items_succeeded, report.result.items_failed, report.result.items) == (count, 0, [])
    assert len(sandbox.bc.records("items")) == before + count
    [message] = pipeline.results(1)
    assert message.state is JobState.SUCCEEDED
    assert message.result == report.result
    answer = pipeline.get("/api/jobs/big-1")
    assert answer.status_code == 200
    items = answer.json()["result"]["items"]
    assert [item["index"] for item in items] == list(range(count))
    assert {item["status"] for item in items} == {201}
