"""A batch that cannot finish within one run's time budget completes across deliveries on devhost, against the
sandbox's slowed-down BC, and the other jobs the same worker runs meanwhile all finish."""

from __future__ import annotations

import pytest

from bcjobs import Job, JobState
from bcjobs.wire import encode
from sandbox import Sandbox
from tests.integration.jobs.conftest import JobsWorld

pytestmark = pytest.mark.integration

COUNT = 300  # three $batch requests of 100
LATENCY_MS = 1000  # every BC request: a run of 3 s starts a $batch only with 1.5 s left, so two at most


@pytest.fixture
def jobs_env(jobs_env: dict[str, str]) -> dict[str, str]:
    """The usual test settings with a 3 s time budget and 1.5 s BC requests."""
    return {**jobs_env, "BC_JOB_TIME_BUDGET_SECONDS": "3", "BC_REQUEST_TIMEOUT_SECONDS": "1.5"}


def batch(job_id: str) -> Job:
    operations = [
        {"operation": "create", "entitySet": "vendors", "data": {"displayName": f"budget-{n}"}}
        for n in range(COUNT)
    ]
    return Job.model_validate({"jobId": job_id, "operation": "batch", "operations": operations})


def test_a_batch_longer_than_its_budget_completes_across_deliveries_beside_other_jobs(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """Succeeded after at least one continuation (a run that used no attempt), each vendor created once; the six
    jobs sent with it succeed too."""
    sandbox.bc.latency(LATENCY_MS)
    try:
        pipeline.send(None, raw=encode(batch("budget-1")))
        others = [f"other-{n}" for n in range(6)]
        for job_id in others:
            data = {"number": job_id.upper(), "displayName": job_id}
            pipeline.send({"jobId": job_id, "operation": "create", "entitySet": "customers", "data": data})
        report = pipeline.wait_for("budget-1", timeout=60)
        finished = [pipeline.wait_for(job_id, timeout=30) for job_id in others]
    finally:
        sandbox.bc.latency(0)
    assert report.state is JobState.SUCCEEDED, report.error
    names = [str(row.get("displayName")) for row in sandbox.bc.records("vendors")]
    created = sorted(name for name in names if name.startswith("budget-"))
    assert created == sorted(f"budget-{n}" for n in range(COUNT))
    row = pipeline.row("budget-1")
    assert row is not None
    assert row["Attempts"] < row["Runs"], (row["Attempts"], row["Runs"])  # a continuation is not an attempt
    assert [(job.job_id, job.state) for job in finished] == [
        (job_id, JobState.SUCCEEDED) for job_id in others
    ]
