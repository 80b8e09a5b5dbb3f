"""JobRecord: claims, takeovers, moves, the Table row round trip, and data-free summaries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bcjobs import ErrorInfo, ItemOutcome, Job, JobState, ResultSummary
from bcjobs.rows import JOB_ROW, REPORT_COLUMNS, AuditedInteraction, audit_column, report_from_row
from shared.jobs.records import JobRecord, from_row, request_hash, summary_of, to_row

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
LEASE = timedelta(minutes=11)
GUID = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
SECRET = "Contoso-Secret-Value"


def job(**fields: Any) -> Job:
    return Job.model_validate(fields)


CREATE = job(
    jobId="create-1",
    operation="create",
    entitySet="customers",
    data={"displayName": SECRET},
    correlationId="crm-1",
)
GET = job(jobId="get-1", operation="get", entitySet="customers", id=GUID)


def record_of(source: Job) -> JobRecord:
    return JobRecord.new(source, str(source.job_id), NOW, NOW + timedelta(hours=24), "default")


def test_a_new_record_is_received_with_a_data_free_summary_and_the_request_hash() -> None:
    """A job seen for the first time: state received, no runs, its summary, correlation id and hash."""
    record = record_of(CREATE)
    assert record.state is JobState.RECEIVED
    assert (record.runs, record.attempts) == (0, 0)
    assert record.operation == "create customers"
    assert record.correlation_id == "crm-1"
    assert record.request_hash == request_hash(CREATE)
    assert record.ambiguous is False


def test_a_claim_runs_the_job_under_a_lease_and_counts_the_run_not_an_attempt() -> None:
    """claimed(): running, runs + 1, the holder's lease until now + lease; attempts unchanged."""
    claimed = record_of(CREATE).claimed("host:1:m1", NOW, LEASE)
    assert claimed.state is JobState.RUNNING
    assert (claimed.runs, claimed.attempts) == (1, 0)
    assert (claimed.lease_holder, claimed.lease_until) == ("host:1:m1", NOW + LEASE)
    assert claimed.updated_at == NOW
    assert claimed.leased_at(NOW + LEASE - timedelta(seconds=1))
    assert not claimed.leased_at(NOW + LEASE)


def test_taking_over_a_running_write_job_marks_it_ambiguous() -> None:
    """A run that never recorded its end may have written: the next run must reconcile."""
    crashed = record_of(CREATE).claimed("host:1:m1", NOW, LEASE)
    taken = crashed.claimed("host:2:m1", NOW + LEASE, LEASE)
    assert taken.ambiguous is True
    assert taken.runs == 2
    assert taken.lease_holder == "host:2:m1"


def test_taking_over_a_running_read_job_does_not_mark_it_ambiguous() -> None:
    """Reading again is harmless: a get or list job is simply run again."""
    crashed = record_of(GET).claimed("host:1:m1", NOW, LEASE)
    assert crashed.claimed("host:2:m1", NOW + LEASE, LEASE).ambiguous is False
    listing = record_of(job(jobId="list-1", operation="list", entitySet="customers"))
    assert listing.claimed("a", NOW, LEASE).claimed("b", NOW + LEASE, LEASE).ambiguous is False


def test_claiming_a_scheduled_write_job_is_not_a_takeover() -> None:
    """A retry that was recorded (retry_scheduled) ended properly: its successor is not ambiguous."""
    scheduled = record_of(CREATE).claimed("a", NOW, LEASE).moved(JobState.RETRY_SCHEDULED, NOW, attempts=1)
    assert scheduled.claimed("b", NOW, LEASE).ambiguous is False


def test_an_ambiguous_record_stays_ambiguous_on_later_claims() -> None:
    """Once a write may have happened, every later run reconciles."""
    ambiguous = replace(record_of(CREATE), ambiguous=True, state=JobState.RETRY_SCHEDULED)
    assert ambiguous.claimed("b", NOW, LEASE).ambiguous is True


@pytest.mark.parametrize(
    "state",
    [JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED, JobState.REJECTED, JobState.DEAD_LETTERED],
)
def test_moving_to_a_terminal_state_sets_the_finish_time_and_releases_the_lease(state: JobState) -> None:
    """Terminal: finished_at = now, no lease holder, the changes applied."""
    later = NOW + timedelta(seconds=30)
    running = record_of(CREATE).claimed("a", NOW, LEASE)
    finished = running.moved(state, later, attempts=1, finished_by="m1")
    assert finished.state is state
    assert finished.finished_at == later
    assert finished.updated_at == later
    assert (finished.lease_holder, finished.lease_until) == (None, None)
    assert (finished.attempts, finished.finished_by) == (1, "m1")


def test_moving_to_a_waiting_state_releases_the_lease_without_finishing() -> None:
    """retry_scheduled / waiting_for_authorization: lease released, no finish time."""
    running = record_of(CREATE).claimed("a", NOW, LEASE)
    for state in (JobState.RETRY_SCHEDULED, JobState.WAITING_FOR_AUTHORIZATION):
        moved = running.moved(state, NOW, next_attempt_at=NOW + timedelta(minutes=1))
        assert moved.finished_at is None
        assert moved.lease_holder is None
        assert not moved.leased_at(NOW)


