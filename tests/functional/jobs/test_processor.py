"""JobProcessor end to end over in-memory storage: one BC effect per job out of an at-least-once queue."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from bcjobs import ErrorInfo, ItemOutcome, Job, JobState, ResultSummary
from shared.auth.errors import ReauthorizationRequiredError, TokenUnavailableError
from shared.bc import (
    Correlation,
    RequestTimeoutError,
    RequestValidationError,
    ServiceUnavailableError,
    ThrottledError,
)
from shared.jobs import Handled, JobQueueError, JobStoreError
from shared.jobs.errors import AmbiguousWriteError, RetriableBatchItemsError
from shared.jobs.records import AUDIT_ROOM, JobRecord
from shared.jobs.runner import EarlierRuns
from testkit.clock import START
from tests.functional.jobs.conftest import REQUEST_TIMEOUT, Pipeline
from tests.functional.jobs.fakes import steps_of, wire

GUID = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
CREATE = {
    "jobId": "create-1",
    "operation": "create",
    "entitySet": "customers",
    "data": {"displayName": "Adatum"},
    "correlationId": "crm-1",
}
KEYED_CREATE = {**CREATE, "naturalKey": {"number": "C-100"}}
GET = {"jobId": "get-1", "operation": "get", "entitySet": "customers", "id": GUID}
CREATED = ResultSummary(id=GUID, number="C-100", etag='W/"1"')


def with_deadline(job: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {**job, "deadline": (START + timedelta(seconds=seconds)).isoformat()}


async def test_a_new_job_succeeds_on_its_first_attempt_and_is_reported_once(pipeline: Pipeline) -> None:
    """Claim, token, one run: succeeded with attempts 1, BC's result on the row and in one report."""
    pipeline.runner.script(CREATED)
    assert await pipeline.deliver(wire(CREATE)) is Handled.SUCCEEDED
    row = pipeline.row("create-1")
    assert row.state is JobState.SUCCEEDED
    assert (row.attempts, row.runs) == (1, 1)
    assert row.result == CREATED
    assert (row.finished_by, row.finished_at, row.lease_holder) == ("m1", START, None)
    assert [report.model_dump() for report in pipeline.queues.published] == [row.report().model_dump()]
    assert pipeline.queues.published[0].correlation_id == "crm-1"
    assert steps_of(pipeline.runner.calls) == [False]
    assert pipeline.queues.requeued == []


async def test_the_token_is_asked_to_last_for_the_whole_job(pipeline: Pipeline) -> None:
    """The token comes first, valid for one slow request plus a little per request the job may send."""
    await pipeline.deliver(wire(CREATE))
    assert pipeline.tokens.asked == [
        pipeline.policy.min_validity(Job.model_validate(CREATE), REQUEST_TIMEOUT)
    ]


async def test_the_runs_bc_requests_are_kept_in_the_audit_log_under_its_run(pipeline: Pipeline) -> None:
    """Each request the run made is an audit row: run number, sequence, BC's correlation ids."""
    pipeline.runner.requests_per_run = 2
    pipeline.runner.script(ThrottledError("slow down", status=429, retry_after=1))
    await pipeline.deliver(wire(CREATE))
    await pipeline.deliver_copy("m2")
    kept = await pipeline.audit.read("create-1")
    assert [(item.attempt, item.sequence) for item in kept] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert [item.bc_request_id for item in kept] == ["bc-1-1", "bc-1-2", "bc-2-1", "bc-2-2"]


async def test_a_job_without_a_job_id_is_kept_under_its_message_id(pipeline: Pipeline) -> None:
    """No jobId: the message id names the job (the same on every redelivery)."""
    job = {key: value for key, value in CREATE.items() if key != "jobId"}
    assert await pipeline.deliver(wire(job), "m7") is Handled.SUCCEEDED
    assert pipeline.states() == {"msg-m7": JobState.SUCCEEDED}
    assert pipeline.queues.published[0].job_id == "msg-m7"
    assert await pipeline.deliver(wire(job), "m7") is Handled.ALREADY_FINISHED
    assert len(pipeline.runner.calls) == 1


