"""DeadLetters.record: a message the host gave up on is recorded as `dead_lettered`, never lost or overwritten."""

from __future__ import annotations

import pytest

from bcjobs import JobState
from shared.bc import Correlation, ThrottledError
from shared.jobs import Delivery, Handled, JobStoreError
from tests.functional.jobs.conftest import Pipeline
from tests.functional.jobs.fakes import wire

CREATE = {
    "jobId": "create-1",
    "operation": "create",
    "entitySet": "customers",
    "data": {"displayName": "Adatum"},
}


async def test_an_unreadable_poison_message_gets_a_row_under_its_message_id(pipeline: Pipeline) -> None:
    """No job id can be read: dead_lettered as msg-<message id>, naming the message and its deliveries."""
    state = await pipeline.dead_letters().record(Delivery("m9", "%%% not base64", dequeue_count=5))
    assert state is JobState.DEAD_LETTERED
    row = pipeline.row("msg-m9")
    assert row.state is JobState.DEAD_LETTERED
    assert row.error is not None
    assert row.error.code == "dead_lettered"
    assert "after 5 failed deliveries" in row.error.message
    assert "message m9" in row.error.message
    assert (row.finished_by, row.finished_at) == ("m9", pipeline.clock.now())
    assert [(report.job_id, report.state) for report in pipeline.queues.published] == [
        ("msg-m9", JobState.DEAD_LETTERED)
    ]


async def test_a_poison_message_naming_an_unseen_job_gets_a_row_under_that_job_id(pipeline: Pipeline) -> None:
    """A job whose every delivery failed before its row was written is still found where the app looks."""
    assert await pipeline.dead_letters().record(Delivery("m1", wire(CREATE), 5)) is JobState.DEAD_LETTERED
    assert pipeline.states() == {"create-1": JobState.DEAD_LETTERED}


async def test_a_running_job_is_dead_lettered_with_its_last_error_and_the_dequeue_count(
    pipeline: Pipeline,
) -> None:
    """A job stuck running (its outcome never written) ends dead_lettered, keeping the error it last recorded."""
    pipeline.runner.script(
        ThrottledError(
            "slow down", status=429, code="TooManyRequests", correlation=Correlation("cr-1"), retry_after=1
        )
    )
    assert await pipeline.deliver(wire(CREATE), "m1") is Handled.RETRY_SCHEDULED
    pipeline.store.fail("replace", after=1)  # the copy claims the job, its outcome is never recorded
    with pytest.raises(JobStoreError):
        await pipeline.deliver_copy("m2")
    assert pipeline.row("create-1").state is JobState.RUNNING
    copy = pipeline.queues.requeued[-1]
    assert await pipeline.dead_letters().record(Delivery("m2", copy.text, 5)) is JobState.DEAD_LETTERED
    row = pipeline.row("create-1")
    assert row.state is JobState.DEAD_LETTERED
    assert row.error is not None
    assert "after 5 failed deliveries" in row.error.message
    assert "the last recorded error: bc_throttled: slow down" in row.error.message
    assert (row.error.bc_code, row.error.client_request_id) == ("TooManyRequests", "cr-1")
    assert (row.lease_holder, row.finished_by) == (None, "m2")
    assert row.attempts == 1
    assert [report.state for report in pipeline.queues.published] == [JobState.DEAD_LETTERED]


async def test_a_scheduled_job_is_dead_lettered_too(pipeline: Pipeline) -> None:
    """A poisoned message of a job waiting for its retry ends the job: its copy then finds it finished."""
    pipeline.runner.script(ThrottledError("slow down", status=429, retry_after=1))
    await pipeline.deliver(wire(CREATE), "m1")
    assert await pipeline.dead_letters().record(Delivery("m1", wire(CREATE), 5)) is JobState.DEAD_LETTERED
    assert await pipeline.deliver_copy("m2") is Handled.ALREADY_FINISHED
    assert len(pipeline.runner.calls) == 1


@pytest.mark.parametrize("outcome", ["succeeded", "rejected"])
async def test_a_terminal_job_keeps_its_state(pipeline: Pipeline, outcome: str) -> None:
    """A finished job's poisoned duplicate changes nothing and reports nothing."""
    text = wire(CREATE) if outcome == "succeeded" else wire({"jobId": "create-1", "operation": "create"})
    await pipeline.deliver(text, "m1")
    finished = pipeline.row("create-1")
    published = len(pipeline.queues.published)
    assert await pipeline.dead_letters().record(Delivery("m2", text, 5)) is finished.state
    assert finished.state.value == outcome
    assert pipeline.row("create-1").etag == finished.etag
    assert len(pipeline.queues.published) == published


async def test_a_storage_failure_while_dead_lettering_propagates(pipeline: Pipeline) -> None:
    """The host must retry the poison message: nothing is dropped quietly."""
    pipeline.store.outage = True
    with pytest.raises(JobStoreError):
        await pipeline.dead_letters().record(Delivery("m1", wire(CREATE), 5))
    assert pipeline.queues.published == []