def test_a_full_record_survives_the_table_row_round_trip() -> None:
    """to_row → from_row gives the same record (and the ETag it was read with)."""
    record = replace(
        record_of(CREATE).claimed("host:1:m1", NOW, LEASE),
        attempts=2,
        ambiguous=True,
        next_attempt_at=NOW + timedelta(minutes=3),
        finished_at=NOW + timedelta(minutes=4),
        finished_by="m1",
        result=ResultSummary(count=2, items=[ItemOutcome(index=0, status=201, id=GUID)]),
        error=ErrorInfo(code="bc_validation", message="bad", bc_code="BadRequest", status=400),
        audit=audit_column(None, [AuditedInteraction(attempt=1, sequence=1, method="GET", path="/c")]),
    )
    row = to_row(record)
    assert (row["PartitionKey"], row["RowKey"]) == ("create-1", JOB_ROW)
    back = from_row(row, 'W/"7"')
    assert back == record
    assert back.etag == 'W/"7"'


def test_a_row_leaves_out_unset_columns() -> None:
    """None values are not written (Table Storage has no null)."""
    row = to_row(record_of(job(operation="list", entitySet="customers", jobId="x")))
    assert all(value is not None for value in row.values())
    assert "Result" not in row
    assert "LeaseHolder" not in row
    assert from_row(row, "e") == record_of(job(operation="list", entitySet="customers", jobId="x"))


def test_a_listing_selects_every_column_the_report_reads_and_not_the_audit() -> None:
    """bcjobs' list reads REPORT_COLUMNS only: the report from them is the report from the whole row."""
    finished = replace(
        record_of(CREATE).claimed("a", NOW, LEASE).moved(JobState.FAILED, NOW, attempts=1),
        next_attempt_at=NOW,
        result=ResultSummary(count=1),
        error=ErrorInfo(code="bc_validation", message="bad"),
        audit=audit_column(None, [AuditedInteraction(attempt=1, sequence=1, method="GET", path="/c")]),
    )
    row = to_row(finished)
    selected = {key: value for key, value in row.items() if key in REPORT_COLUMNS}
    assert report_from_row(selected) == report_from_row(row)
    assert set(row) - set(REPORT_COLUMNS) >= {"Audit", "RequestHash", "Runs"}


def test_the_report_is_what_the_row_says() -> None:
    """report(): the app's view of the row (state, attempts, times, correlation id)."""
    finished = record_of(CREATE).claimed("a", NOW, LEASE).moved(JobState.SUCCEEDED, NOW, attempts=1)
    report = finished.report()
    assert (report.job_id, report.state, report.attempts) == ("create-1", JobState.SUCCEEDED, 1)
    assert (report.operation, report.correlation_id, report.finished_at) == ("create customers", "crm-1", NOW)


@pytest.mark.parametrize(
    ("source", "summary"),
    [
        (CREATE, "create customers"),
        (
            job(
                operation="upsert",
                entitySet="customers",
                naturalKey={"number": SECRET},
                data={"name": SECRET},
            ),
            "upsert customers",
        ),
        (
            job(
                operation="list",
                entitySet="customers",
                query={"filter": [{"field": "displayName", "value": SECRET}]},
            ),
            "list customers",
        ),
        (
            job(
                operation="update",
                entitySet="customers",
                id=GUID,
                data={"name": SECRET},
                etag=f'W/"{SECRET}"',
            ),
            "update customers",
        ),
        (
            job(
                operation="create",
                entitySet="salesOrderLines",
                parent={"entitySet": "salesOrders", "id": GUID},
                data={"description": SECRET},
            ),
            "create salesOrders/salesOrderLines",
        ),
        (
            job(operation="action", entitySet="salesInvoices", id=GUID, action="Microsoft.NAV.post"),
            "action salesInvoices post",
        ),
        (
            job(
                operation="batch",
                atomic=True,
                operations=[{"operation": "create", "entitySet": "items", "data": {"name": SECRET}}] * 3,
            ),
            "batch 3 operations (atomic)",
        ),
        (
            job(operation="batch", operations=[{"operation": "delete", "entitySet": "items", "id": GUID}]),
            "batch 1 operations",
        ),
    ],
    ids=["create", "upsert", "list", "update", "child", "action", "atomic-batch", "batch"],
)
def test_the_summary_never_includes_data_values(source: Job, summary: str) -> None:
    """The row's Operation column says what kind of job it is, never a value, key, filter, id or ETag."""
    text = summary_of(source)
    assert text == summary
    assert SECRET not in text
    assert GUID not in text


def test_the_request_hash_tells_a_redelivery_from_a_reused_job_id() -> None:
    """Same request under any job id → same hash; different data → different hash."""
    same = CREATE.model_copy(update={"job_id": "other-id"})
    changed = CREATE.model_copy(update={"data": {"displayName": "Someone else"}})
    assert request_hash(same) == request_hash(CREATE)
    assert request_hash(changed) != request_hash(CREATE)
