"""Preparing jobs to send: the trigger's own validation, an id for every job, every bad one reported."""

from __future__ import annotations

import uuid

import pytest

from bcjobs import MAX_JOB_BYTES, InvalidJobError, Job, decode
from bcjobs.submit import PreparedJob, prepare, prepare_all

GUID = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
GET = {"operation": "get", "entitySet": "customers", "id": GUID}


def test_a_job_without_an_id_gets_a_uuid4_and_the_text_decodes_to_it() -> None:
    """The client assigns the id before sending, so the handle and the trigger agree on it."""
    prepared = prepare(GET)
    assert uuid.UUID(prepared.job_id).version == 4
    assert decode(prepared.text) == prepared.job
    assert prepared.job.job_id == prepared.job_id


def test_a_given_job_id_is_kept_and_a_model_is_accepted_as_well_as_a_dict() -> None:
    """jobId is the idempotency key: the client never replaces it."""
    from_dict = prepare({**GET, "jobId": "crm-42"})
    from_model = prepare(Job.model_validate({**GET, "jobId": "crm-42"}))
    assert from_dict.job_id == from_model.job_id == "crm-42"
    assert from_dict.text == from_model.text


def test_an_invalid_job_is_refused_with_the_field_named() -> None:
    """The same precise problems as the trigger's decode."""
    with pytest.raises(InvalidJobError) as caught:
        prepare({"jobId": "x-1", "operation": "get", "entitySet": "customers", "id": "not-a-guid"})
    assert [problem.path for problem in caught.value.problems] == ["id"]
    assert caught.value.job_id == "x-1"


def test_an_oversized_job_is_refused_before_sending() -> None:
    """More than MAX_JOB_BYTES of JSON never reaches the queue."""
    big = {"operation": "create", "entitySet": "items", "data": {f"f{i}": "x" * 4000 for i in range(20)}}
    with pytest.raises(InvalidJobError) as caught:
        prepare(big)
    assert str(MAX_JOB_BYTES) in str(caught.value)


def test_prepare_all_keeps_going_and_reports_each_bad_job_by_index() -> None:
    """Good jobs keep their positions; each bad one has its index, claimed id and problems."""
    values: list[object] = [GET, {"jobId": "bad-1", "operation": "get"}, "text", GET, None]
    good, bad = prepare_all(values)
    assert [index for index, _ in good] == [0, 3]
    assert all(isinstance(prepared, PreparedJob) for _, prepared in good)
    assert [(r.index, r.job_id) for r in bad] == [(1, "bad-1"), (2, None), (4, None)]
    assert bad[1].problems[0].expected == "a JSON object (got a JSON string)"
    assert bad[0].to_dict() == {
        "index": 1,
        "jobId": "bad-1",
        "problems": [{"path": "", "expected": "`get` needs `entitySet`"}],
    }
