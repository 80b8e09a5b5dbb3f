"""At-least-once delivery made exactly-once in effect, bad input recorded at once, poison recorded."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcjobs import POISON_QUEUE, RESULTS_QUEUE, JobState
from localworld.polling import wait_until
from sandbox import Sandbox
from tests.integration.jobs.conftest import JobsWorld, wire


def named(sandbox: Sandbox, name: str) -> list[dict[str, Any]]:
    return [row for row in sandbox.bc.records("customers") if row.get("displayName") == name]


def create(job_id: str, name: str) -> dict[str, Any]:
    return {"jobId": job_id, "operation": "create", "entitySet": "customers", "data": {"displayName": name}}


def test_a_redelivered_finished_job_makes_no_bc_call(pipeline: JobsWorld, sandbox: Sandbox) -> None:
    """The same job sent three times: one record, one result, the copies finish without touching BC."""
    job = create("dup-1", "Once Only")
    pipeline.send(job)
    pipeline.wait_for("dup-1")
    requests = sandbox.bc.stats().count()
    pipeline.send(job)
    pipeline.send(job)
    wait_until(lambda: pipeline.queue_length("bc-jobs") == 0, timeout=20, what="the copies to be taken")
    wait_until(lambda: not pipeline.in_flight(), timeout=20, what="the copies to finish")
    assert sandbox.bc.stats().count() == requests
    assert len(named(sandbox, "Once Only")) == 1
    assert [r.job_id for r in pipeline.results(1)] == ["dup-1"]


def test_two_deliveries_of_one_job_at_the_same_time_make_one_bc_effect(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """Both copies arrive together (BC slowed down so they overlap): one claims, the other leaves it alone."""
    sandbox.bc.latency(300)
    job = create("dup-2", "Concurrent Co")
    for _ in range(4):
        pipeline.send(job)
    pipeline.wait_for("dup-2")
    wait_until(lambda: pipeline.queue_length("bc-jobs") == 0, timeout=20, what="the copies to be taken")
    wait_until(lambda: not pipeline.in_flight(), timeout=20, what="the copies to finish")
    assert len(named(sandbox, "Concurrent Co")) == 1
    report = pipeline.report("dup-2")
    assert report is not None
    assert (report.state, report.attempts) == ("succeeded", 1)


def test_a_job_id_used_for_a_different_job_is_rejected_under_the_message(pipeline: JobsWorld) -> None:
    """An id is used once: a different request under a known id gets its own rejected row with the reason."""
    pipeline.send(create("reused", "First"))
    pipeline.wait_for("reused")
    message_id = pipeline.send(create("reused", "Second"))
    rejected = pipeline.wait_for(f"msg-{message_id}")
    assert rejected.state == "rejected"
    assert rejected.error is not None
    assert "jobId reused already belongs to another job" in rejected.error.message


def test_malformed_messages_are_rejected_at_once_with_their_reason(pipeline: JobsWorld) -> None:
    """Not base64, not JSON, wrong fields, unknown version: rejected rows, result messages, nothing in poison."""
    sent = {
        pipeline.send(None, raw='{"operation": "list"}'): "base64",
        pipeline.send(None, raw=base64.b64encode(b"not json").decode()): "a JSON document",
        pipeline.send({"operation": "get", "entitySet": "customers"}): "`get` needs `id`",
        pipeline.send(
            {"schemaVersion": 7, "operation": "list", "entitySet": "x"}
        ): "version 7 is not supported",
    }
    pipeline.send({"jobId": "named-bad", "operation": "list", "entitySet": "a b"})
    for message_id, reason in sent.items():
        report = pipeline.wait_for(f"msg-{message_id}")
        assert (report.state, report.attempts) == ("rejected", 0)
        assert report.error is not None
        assert reason in report.error.message
    assert pipeline.wait_for("named-bad").state == "rejected"
    assert len(pipeline.results(5)) == 5
    assert pipeline.queue_length(POISON_QUEUE) == 0


# Raw (not base64) texts keep to characters XML can carry: Put Message takes only text "that can be included
# in an XML request with UTF-8 encoding" (learn.microsoft.com/rest/api/storageservices/put-message)
# (Azurite stores them, then cannot list the queue), so no app can put them on the queue.
xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")), max_size=100)
messages = st.one_of(
    st.text(max_size=200).map(lambda text: base64.b64encode(text.encode()).decode()),
    xml_text,
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=10,
    ).map(lambda value: wire(value)),
    st.fixed_dictionaries(
        {"operation": st.sampled_from(["get", "update", "delete", "action", "batch", "upsert"])},
        optional={
            "entitySet": st.text(max_size=20),
            "id": st.text(max_size=40),
            "jobId": st.text(max_size=20),
            "query": st.dictionaries(st.text(max_size=6), st.text(max_size=10), max_size=2),
            "data": st.just({"displayName": "x' or 1 eq 1"}),
        },
    ).map(lambda value: wire(value)),
)


@pytest.fixture
def malformed() -> list[str]:
    """1,000 hypothesis-made message texts that break the contract (made before devhost starts: its poller uses
    the `random` module, which hypothesis refuses to share)."""
    bodies: list[str] = []

    @settings(max_examples=1000, database=None, suppress_health_check=list(HealthCheck), deadline=None)
    @given(messages)
    def collect(text: str) -> None:
        if not _valid(text):
            bodies.append(text)

    collect()
    return bodies


def test_a_thousand_generated_malformed_messages_are_all_rejected_none_retried(
    malformed: list[str], pipeline: JobsWorld
) -> None:
    """~1,000 generated messages that break the contract: each a rejected row, no retry, poison empty."""
    assert len(malformed) >= 900
    for text in malformed:
        pipeline.send(None, raw=text)
    wait_until(
        lambda: len(pipeline.rows()) >= len(malformed), timeout=120, what="every message to be recorded"
    )
    rows = pipeline.rows()
    assert {row["State"] for row in rows} == {JobState.REJECTED.value}
    assert all(json.loads(row["Error"])["message"] for row in rows)
    assert {row.get("Attempts") for row in rows} == {0}
    assert pipeline.queue_length(POISON_QUEUE) == 0
    assert pipeline.queue_length(RESULTS_QUEUE) == len(malformed)


def _valid(text: str) -> bool:
    from bcjobs import InvalidJobError, decode

    try:
        decode(text)
    except InvalidJobError:
        return False
    return True


def test_a_poison_message_is_recorded_as_dead_lettered(pipeline: JobsWorld) -> None:
    """What the host moves to bc-jobs-poison ends as a dead_lettered row, keyed by the job id it names."""
    with pipeline.queue(POISON_QUEUE) as poison:
        poison.send_message(wire(create("poisoned", "Never")))
        unreadable = str(poison.send_message("%%%").id)
    assert pipeline.wait_for("poisoned").state == "dead_lettered"
    report = pipeline.wait_for(f"msg-{unreadable}")
    assert report.state == "dead_lettered"
    assert report.error is not None
    assert "gave up on this message" in report.error.message
