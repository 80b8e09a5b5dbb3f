"""The sync client against Azurite: what it sends is what the trigger decodes; it reads the product's rows; results
are handed out exactly once across consumers and deleted only after the caller is done."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bcjobs import JOBS_QUEUE, RESULTS_QUEUE, ErrorInfo, InvalidJobError, Job, JobReport, JobState, decode
from bcjobs.client import JobsClient
from bcjobs.errors import JobsStorageError, WaitTimeoutError
from bcjobs.rows import AuditedInteraction
from localworld.ports import free_port
from tests.integration.client.conftest import Storage

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples" / "jobs").glob("*.json"))
GUID = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"


@pytest.fixture
def client(storage: Storage) -> Iterator[JobsClient]:
    with JobsClient.from_connection_string(storage.connection_string, table_prefix=storage.prefix) as built:
        yield built


def test_every_example_job_is_sent_as_text_the_trigger_decodes_to_the_same_job(
    client: JobsClient, storage: Storage
) -> None:
    """enqueue → the message text, base64 and all, decodes with bcjobs.wire.decode to the job sent."""
    sent = {}
    for path in EXAMPLES:
        job = Job.model_validate(json.loads(path.read_text(encoding="utf-8")))
        handle = client.enqueue(job)
        sent[handle.job_id] = job.with_job_id(handle.job_id)
        assert handle.message_id
    decoded = [decode(text) for text in storage.drain(JOBS_QUEUE)]
    assert {job.job_id: job for job in decoded} == sent


def test_a_job_without_an_id_is_sent_with_the_id_its_handle_holds(
    client: JobsClient, storage: Storage
) -> None:
    """The client assigns the id before sending (the trigger would otherwise derive one from the message id)."""
    handle = client.enqueue({"operation": "get", "entitySet": "customers", "id": GUID})
    [text] = storage.drain(JOBS_QUEUE)
    assert decode(text).job_id == handle.job_id
    assert handle.status_path == f"/api/jobs/{handle.job_id}"


def test_invalid_and_oversized_jobs_are_refused_before_anything_is_sent(
    client: JobsClient, storage: Storage
) -> None:
    """The trigger's own validation runs in the client: nothing reaches the queue."""
    with pytest.raises(InvalidJobError) as caught:
        client.enqueue({"operation": "update", "entitySet": "items", "id": GUID})
    assert "data" in str(caught.value)
    with pytest.raises(InvalidJobError, match="bytes"):
        client.enqueue(
            {"operation": "create", "entitySet": "items", "data": {f"f{i}": "x" * 4000 for i in range(20)}}
        )
    assert storage.count(JOBS_QUEUE) == 0


def test_enqueue_many_sends_the_good_jobs_concurrently_and_reports_each_bad_one(
    client: JobsClient, storage: Storage
) -> None:
    """50 jobs, 3 bad: 47 sent, the 3 failures at their input positions; progress sees all 50."""
    jobs: list[object] = [
        {"jobId": f"many-{i}", "operation": "list", "entitySet": "customers"} for i in range(50)
    ]
    for index in (4, 20, 49):
        jobs[index] = {"jobId": f"many-{index}", "operation": "list"}
    seen: list[int] = []
    result = client.enqueue_many(jobs, max_concurrency=6, on_progress=lambda i, _: seen.append(i))  # type: ignore[arg-type]
    assert sorted(seen) == list(range(50))
    assert [failure.index for failure in result.failures] == [4, 20, 49]
    assert [failure.job_id for failure in result.failures] == ["many-4", "many-20", "many-49"]
    assert len(result.handles) == 47
    assert not result.ok
    ids = sorted(decode(text).job_id or "" for text in storage.drain(JOBS_QUEUE))
    assert ids == sorted(f"many-{i}" for i in range(50) if i not in (4, 20, 49))