async def test_a_redelivered_finished_job_runs_nothing_and_publishes_nothing(pipeline: Pipeline) -> None:
    """A duplicate message of a finished job: no BC call, no second report, the row unchanged."""
    await pipeline.deliver(wire(CREATE), "m1")
    finished = pipeline.row("create-1")
    assert await pipeline.deliver(wire(CREATE), "m2") is Handled.ALREADY_FINISHED
    assert len(pipeline.runner.calls) == 1
    assert len(pipeline.queues.published) == 1
    assert pipeline.row("create-1").etag == finished.etag


async def test_a_redelivery_of_the_finishing_message_publishes_its_report_again(pipeline: Pipeline) -> None:
    """The report could not be sent: the same message comes back and sends it, without running the job."""
    pipeline.queues.fail_publish = 1
    with pytest.raises(JobQueueError):
        await pipeline.deliver(wire(CREATE), "m1")
    assert pipeline.row("create-1").state is JobState.SUCCEEDED
    assert pipeline.queues.published == []
    assert await pipeline.deliver(wire(CREATE), "m1") is Handled.ALREADY_FINISHED
    assert [report.state for report in pipeline.queues.published] == [JobState.SUCCEEDED]
    assert pipeline.queues.published[0] == pipeline.row("create-1").report()
    assert len(pipeline.runner.calls) == 1


async def test_a_second_delivery_during_a_live_claim_runs_nothing(pipeline: Pipeline) -> None:
    """While one delivery runs the job, another (another process, a duplicate message) leaves it alone."""
    pipeline.runner.hold = asyncio.Event()
    first = asyncio.create_task(pipeline.deliver(wire(CREATE), "m1", process_id="worker-a"))
    await asyncio.wait_for(pipeline.runner.started.wait(), 1)
    assert await pipeline.deliver(wire(CREATE), "m2", process_id="worker-b") is Handled.CLAIMED_ELSEWHERE
    assert pipeline.row("create-1").lease_holder == "worker-a:m1"
    pipeline.runner.hold.set()
    assert await asyncio.wait_for(first, 1) is Handled.SUCCEEDED
    assert len(pipeline.runner.calls) == 1
    assert len(pipeline.queues.published) == 1


async def test_a_lost_insert_race_leaves_the_job_to_the_delivery_that_won(pipeline: Pipeline) -> None:
    """The other delivery inserted the row first: this one's insert fails, it reads the live claim, runs nothing."""
    rival = JobRecord.new(
        Job.model_validate(CREATE), "create-1", START, START + timedelta(hours=1), "default"
    )
    pipeline.store.seed(rival.claimed("worker-b:m2", START, pipeline.policy.claim_lease))
    assert await pipeline.deliver(wire(CREATE), "m1") is Handled.CLAIMED_ELSEWHERE
    assert pipeline.runner.calls == []
    assert pipeline.row("create-1").lease_holder == "worker-b:m2"


