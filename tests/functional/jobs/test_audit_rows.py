"""A run's audit rows and its row write: one entity-group transaction (issue 24), and the audit kept whatever
happens to the row write (shared/jobs/processor.py, shared/jobs/audit.py)."""

from __future__ import annotations

import asyncio

import pytest

from bcjobs import JobState
from shared.bc import ThrottledError
from shared.jobs import Handled, JobQueueError
from shared.jobs.records import AUDIT_ROOM
from tests.functional.jobs.conftest import Pipeline
from tests.functional.jobs.fakes import wire

GET = {
    "jobId": "get-1",
    "operation": "get",
    "entitySet": "customers",
    "id": "5d115c9c-44e3-ea11-bb43-000d3a2feca1",
}


def runs_and_sequences(rows: list[object]) -> list[tuple[int, int]]:
    return [(row.attempt, row.sequence) for row in rows]  # type: ignore[attr-defined]


async def test_a_finished_runs_audit_rides_in_its_row_write(pipeline: Pipeline) -> None:
    """One write for the row and the run's two audit rows; no audit write of its own."""
    pipeline.runner.requests_per_run = 2
    assert await pipeline.deliver(wire(GET)) is Handled.SUCCEEDED
    [(record, audit)] = pipeline.store.transactions
    assert record.state is JobState.SUCCEEDED
    assert runs_and_sequences(list(audit)) == [(1, 1), (1, 2)]
    assert pipeline.audit.appends == 0
    assert runs_and_sequences(list(await pipeline.audit.read("get-1"))) == [(1, 1), (1, 2)]


async def test_a_retried_runs_audit_rides_in_its_retry_scheduled_write(pipeline: Pipeline) -> None:
    """The retry's row write carries the audit too, and its delayed copy was sent before it."""
    pipeline.runner.script(ThrottledError("slow down", status=429, retry_after=1))
    assert await pipeline.deliver(wire(GET)) is Handled.RETRY_SCHEDULED
    [(record, audit)] = pipeline.store.transactions
    assert record.state is JobState.RETRY_SCHEDULED
    assert runs_and_sequences(list(audit)) == [(1, 1)]
    assert len(pipeline.queues.requeued) == 1
    assert pipeline.audit.appends == 0


async def test_a_run_that_lost_its_claim_keeps_its_audit_alone(pipeline: Pipeline) -> None:
    """The row write fails the ETag check (nothing of the transaction written): the audit is written alone."""
    pipeline.runner.hold = asyncio.Event()
    slow = asyncio.create_task(pipeline.deliver(wire(GET), "m1", process_id="worker-a"))
    await asyncio.wait_for(pipeline.runner.started.wait(), 1)
    pipeline.clock.advance(pipeline.policy.claim_lease)
    pipeline.runner.started.clear()
    successor = asyncio.create_task(pipeline.deliver(wire(GET), "m2", process_id="worker-b"))
    await asyncio.wait_for(pipeline.runner.started.wait(), 1)
    pipeline.runner.hold.set()
    await asyncio.wait_for(asyncio.gather(slow, successor), 1)
    assert pipeline.row("get-1").finished_by == "m2"
    assert runs_and_sequences(list(await pipeline.audit.read("get-1"))) == [(1, 1), (2, 1)]
    assert pipeline.audit.appends == 1  # the run that lost its claim
    assert len(pipeline.store.transactions) == 1  # the successor's


async def test_more_audit_rows_than_a_transaction_holds_go_earliest_first(pipeline: Pipeline) -> None:
    """A transaction holds 100 operations: the row's write and the last 99 rows; the earlier ones go first."""
    pipeline.runner.requests_per_run = AUDIT_ROOM + 51
    assert await pipeline.deliver(wire(GET)) is Handled.SUCCEEDED
    [(_, audit)] = pipeline.store.transactions
    assert [row.sequence for row in audit] == list(range(52, AUDIT_ROOM + 52))
    assert pipeline.audit.appends == 1
    kept = await pipeline.audit.read("get-1")
    assert [row.sequence for row in kept] == list(range(1, AUDIT_ROOM + 52))


async def test_a_run_that_raises_before_its_row_write_keeps_its_audit(pipeline: Pipeline) -> None:
    """The retry's delayed copy could not be sent: the storage error goes to the host (it redelivers), the row
    still says running, and the run's audit is kept alone."""
    pipeline.runner.script(ThrottledError("slow down", status=429, retry_after=1))
    pipeline.queues.fail_requeue = 1
    with pytest.raises(JobQueueError):
        await pipeline.deliver(wire(GET))
    assert pipeline.row("get-1").state is JobState.RUNNING
    assert pipeline.store.transactions == []
    assert runs_and_sequences(list(await pipeline.audit.read("get-1"))) == [(1, 1)]


async def test_a_bug_in_a_run_keeps_its_audit(pipeline: Pipeline) -> None:
    """An exception that is no job outcome propagates; the run's audit is kept first."""
    pipeline.runner.script(RuntimeError("a bug"))
    with pytest.raises(RuntimeError):
        await pipeline.deliver(wire(GET))
    assert runs_and_sequences(list(await pipeline.audit.read("get-1"))) == [(1, 1)]