def test_get_reads_the_product_row_and_its_interactions(client: JobsClient, storage: Storage) -> None:
    """State, attempts, BC's error code and the audit log in request order; an unknown job is None."""
    error = ErrorInfo(
        code="bc_validation",
        message="Customer No. must have a value",
        bc_code="Internal_Validation",
        status=400,
    )
    storage.put_job("g-1", JobState.FAILED, attempts=2, error=error)
    storage.put_interactions(
        "g-1",
        [
            AuditedInteraction(
                attempt=2,
                sequence=1,
                method="POST",
                path="/companies(x)/customers",
                status=400,
                bc_error_code="Internal_Validation",
            ),
            AuditedInteraction(
                attempt=1, sequence=1, method="POST", path="/companies(x)/customers", status=503
            ),
        ],
    )
    details = client.get("g-1", interactions=True)
    assert details is not None
    assert (details.state, details.attempts, details.correlation_id) == (JobState.FAILED, 2, "corr-g-1")
    assert details.error == error
    assert [(i.attempt, i.status) for i in details.interactions or []] == [(1, 503), (2, 400)]
    plain = client.get("g-1")
    assert plain is not None
    assert plain.interactions is None
    assert client.get("nobody") is None
    assert client.get("no/such id") is None


def test_get_reads_interactions_from_the_jobs_partition_and_from_the_earlier_audit_table(
    client: JobsClient, storage: Storage
) -> None:
    """A job run partly by an earlier version: its first run's rows are in `jobaudit`, the next in the jobs
    table beside its row; the client reads both in order, and a list still returns job rows only."""
    storage.put_job("g-2", JobState.SUCCEEDED, attempts=2)
    first = AuditedInteraction(
        attempt=1, sequence=1, method="GET", path="/companies(x)/customers", status=503
    )
    second = AuditedInteraction(
        attempt=2, sequence=1, method="GET", path="/companies(x)/customers", status=200
    )
    storage.put_interactions("g-2", [first], earlier_version=True)
    storage.put_interactions("g-2", [second])
    details = client.get("g-2", interactions=True)
    assert details is not None
    assert [(i.attempt, i.status) for i in details.interactions or []] == [(1, 503), (2, 200)]
    assert [report.job_id for report in client.list()] == ["g-2"]


def test_list_filters_by_state_and_since_and_pages_with_continuation_tokens(
    client: JobsClient, storage: Storage
) -> None:
    """Pages of 2 walk all 5 rows; state and since filter on the table side."""
    now = datetime.now(UTC)
    for i in range(5):
        state = JobState.SUCCEEDED if i % 2 else JobState.RETRY_SCHEDULED
        storage.put_job(f"l-{i}", state, updated_at=now - timedelta(hours=i))
    first = client.list_page(page_size=2)
    assert len(first.jobs) == 2
    assert first.continuation_token
    second = client.list_page(page_size=2, continuation_token=first.continuation_token)
    assert {j.job_id for j in first.jobs}.isdisjoint(j.job_id for j in second.jobs)
    assert [r.job_id for r in client.list(page_size=2)] == [f"l-{i}" for i in range(5)]
    assert [r.job_id for r in client.list(JobState.SUCCEEDED)] == ["l-1", "l-3"]
    assert [r.job_id for r in client.list(since=now - timedelta(minutes=90))] == ["l-0", "l-1"]
    assert [r.job_id for r in client.list(limit=3)] == ["l-0", "l-1", "l-2"]


def test_list_of_a_deployment_without_jobs_is_empty(storage: Storage) -> None:
    """A missing jobs table is no error: nothing has been processed yet."""
    with JobsClient.from_connection_string(storage.connection_string, table_prefix="tnothinghere") as empty:
        assert list(empty.list()) == []
        assert empty.get("x") is None


def test_wait_returns_the_terminal_report_once_the_row_gets_there(
    client: JobsClient, storage: Storage
) -> None:
    """wait polls until the state is terminal: here the row turns succeeded after the second poll."""
    storage.put_job("w-1", JobState.RUNNING)
    polls: list[JobState | None] = []

    def on_poll(report: JobReport | None) -> None:
        polls.append(report.state if report else None)
        if len(polls) == 2:
            storage.put_job("w-1", JobState.SUCCEEDED)

    report = client.wait("w-1", timeout=30, poll=0.05, on_poll=on_poll)
    assert report.state is JobState.SUCCEEDED
    assert polls == [JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED]