async def test_a_run_that_lost_its_claim_drops_its_outcome_and_only_the_successor_reports(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """A run outliving its lease was taken over: its final write fails the ETag check and publishes nothing."""
    pipeline.runner.hold = asyncio.Event()
    slow = asyncio.create_task(pipeline.deliver(wire(KEYED_CREATE), "m1", process_id="worker-a"))
    await asyncio.wait_for(pipeline.runner.started.wait(), 1)
    pipeline.clock.advance(pipeline.policy.claim_lease)
    pipeline.runner.started.clear()
    successor = asyncio.create_task(pipeline.deliver(wire(KEYED_CREATE), "m2", process_id="worker-b"))
    await asyncio.wait_for(pipeline.runner.started.wait(), 1)
    with caplog.at_level(logging.WARNING, logger="shared.jobs.processor"):
        pipeline.runner.hold.set()
        await asyncio.wait_for(asyncio.gather(slow, successor), 1)
    assert steps_of(pipeline.runner.calls) == [False, True]
    row = pipeline.row("create-1")
    assert (row.state, row.finished_by, row.runs) == (JobState.SUCCEEDED, "m2", 2)
    assert [report.job_id for report in pipeline.queues.published] == ["create-1"]
    assert "jobs.claim_lost" in [getattr(record, "event", None) for record in caplog.records]


async def test_a_crashed_runs_claim_is_taken_over_once_its_lease_expired(pipeline: Pipeline) -> None:
    """A run that never recorded its end keeps the job from other messages until its lease runs out; then the
    next run reconciles."""
    pipeline.store.fail("replace")  # the run's outcome is never written: as if the worker died
    with pytest.raises(JobStoreError):
        await pipeline.deliver(wire(KEYED_CREATE), "m1", process_id="worker-a")
    assert pipeline.row("create-1").state is JobState.RUNNING
    pipeline.clock.advance(pipeline.policy.claim_lease - timedelta(seconds=1))
    assert (
        await pipeline.deliver(wire(KEYED_CREATE), "m2", process_id="worker-b") is Handled.CLAIMED_ELSEWHERE
    )
    pipeline.clock.advance(timedelta(seconds=1))
    assert await pipeline.deliver(wire(KEYED_CREATE), "m2", process_id="worker-b") is Handled.SUCCEEDED
    assert steps_of(pipeline.runner.calls) == [False, True]
    row = pipeline.row("create-1")
    assert (row.state, row.ambiguous, row.runs) == (JobState.SUCCEEDED, True, 2)


async def test_a_redelivery_of_the_claims_own_message_takes_over_at_once(pipeline: Pipeline) -> None:
    """The host redelivers a message only after its run ended (it failed, or its worker or instance died), so a
    redelivery on another process takes the live claim over instead of deleting the job's only message."""
    pipeline.store.fail("replace")  # the run's outcome is never written: its invocation fails
    with pytest.raises(JobStoreError):
        await pipeline.deliver(wire(KEYED_CREATE), "m1", process_id="worker-a")
    assert pipeline.row("create-1").leased_at(pipeline.clock.now())
    handled = await pipeline.deliver(wire(KEYED_CREATE), "m1", process_id="worker-b", dequeue_count=2)
    assert handled is Handled.SUCCEEDED
    assert steps_of(pipeline.runner.calls) == [False, True]  # the second run reconciled by natural key
    row = pipeline.row("create-1")
    assert (row.state, row.ambiguous, row.runs) == (JobState.SUCCEEDED, True, 2)


async def test_a_taken_over_create_without_natural_key_fails_as_ambiguous_and_is_not_run_again(
    pipeline: Pipeline,
) -> None:
    """A crashed create may have reached BC and nothing can look it up: failed `ambiguous_write`, no second run."""
    pipeline.store.fail("replace")
    with pytest.raises(JobStoreError):
        await pipeline.deliver(wire(CREATE), "m1", process_id="worker-a")
    pipeline.clock.advance(pipeline.policy.claim_lease)
    assert await pipeline.deliver(wire(CREATE), "m1", process_id="worker-b") is Handled.FAILED
    assert steps_of(pipeline.runner.calls) == [False]
    row = pipeline.row("create-1")
    assert row.error is not None
    assert (row.state, row.error.code, row.attempts) == (JobState.FAILED, "ambiguous_write", 1)


async def test_a_taken_over_read_job_is_simply_run_again(pipeline: Pipeline) -> None:
    """A get that crashed may be read again: its next run is not told to reconcile."""
    pipeline.store.fail("replace")
    with pytest.raises(JobStoreError):
        await pipeline.deliver(wire(GET), "m1", process_id="worker-a")
    pipeline.clock.advance(pipeline.policy.claim_lease)
    assert await pipeline.deliver(wire(GET), "m1", process_id="worker-b") is Handled.SUCCEEDED
    assert steps_of(pipeline.runner.calls) == [False, False]
    assert pipeline.row("get-1").ambiguous is False


async def test_a_retriable_failure_is_requeued_with_a_delay_and_scheduled(pipeline: Pipeline) -> None:
    """429 → a delayed copy (≥ Retry-After), the row retry_scheduled with next_attempt_at; its copy then succeeds."""
    pipeline.runner.script(
        ThrottledError("slow down", status=429, code="TooManyRequests", retry_after=30), CREATED
    )
    assert await pipeline.deliver(wire(CREATE), "m1") is Handled.RETRY_SCHEDULED
    [copy] = pipeline.queues.requeued
    assert 30 <= copy.delay_seconds <= pipeline.policy.backoff_cap_seconds
    assert copy.job.job_id == "create-1"
    row = pipeline.row("create-1")
    assert row.state is JobState.RETRY_SCHEDULED
    assert row.attempts == 1
    assert row.next_attempt_at == START + timedelta(seconds=copy.delay_seconds)
    assert row.error is not None
    assert (row.error.code, row.error.bc_code) == (
        "bc_throttled",
        "TooManyRequests",
    )
    assert (row.lease_holder, row.finished_at) == (None, None)
    assert pipeline.queues.published == []
    assert await pipeline.deliver_copy("m2") is Handled.SUCCEEDED
    finished = pipeline.row("create-1")
    assert (finished.attempts, finished.runs, finished.error) == (2, 2, None)
    assert [report.state for report in pipeline.queues.published] == [JobState.SUCCEEDED]


async def test_the_retry_copy_is_sent_before_the_row_says_retry_scheduled(pipeline: Pipeline) -> None:
    """When the copy cannot be sent, the row never points at it: it still says running, the host redelivers."""
    pipeline.runner.script(ServiceUnavailableError("unavailable", status=503))
    pipeline.queues.fail_requeue = 1
    with pytest.raises(JobQueueError):
        await pipeline.deliver(wire(CREATE), "m1")
    row = pipeline.row("create-1")
    assert row.state is JobState.RUNNING
    assert (row.attempts, row.next_attempt_at) == (0, None)
    assert pipeline.queues.requeued == []
    assert [record.state for record in pipeline.store.writes] == [JobState.RUNNING]


async def test_the_last_allowed_attempt_fails_the_job(pipeline: Pipeline) -> None:
    """max_attempts failures in a row → failed "gave up after N attempts", BC's last error kept."""
    pipeline.policy = replace(pipeline.policy, max_attempts=3)
    failure = ServiceUnavailableError("bad gateway", status=502, code="BadGateway")
    pipeline.runner.script(failure, failure, failure)
    assert await pipeline.deliver(wire(CREATE), "m1") is Handled.RETRY_SCHEDULED
    assert await pipeline.deliver_copy("m2") is Handled.RETRY_SCHEDULED
    assert await pipeline.deliver_copy("m3") is Handled.FAILED
    row = pipeline.row("create-1")
    assert (row.state, row.attempts) == (JobState.FAILED, 3)
    assert row.error is not None
    assert row.error.message.startswith("gave up after 3 attempts: bad gateway")
    assert (row.error.code, row.error.bc_code) == ("bc_unavailable", "BadGateway")
    assert len(pipeline.queues.requeued) == 2
    assert [report.state for report in pipeline.queues.published] == [JobState.FAILED]


async def test_a_retry_that_would_land_after_the_deadline_expires_the_job(pipeline: Pipeline) -> None:
    """A copy that could only run after the deadline is not sent: expired, with the last error."""
    pipeline.runner.script(ThrottledError("slow down", status=429, retry_after=600))
    assert await pipeline.deliver(wire(with_deadline(CREATE, 60)), "m1") is Handled.EXPIRED
    row = pipeline.row("create-1")
    assert (row.state, row.attempts) == (JobState.EXPIRED, 1)
    assert row.error is not None
    assert "deadline" in row.error.message
    assert "last error: slow down" in row.error.message
    assert row.error.code == "bc_throttled"
    assert pipeline.queues.requeued == []
    assert [report.state for report in pipeline.queues.published] == [JobState.EXPIRED]


async def test_a_job_claimed_after_its_deadline_expires_without_running(pipeline: Pipeline) -> None:
    """Past its deadline the job is not sent to BC (nor is a token fetched): expired, attempts 0."""
    assert await pipeline.deliver(wire(with_deadline(CREATE, -1)), "m1") is Handled.EXPIRED
    row = pipeline.row("create-1")
    assert (row.state, row.attempts) == (JobState.EXPIRED, 0)
    assert row.error is not None
    assert row.error.code == "deadline_passed"
    assert pipeline.runner.calls == []
    assert pipeline.tokens.asked == []
    assert [report.state for report in pipeline.queues.published] == [JobState.EXPIRED]


async def test_a_retry_whose_default_deadline_passed_in_the_queue_expires(pipeline: Pipeline) -> None:
    """A job without a deadline gets the policy's; a copy arriving after it expires the job unrun."""
    pipeline.runner.script(ThrottledError("slow down", status=429, retry_after=5))
    await pipeline.deliver(wire(CREATE), "m1")
    pipeline.clock.advance(pipeline.policy.default_deadline)
    assert await pipeline.deliver_copy("m2") is Handled.EXPIRED
    assert len(pipeline.runner.calls) == 1
    assert pipeline.row("create-1").attempts == 1


async def test_an_admin_needed_token_failure_parks_the_job_without_using_an_attempt(
    pipeline: Pipeline,
) -> None:
    """Re-authorization required → waiting_for_authorization, requeued, attempts 0; once fixed, it succeeds."""
    pipeline.tokens.fail_with(ReauthorizationRequiredError("sign in again", error_code="invalid_grant"))
    assert await pipeline.deliver(wire(CREATE), "m1") is Handled.WAITING_FOR_AUTHORIZATION
    [copy] = pipeline.queues.requeued
    assert copy.delay_seconds <= pipeline.policy.authorization_cap_seconds
    row = pipeline.row("create-1")
    assert (row.state, row.attempts, row.runs) == (JobState.WAITING_FOR_AUTHORIZATION, 0, 1)
    assert row.next_attempt_at == START + timedelta(seconds=copy.delay_seconds)
    assert row.error is not None
    assert row.error.code == "authorization_required"
    assert pipeline.runner.calls == []
    assert pipeline.queues.published == []
    assert await pipeline.deliver_copy("m2") is Handled.SUCCEEDED
    finished = pipeline.row("create-1")
    assert (finished.state, finished.attempts, finished.runs) == (JobState.SUCCEEDED, 1, 2)
    assert len(pipeline.runner.calls) == 1


async def test_a_job_parked_again_waits_longer_each_time(pipeline: Pipeline) -> None:
    """Every further wait for an admin doubles the nominal re-check, never beyond its cap, never an attempt."""
    pipeline.policy = replace(
        pipeline.policy, authorization_base_seconds=30.0, authorization_cap_seconds=300.0
    )
    pipeline.tokens.fail_with(*(ReauthorizationRequiredError("sign in again") for _ in range(6)))
    await pipeline.deliver(wire(CREATE), "m1")
    for number in range(2, 7):
        assert await pipeline.deliver_copy(f"m{number}") is Handled.WAITING_FOR_AUTHORIZATION
    delays = [copy.delay_seconds for copy in pipeline.queues.requeued]
    nominal = [30.0, 60.0, 120.0, 240.0, 300.0, 300.0]
    assert all(low / 2 <= delay <= low for delay, low in zip(delays, nominal, strict=True))
    assert pipeline.row("create-1").attempts == 0


async def test_a_transient_token_failure_is_retried_as_an_attempt(pipeline: Pipeline) -> None:
    """The token service briefly down → retry_scheduled (token_unavailable), counted like a BC outage."""
    pipeline.tokens.fail_with(TokenUnavailableError("Key Vault unreachable"))
    assert await pipeline.deliver(wire(CREATE), "m1") is Handled.RETRY_SCHEDULED
    row = pipeline.row("create-1")
    assert (row.state, row.attempts) == (JobState.RETRY_SCHEDULED, 1)
    assert row.error is not None
    assert row.error.code == "token_unavailable"
    assert pipeline.runner.calls == []


async def test_an_early_duplicate_of_a_scheduled_job_runs_nothing(pipeline: Pipeline) -> None:
    """Before the scheduled time a redelivery is dropped (its copy will run the job); at the time it may run."""
    pipeline.runner.script(ThrottledError("slow down", status=429, retry_after=60))
    await pipeline.deliver(wire(CREATE), "m1")
    scheduled = pipeline.row("create-1")
    assert scheduled.next_attempt_at is not None
    assert await pipeline.deliver(wire(CREATE), "m1") is Handled.EARLY_DUPLICATE
    assert len(pipeline.runner.calls) == 1
    assert pipeline.row("create-1").etag == scheduled.etag
    pipeline.clock.move_to(scheduled.next_attempt_at - timedelta(seconds=1))  # within the tolerance
    assert await pipeline.deliver(wire(CREATE), "m1") is Handled.SUCCEEDED


async def test_without_a_bc_slot_the_job_goes_back_to_the_queue_unrecorded(pipeline: Pipeline) -> None:
    """No slot within the hold: a delayed copy (carrying the job's id) and no row; the copy runs once a slot
    is free."""
    pipeline.has_slot = False
    job = {key: value for key, value in CREATE.items() if key != "jobId"}
    assert await pipeline.deliver(wire(job), "m1") is Handled.NO_SLOT
    assert pipeline.slot_waits == [pipeline.policy.no_slot_hold_seconds]
    [copy] = pipeline.queues.requeued
    assert copy.job.job_id == "msg-m1"
    assert (
        pipeline.policy.no_slot_delay_seconds
        <= copy.delay_seconds
        < 2 * pipeline.policy.no_slot_delay_seconds
    )
    assert pipeline.store.job_ids == []
    assert pipeline.runner.calls == []
    pipeline.has_slot = True
    assert await pipeline.deliver_copy("m2") is Handled.SUCCEEDED
    assert pipeline.states() == {"msg-m1": JobState.SUCCEEDED}


async def test_the_finishing_messages_redelivery_resends_its_report_even_without_a_bc_slot(
    pipeline: Pipeline,
) -> None:
    """Re-sending a report needs no BC slot: a requeued copy of that message could never send it."""
    pipeline.queues.fail_publish = 1
    with pytest.raises(JobQueueError):
        await pipeline.deliver(wire(CREATE), "m1")
    pipeline.has_slot = False
    handled = await pipeline.deliver(wire(CREATE), "m1")
    pipeline.has_slot = True
    for number, copy in enumerate(list(pipeline.queues.requeued)):
        await pipeline.deliver(copy.text, f"copy-{number}")
    assert [report.state for report in pipeline.queues.published] == [JobState.SUCCEEDED]
    assert handled is Handled.ALREADY_FINISHED


async def test_a_duplicate_of_a_finished_job_is_dropped_even_without_a_bc_slot(pipeline: Pipeline) -> None:
    """A finished job needs no BC: its duplicate is not sent back to the queue to be dropped later."""
    await pipeline.deliver(wire(CREATE), "m1")
    pipeline.has_slot = False
    assert await pipeline.deliver(wire(CREATE), "m2") is Handled.ALREADY_FINISHED
    assert pipeline.queues.requeued == []
    assert len(pipeline.queues.published) == 1


async def test_a_bc_refusal_fails_the_job_with_bcs_code(pipeline: Pipeline) -> None:
    """400 → failed at once with BC's code, message and correlation ids, one attempt, one report."""
    pipeline.runner.script(
        RequestValidationError(
            "Name is too long",
            status=400,
            code="Application_StringExceededLength",
            correlation=Correlation("cr-1", request_id="bc-1"),
        )
    )
    assert await pipeline.deliver(wire(CREATE), "m1") is Handled.FAILED
    row = pipeline.row("create-1")
    assert (row.state, row.attempts) == (JobState.FAILED, 1)
    assert row.error == ErrorInfo(
        code="bc_validation",
        message="Name is too long",
        bc_code="Application_StringExceededLength",
        status=400,
        client_request_id="cr-1",
        bc_request_id="bc-1",
    )
    assert pipeline.queues.requeued == []
    assert [report.error for report in pipeline.queues.published] == [row.error]


async def test_an_ambiguous_write_with_a_natural_key_is_retried_to_reconcile(pipeline: Pipeline) -> None:
    """The answer to a keyed create was lost: retried, and the next run is told to look the key up first."""
    pipeline.runner.script(AmbiguousWriteError(RequestTimeoutError("no answer", status=504)), CREATED)
    assert await pipeline.deliver(wire(KEYED_CREATE), "m1") is Handled.RETRY_SCHEDULED
    assert pipeline.row("create-1").ambiguous is True
    assert await pipeline.deliver_copy("m2") is Handled.SUCCEEDED
    assert steps_of(pipeline.runner.calls) == [False, True]


async def test_an_ambiguous_write_without_a_natural_key_fails_as_ambiguous(pipeline: Pipeline) -> None:
    """Nothing to look up: failed `ambiguous_write` at once, never written a second time."""
    pipeline.runner.script(AmbiguousWriteError(RequestTimeoutError("no answer", status=504)))
    assert await pipeline.deliver(wire(CREATE), "m1") is Handled.FAILED
    row = pipeline.row("create-1")
    assert row.error is not None
    assert row.error.code == "ambiguous_write"
    assert (row.ambiguous, row.attempts) == (True, 1)
    assert pipeline.queues.requeued == []


BATCH = {
    "jobId": "batch-1",
    "operation": "batch",
    "operations": [
        {"operation": "create", "entitySet": "items", "data": {"number": f"I{n}"}} for n in range(3)
    ],
}


async def test_a_partly_done_batch_hands_its_finished_items_to_the_next_run(pipeline: Pipeline) -> None:
    """Items kept by a run that must be retried are on the row and in the next run's EarlierRuns."""
    throttled = ThrottledError("slow down", status=429, retry_after=2)
    done = {
        0: ItemOutcome(index=0, status=201, id=GUID),
        1: ItemOutcome(
            index=1, status=429, error=ErrorInfo(code="bc_throttled", message="x", retriable=True)
        ),
    }
    finished = ResultSummary(count=3, items=[ItemOutcome(index=n, status=201) for n in range(3)])
    pipeline.runner.script(RetriableBatchItemsError(done, throttled), finished)
    assert await pipeline.deliver(wire(BATCH), "m1") is Handled.RETRY_SCHEDULED
    row = pipeline.row("batch-1")
    assert row.result == ResultSummary(count=3, items=[done[0], done[1]])
    assert await pipeline.deliver_copy("m2") is Handled.SUCCEEDED
    assert pipeline.runner.calls[1].earlier == EarlierRuns(ambiguous=False, items=done)


async def test_a_batch_with_failed_items_fails_with_its_items(pipeline: Pipeline) -> None:
    """A run that returns failed items is a failed job whose result lists every item."""
    refused = ErrorInfo(code="bc_validation", message="bad number", bc_code="BadRequest", status=400)
    summary = ResultSummary(
        count=3,
        items=[
            ItemOutcome(index=0, status=201),
            ItemOutcome(index=1, status=400, error=refused),
            ItemOutcome(index=2, status=201),
        ],
    )
    pipeline.runner.script(summary)
    assert await pipeline.deliver(wire(BATCH), "m1") is Handled.FAILED
    row = pipeline.row("batch-1")
    assert row.result == summary
    assert row.error is not None
    assert (row.error.code, row.error.bc_code) == ("batch_items_failed", "BadRequest")


async def test_a_storage_failure_propagates_so_the_host_redelivers(pipeline: Pipeline) -> None:
    """The jobs table is down: handle() raises JobStoreError and nothing runs."""
    pipeline.store.outage = True
    with pytest.raises(JobStoreError):
        await pipeline.deliver(wire(CREATE), "m1")
    assert pipeline.runner.calls == []
    assert pipeline.queues.published == []
    pipeline.store.outage = False
    assert await pipeline.deliver(wire(CREATE), "m1") is Handled.SUCCEEDED


async def test_a_failed_audit_write_does_not_lose_the_jobs_outcome(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """More audit rows than the row's transaction holds: the earliest go alone first, and that write fails; the
    outcome is still recorded and reported (with the last 99 rows); the loss is logged."""
    pipeline.runner.requests_per_run = AUDIT_ROOM + 1
    pipeline.audit.outage = True
    with caplog.at_level(logging.ERROR, logger="shared.jobs.processor"):
        assert await pipeline.deliver(wire(CREATE), "m1") is Handled.SUCCEEDED
    assert pipeline.row("create-1").state is JobState.SUCCEEDED
    assert len(pipeline.queues.published) == 1
    assert [getattr(record, "event", None) for record in caplog.records] == ["jobs.audit_failed"]


async def test_a_bug_in_a_run_propagates_and_leaves_the_claim_to_expire(pipeline: Pipeline) -> None:
    """An exception that is no job outcome is raised again (host retries, then poison), nothing reported."""
    pipeline.runner.script(RuntimeError("a bug"))
    with pytest.raises(RuntimeError):
        await pipeline.deliver(wire(GET), "m1")
    assert pipeline.row("get-1").state is JobState.RUNNING
    assert pipeline.queues.published == []
