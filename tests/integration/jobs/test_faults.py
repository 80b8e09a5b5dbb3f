"""BC's faults end each job in the right state, with the right attempts and delays, and no duplicate record."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bcjobs import JobReport
from localworld.polling import wait_until
from sandbox import Sandbox
from tests.integration.jobs.conftest import JobsWorld


def run(world: JobsWorld, job: dict[str, Any], timeout: float = 30.0) -> JobReport:
    world.send(job)
    return world.wait_for(job["jobId"], timeout=timeout)


def named(sandbox: Sandbox, entity_set: str, name: str) -> list[dict[str, Any]]:
    return [row for row in sandbox.bc.records(entity_set) if row.get("displayName") == name]


def get_job(sandbox: Sandbox, job_id: str) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "operation": "get",
        "entitySet": "items",
        "id": sandbox.bc.records("items")[0]["id"],
    }


def test_503s_beyond_the_in_call_retries_go_back_to_the_queue_and_succeed(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """Three 503s use up the client's own tries; the job is re-enqueued and its second attempt succeeds."""
    sandbox.bc.faults(retry_after_seconds=0)
    sandbox.bc.fail_next(3, "503")
    report = run(pipeline, get_job(sandbox, "f503"))
    assert (report.state, report.attempts) == ("succeeded", 2)
    statuses = [i.status for i in pipeline.interactions("f503")]
    assert statuses == [503, 503, 503, 200]


def test_429s_without_retry_after_and_504s_and_502s_are_retried_until_success(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """Throttling without Retry-After, gateway timeouts and bad gateways (Retry-After 1 s): retried, succeeded."""
    for kind, job_id, retry_after in (("429", "f429", None), ("504", "f504", None), ("502", "f502", 1)):
        sandbox.bc.faults(retry_after_seconds=retry_after)
        sandbox.bc.fail_next(3, kind)
        report = run(pipeline, get_job(sandbox, job_id))
        assert (report.state, report.attempts) == ("succeeded", 2), (kind, report.error)
        assert [i.status for i in pipeline.interactions(job_id)][:3] == [int(kind)] * 3


def test_a_long_retry_after_is_honoured_by_the_queue_delay(pipeline: JobsWorld, sandbox: Sandbox) -> None:
    """A 429 asking for 5 s is not slept on: the job is re-enqueued at least 5 s later, then succeeds."""
    sandbox.bc.faults(retry_after_seconds=5)
    sandbox.bc.fail_next(1, "429")
    pipeline.send(get_job(sandbox, "slow429"))
    wait_until(
        lambda: (
            (pipeline.report("slow429") or JobReport(job_id="", state="received")).state == "retry_scheduled"
        ),
        timeout=20,
        what="the retry to be scheduled",
    )
    scheduled = pipeline.report("slow429")
    assert scheduled is not None
    assert scheduled.next_attempt_at is not None
    assert scheduled.updated_at is not None
    assert scheduled.next_attempt_at - scheduled.updated_at >= timedelta(seconds=4.9)
    assert scheduled.error is not None
    assert scheduled.error.code == "bc_throttled"
    final = pipeline.wait_for("slow429", timeout=30)
    assert (final.state, final.attempts) == ("succeeded", 2)


def test_a_dropped_read_is_retried_in_call(pipeline: JobsWorld, sandbox: Sandbox) -> None:
    """A connection dropped on a GET is repeated by the client itself: one attempt."""
    sandbox.bc.fail_next(1, "drop")
    report = run(pipeline, get_job(sandbox, "drop-get"))
    assert (report.state, report.attempts) == ("succeeded", 1)
    assert pipeline.interactions("drop-get")[0].error


def test_an_ambiguous_create_with_a_natural_key_is_reconciled_without_a_duplicate(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """BC commits, the connection drops: the next attempt finds the record by its natural key."""
    sandbox.bc.fail_next(1, "ambiguous_write")
    job = {
        "jobId": "amb-1",
        "operation": "create",
        "entitySet": "customers",
        "data": {"number": "AMB-1", "displayName": "Ambiguous Ltd"},
        "naturalKey": {"number": "AMB-1"},
    }
    report = run(pipeline, job)
    assert (report.state, report.attempts) == ("succeeded", 2)
    assert report.result is not None
    assert report.result.reconciled
    assert len(named(sandbox, "customers", "Ambiguous Ltd")) == 1


def test_a_408_on_a_create_without_natural_key_fails_as_ambiguous_and_is_not_resent(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """BC ran the write and answered 408: without a natural key the job says what to check and stops."""
    sandbox.bc.fail_next(1, "408")
    job = {
        "jobId": "amb-2",
        "operation": "create",
        "entitySet": "customers",
        "data": {"displayName": "Timeout Inc"},
    }
    report = run(pipeline, job)
    assert (report.state, report.attempts) == ("failed", 1)
    assert report.error is not None
    assert report.error.code == "ambiguous_write"
    assert "naturalKey" in report.error.message
    assert report.error.client_request_id
    assert len(named(sandbox, "customers", "Timeout Inc")) == 1


def test_a_dropped_create_with_a_natural_key_is_looked_up_then_created_once(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """A connection dropped before BC applied anything: the lookup finds nothing, the create runs once."""
    sandbox.bc.fail_next(1, "drop")
    job = {
        "jobId": "drop-create",
        "operation": "create",
        "entitySet": "customers",
        "data": {"number": "DRP-1", "displayName": "Dropped Co"},
        "naturalKey": {"number": "DRP-1"},
    }
    report = run(pipeline, job)
    assert (report.state, report.attempts) == ("succeeded", 2)
    assert report.result is not None
    assert not report.result.reconciled
    assert len(named(sandbox, "customers", "Dropped Co")) == 1


def test_a_job_that_keeps_failing_gives_up_after_the_attempt_limit(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """BC_JOB_MAX_ATTEMPTS (4 here) attempts, then failed with the last error."""
    sandbox.bc.faults(retry_after_seconds=0)
    sandbox.bc.fail_next(100, "504")
    report = run(pipeline, get_job(sandbox, "hopeless"), timeout=90)
    assert (report.state, report.attempts) == ("failed", 4)
    assert report.error is not None
    assert report.error.code == "bc_timeout"
    assert report.error.message.startswith("gave up after 4 attempts")


def test_bc_validation_errors_fail_at_once_with_bc_code(pipeline: JobsWorld, sandbox: Sandbox) -> None:
    """A 400 is the job's fault: failed on the first attempt with BC's code and message."""
    report = run(
        pipeline,
        {"jobId": "bad-field", "operation": "create", "entitySet": "customers", "data": {"noSuchField": 1}},
    )
    assert (report.state, report.attempts) == ("failed", 1)
    assert report.error is not None
    assert report.error.code == "bc_validation"
    assert report.error.bc_code
    assert report.error.status == 400
