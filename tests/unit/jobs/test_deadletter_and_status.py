"""Pure helpers of the poison handler and the status route: which job a message names, which ids are valid."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from bcjobs import decode
from shared.jobs.deadletter import named_job_id
from shared.jobs.front_door import valid_job_id

LIST = {"jobId": "job-1", "operation": "list", "entitySet": "customers"}


def wire(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode("utf-8")).decode("ascii")


def test_a_readable_message_names_its_job_id() -> None:
    """base64 JSON with a valid jobId: the poison row goes where the job's row is."""
    assert named_job_id(wire(LIST)) == "job-1"


def test_a_message_names_its_job_id_even_if_the_rest_breaks_the_contract() -> None:
    """Only the jobId matters here: a job the trigger rejected for its fields is still found under it."""
    assert named_job_id(wire({"jobId": "job-2", "operation": "teleport"})) == "job-2"


@pytest.mark.parametrize("padding", ["\n", "  ", "\r\n"], ids=["newline", "spaces", "crlf"])
def test_the_poison_handler_reads_the_same_job_id_as_the_trigger(padding: str) -> None:
    """Whitespace around the base64 text (e.g. a CLI's trailing newline) does not move the poison row elsewhere."""
    text = f"{padding}{wire(LIST)}{padding}"
    assert decode(text).job_id == "job-1"
    assert named_job_id(text) == "job-1"


@pytest.mark.parametrize(
    "text",
    [
        "not base64 at all!",
        base64.b64encode(b"{broken json").decode("ascii"),
        wire([LIST]),
        wire({"operation": "list"}),
        wire({**LIST, "jobId": "has spaces"}),
        wire({**LIST, "jobId": 42}),
        base64.b64encode(b"\xff\xfe").decode("ascii"),
        base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode("ascii"),
    ],
    ids=[
        "not-base64",
        "bad-json",
        "array",
        "no-job-id",
        "invalid-job-id",
        "numeric-job-id",
        "not-utf8",
        "deep",
    ],
)
def test_a_message_without_a_readable_valid_job_id_names_none(text: str) -> None:
    """Anything else is recorded under the message id instead (never an exception in the poison handler)."""
    assert named_job_id(text) is None


@pytest.mark.parametrize(
    ("job_id", "valid"),
    [
        ("create-1", True),
        ("crm:order.42_x", True),
        ("a" * 100, True),
        ("a" * 101, False),
        ("", False),
        ("has space", False),
        ("slash/path", False),
        ("quote'", False),
    ],
)
def test_only_contract_job_ids_are_valid(job_id: str, valid: bool) -> None:
    """The status route answers only for ids the contract allows (letters, digits, . _ : -, up to 100)."""
    assert valid_job_id(job_id) is valid


def test_the_dead_letter_text_names_host_json_max_dequeue_count() -> None:
    """The poison copy's own dequeue count says nothing; the host's limit is what the message was tried."""
    import json
    from pathlib import Path

    from shared.jobs.deadletter import HOST_MAX_DEQUEUE_COUNT

    host = json.loads((Path(__file__).resolve().parents[3] / "host.json").read_text(encoding="utf-8"))
    assert host["extensions"]["queues"]["maxDequeueCount"] == HOST_MAX_DEQUEUE_COUNT
