"""Messages the pipeline cannot run: each becomes a `rejected` row with the reason and a report, never an error."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from bcjobs import JobState
from shared.bc import ThrottledError
from shared.jobs import Handled
from tests.functional.jobs.conftest import Pipeline
from tests.functional.jobs.fakes import wire

CREATE = {
    "jobId": "create-1",
    "operation": "create",
    "entitySet": "customers",
    "data": {"displayName": "Adatum"},
}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"jobId": "j-1", "operation": "get"}', "base64"),
        (b64(b'{"jobId": "j-1", "operation": '), "JSON document"),
        (b64(b"[1, 2, 3]"), "JSON object"),
        (b64(b"\xff\xfe not utf-8"), "UTF-8"),
    ],
    ids=["plain-json", "bad-json", "json-array", "not-utf8"],
)
async def test_an_unreadable_message_is_rejected_under_its_message_id(
    pipeline: Pipeline, text: str, reason: str
) -> None:
    """No job can be read from it: rejected as msg-<message id> with what the message must be, reported once."""
    assert await pipeline.deliver(text, "m1") is Handled.REJECTED
    row = pipeline.row("msg-m1")
    assert row.state is JobState.REJECTED
    assert row.error is not None
    assert row.error.code == "invalid_job"
    assert reason in row.error.message
    assert (row.finished_by, row.attempts) == ("m1", 0)
    assert [(report.job_id, report.state) for report in pipeline.queues.published] == [
        ("msg-m1", JobState.REJECTED)
    ]
    assert pipeline.runner.calls == []


async def test_a_message_with_bad_fields_is_rejected_under_its_job_id(pipeline: Pipeline) -> None:
    """A valid jobId is where the app looks: the rejection and its reasons are recorded there."""
    job = {"jobId": "bad-1", "operation": "delete", "entitySet": "customers", "id": "nope", "colour": "blue"}
    assert await pipeline.deliver(wire(job), "m1") is Handled.REJECTED
    assert pipeline.states() == {"bad-1": JobState.REJECTED}
    error = pipeline.row("bad-1").error
    assert error is not None
    assert "id: a GUID" in error.message
    assert "colour: not a field of the v1 contract" in error.message
    assert pipeline.queues.published[0].job_id == "bad-1"


async def test_a_message_with_an_invalid_job_id_is_rejected_under_its_message_id(pipeline: Pipeline) -> None:
    """A jobId that breaks the contract cannot name a row: the message id does."""
    job: dict[str, Any] = {**CREATE, "jobId": "no spaces allowed"}
    assert await pipeline.deliver(wire(job), "m1") is Handled.REJECTED
    assert pipeline.states() == {"msg-m1": JobState.REJECTED}
    error = pipeline.row("msg-m1").error
    assert error is not None
    assert "jobId" in error.message


async def test_a_redelivered_rejected_message_reports_again_and_changes_nothing(pipeline: Pipeline) -> None:
    """The same message again: its rejection is published again (it may not have been sent), the row kept."""
    job = {"jobId": "bad-1", "operation": "delete", "entitySet": "customers"}
    await pipeline.deliver(wire(job), "m1")
    first = pipeline.row("bad-1")
    assert await pipeline.deliver(wire(job), "m1") is Handled.REJECTED
    assert pipeline.row("bad-1").etag == first.etag
    assert [report.job_id for report in pipeline.queues.published] == ["bad-1", "bad-1"]


async def test_an_invalid_message_naming_a_finished_job_does_not_touch_it(pipeline: Pipeline) -> None:
    """A bad message that claims an existing job's id is rejected under its own message id."""
    await pipeline.deliver(wire(CREATE), "m1")
    done = pipeline.row("create-1")
    broken = {"jobId": "create-1", "operation": "create", "entitySet": "customers"}
    assert await pipeline.deliver(wire(broken), "m2") is Handled.REJECTED
    assert pipeline.states() == {"create-1": JobState.SUCCEEDED, "msg-m2": JobState.REJECTED}
    assert pipeline.row("create-1").etag == done.etag


async def test_a_job_id_reused_for_another_request_is_rejected_under_the_message_id(
    pipeline: Pipeline,
) -> None:
    """A jobId is used once: a different job under it is rejected with a reason naming the jobId, never run."""
    await pipeline.deliver(wire(CREATE), "m1")
    other = {**CREATE, "data": {"displayName": "Someone else"}}
    assert await pipeline.deliver(wire(other), "m2") is Handled.REJECTED
    row = pipeline.row("msg-m2")
    assert row.state is JobState.REJECTED
    assert row.error is not None
    assert "jobId create-1 already belongs to another job" in row.error.message
    assert "new jobId" in row.error.message
    assert pipeline.row("create-1").state is JobState.SUCCEEDED
    assert len(pipeline.runner.calls) == 1
    assert [report.job_id for report in pipeline.queues.published] == ["create-1", "msg-m2"]


async def test_a_job_id_reused_while_the_first_job_is_scheduled_is_rejected(pipeline: Pipeline) -> None:
    """The check does not wait for the first job to finish: its scheduled retry is left alone."""
    pipeline.runner.script(ThrottledError("slow down", status=429, retry_after=1))
    await pipeline.deliver(wire(CREATE), "m1")
    scheduled = pipeline.row("create-1")
    other = {**CREATE, "operation": "upsert", "naturalKey": {"number": "C1"}}
    assert await pipeline.deliver(wire(other), "m2") is Handled.REJECTED
    assert pipeline.row("create-1").etag == scheduled.etag
    assert pipeline.row("msg-m2").state is JobState.REJECTED
