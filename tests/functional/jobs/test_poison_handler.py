"""PoisonHandler: a poison delivery rides out storage failures; on the host's last delivery (bc-jobs-poison has no
poison queue) the job is named in `jobs.dead_letter_failed` and its message re-driven, so it still ends dead_lettered."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from bcjobs import JobState
from shared.jobs import Delivery, JobStoreError
from shared.jobs.deadletter import HOST_MAX_DEQUEUE_COUNT, PoisonHandler, PoisonRetry
from shared.settings import JobSettings
from tests.fakes.jobs import MemoryPoisonRedrive, Redriven
from tests.functional.jobs.conftest import Pipeline
from tests.functional.jobs.fakes import wire

CREATE = {
    "jobId": "create-1",
    "operation": "create",
    "entitySet": "customers",
    "data": {"displayName": "Adatum"},
}
RETRY = PoisonRetry(
    tries=4, base_seconds=1.0, cap_seconds=4.0, budget_seconds=30.0, redrive_delay_seconds=900.0
)
LAST = HOST_MAX_DEQUEUE_COUNT


def handler(pipeline: Pipeline, redrive: MemoryPoisonRedrive, retry: PoisonRetry = RETRY) -> PoisonHandler:
    return PoisonHandler(pipeline.dead_letters().record, redrive.open, retry, pipeline.clock)


def expires_in(pipeline: Pipeline, seconds: float) -> datetime:
    return pipeline.clock.now() + timedelta(seconds=seconds)


def failures_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "jobs.dead_letter_failed"]


async def test_a_storage_blip_within_one_delivery_is_ridden_out(pipeline: Pipeline) -> None:
    """Two failed reads, then the job is dead-lettered in the same delivery, after two backoff waits."""
    pipeline.store.fail("get", times=2)
    redrive = MemoryPoisonRedrive()
    state = await handler(pipeline, redrive).handle(
        Delivery("p1", wire(CREATE), 1), expires_in(pipeline, 3600)
    )
    assert state is JobState.DEAD_LETTERED
    assert pipeline.row("create-1").state is JobState.DEAD_LETTERED
    assert len(pipeline.clock.slept) == 2
    assert redrive.opened == 0


async def test_a_delivery_before_the_last_raises_after_its_tries_for_the_host_to_deliver_again(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """Storage down for a whole delivery the host will repeat: it raises, nothing is re-driven or reported."""
    pipeline.store.outage = True
    redrive = MemoryPoisonRedrive()
    with pytest.raises(JobStoreError):
        await handler(pipeline, redrive).handle(
            Delivery("p1", wire(CREATE), LAST - 1), expires_in(pipeline, 3600)
        )
    assert len(pipeline.clock.slept) == RETRY.tries - 1
    assert (redrive.opened, failures_logged(caplog)) == (0, [])


async def test_the_last_delivery_names_the_job_and_redrives_it_so_it_still_ends_dead_lettered(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """Storage down on the last delivery: an error names the job, a copy comes back later and dead-letters it."""
    pipeline.store.outage = True
    redrive = MemoryPoisonRedrive()
    text = wire(CREATE)
    expires = expires_in(pipeline, 7 * 24 * 3600)
    assert await handler(pipeline, redrive).handle(Delivery("p1", text, LAST), expires) is None
    [copy] = redrive.sent
    assert copy == Redriven(text, 900, int((expires - pipeline.clock.now()).total_seconds()))
    [failed] = failures_logged(caplog)
    assert failed.levelno == logging.ERROR
    assert (getattr(failed, "job_id", None), getattr(failed, "redriven", None)) == ("create-1", True)
    assert "create-1" in failed.getMessage()
    pipeline.store.outage = False
    state = await handler(pipeline, redrive).handle(Delivery("p2", copy.text, 1), expires)
    assert state is JobState.DEAD_LETTERED
    assert pipeline.row("create-1").state is JobState.DEAD_LETTERED


async def test_when_the_redrive_fails_too_the_last_delivery_raises_and_still_names_the_job(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """Storage down for tables and queues: the host keeps the message (the invocation fails), the error names the job."""
    pipeline.store.outage = True
    redrive = MemoryPoisonRedrive(fail=True)
    with pytest.raises(JobStoreError):
        await handler(pipeline, redrive).handle(
            Delivery("p1", wire(CREATE), LAST), expires_in(pipeline, 3600)
        )
    [failed] = failures_logged(caplog)
    assert (getattr(failed, "job_id", None), getattr(failed, "redriven", None)) == ("create-1", False)


async def test_a_message_expiring_before_its_copy_would_show_is_not_redriven(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """A copy that would expire before it is visible is not sent; the job is still named."""
    pipeline.store.outage = True
    redrive = MemoryPoisonRedrive()
    with pytest.raises(JobStoreError):
        await handler(pipeline, redrive).handle(Delivery("p1", wire(CREATE), LAST), expires_in(pipeline, 600))
    assert redrive.opened == 0
    assert [getattr(r, "redriven", None) for r in failures_logged(caplog)] == [False]


async def test_an_unexpected_error_on_the_last_delivery_is_reported_and_redriven_without_retries(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a storage error (a bug): no retry within the delivery, but the job is named and its message kept alive."""

    async def broken(delivery: Delivery) -> JobState:
        raise RuntimeError("a bug")

    redrive = MemoryPoisonRedrive()
    handled = PoisonHandler(broken, redrive.open, RETRY, pipeline.clock)
    assert await handled.handle(Delivery("p1", "%%% not base64", LAST), None) is None
    assert pipeline.clock.slept == []
    assert [(c.text, c.ttl_seconds) for c in redrive.sent] == [("%%% not base64", 7 * 24 * 3600)]
    [failed] = failures_logged(caplog)
    assert (getattr(failed, "job_id", None), getattr(failed, "error_type", None)) == (
        "msg-p1",
        "RuntimeError",
    )


async def test_the_tries_of_one_delivery_stay_far_below_function_timeout(pipeline: Pipeline) -> None:
    """With the production settings, one delivery waits at most its budget (3 min) before giving up."""
    retry = PoisonRetry.from_settings(JobSettings())
    pipeline.store.outage = True
    with pytest.raises(JobStoreError):
        await handler(pipeline, MemoryPoisonRedrive(), retry).handle(Delivery("p1", wire(CREATE), 1), None)
    assert 0 < sum(pipeline.clock.slept) <= retry.budget_seconds <= 180
    assert retry.redrive_delay_seconds == 900