def test_wait_gives_up_at_its_deadline_with_the_last_state_seen(client: JobsClient, storage: Storage) -> None:
    """A job that stays running ends in WaitTimeoutError carrying the last report."""
    storage.put_job("w-2", JobState.RETRY_SCHEDULED)
    with pytest.raises(WaitTimeoutError) as caught:
        client.wait("w-2", timeout=0.3, poll=0.05)
    assert caught.value.last is not None
    assert caught.value.last.state is JobState.RETRY_SCHEDULED


def test_two_consumers_hand_out_every_result_exactly_once(storage: Storage) -> None:
    """60 reports, two clients iterating at once: each report is handed out once and the queue ends empty."""
    for i in range(60):
        storage.publish(JobReport(job_id=f"r-{i}", state=JobState.SUCCEEDED, attempts=1))
    taken: list[str] = []
    lock = threading.Lock()

    def consume() -> None:
        with (
            JobsClient.from_connection_string(storage.connection_string) as jobs,
            jobs.results(batch_size=4) as stream,
        ):
            for item in stream:
                with lock:
                    taken.append(item.report.job_id)

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert Counter(taken) == Counter(f"r-{i}" for i in range(60))
    assert storage.count(RESULTS_QUEUE) == 0


def test_a_result_whose_handler_raised_is_handed_out_again(client: JobsClient, storage: Storage) -> None:
    """`with item:` deletes on success only; a failing handler leaves the report for the next consumer."""
    storage.publish(JobReport(job_id="again", state=JobState.FAILED))
    with client.results() as stream:
        item = next(stream)
        with pytest.raises(RuntimeError), item:
            raise RuntimeError("the app's handler failed")
    with client.results() as stream:
        again = next(stream)
        assert (again.report.job_id, again.dequeue_count) == ("again", 2)
        with again as report:
            assert report.state is JobState.FAILED
    assert storage.count(RESULTS_QUEUE) == 0


def test_a_stream_left_early_deletes_only_what_it_handed_out(client: JobsClient, storage: Storage) -> None:
    """Breaking out after one result deletes that one; the others received with it are visible again at once."""
    for i in range(5):
        storage.publish(JobReport(job_id=f"e-{i}", state=JobState.SUCCEEDED))
    with client.results(batch_size=5) as stream:
        first = next(stream).report.job_id
    rest = sorted(item.report.job_id for item in client.results())
    assert sorted([first, *rest]) == [f"e-{i}" for i in range(5)]
    assert storage.count(RESULTS_QUEUE) == 0


def test_messages_that_are_not_reports_are_skipped_and_left_alone(
    client: JobsClient, storage: Storage
) -> None:
    """Something else on bc-results is not deleted; the reports around it are handed out."""
    storage.publish(JobReport(job_id="ok-1", state=JobState.SUCCEEDED))
    with storage.queue(RESULTS_QUEUE) as queue:
        queue.send_message("not a report")
    stream = client.results(visibility_timeout=1)
    assert [item.report.job_id for item in stream] == ["ok-1"]
    assert stream.skipped == 1


def test_unreachable_storage_is_a_jobs_storage_error(storage: Storage) -> None:
    """A dead endpoint surfaces as JobsStorageError (no URL, no key in the message)."""
    dead = re.sub(
        r"QueueEndpoint=http://127\.0\.0\.1:\d+",
        f"QueueEndpoint=http://127.0.0.1:{free_port('127.0.0.1')}",
        storage.connection_string,
    )
    broken = JobsClient.from_connection_string(dead, retry_total=0, connection_timeout=2)
    with broken, pytest.raises(JobsStorageError) as caught:
        broken.enqueue({"operation": "list", "entitySet": "items"})
    assert caught.value.status is None
    assert "AccountKey" not in str(caught.value)
    assert "http" not in str(caught.value)
