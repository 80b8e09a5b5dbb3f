"""The job row's Audit column (bcjobs.rows): interactions appended without reading the column back, and a job's
partition read back as its interactions in the order they were made, from the column and the audit rows alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bcjobs.rows import (
    AUDIT_COLUMN,
    JOB_ROW,
    AuditedInteraction,
    audit_column,
    interaction_row,
    partition_interactions,
)

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def interaction(run: int, sequence: int, **fields: object) -> AuditedInteraction:
    return AuditedInteraction.model_validate(
        {"attempt": run, "sequence": sequence, "method": "GET", "path": "/companies(x)/customers", **fields}
    )


def test_a_column_gains_a_runs_interactions_after_those_it_kept() -> None:
    first = audit_column(None, [interaction(1, 1, status=429, at=AT, bcErrorCode="TooManyRequests")])
    both = audit_column(first, [interaction(2, 1, status=200), interaction(2, 2, status=201)])
    assert [(i["attempt"], i["sequence"]) for i in json.loads(both)] == [(1, 1), (2, 1), (2, 2)]
    assert json.loads(first)[0] == {
        "attempt": 1,
        "sequence": 1,
        "callAttempt": 1,
        "at": "2026-12-06T12:00:00Z",
        "method": "GET",
        "path": "/companies(x)/customers",
        "status": 429,
        "durationMs": 0.0,
        "bcErrorCode": "TooManyRequests",
    }


def test_no_interaction_leaves_the_column_as_it_was() -> None:
    kept = audit_column(None, [interaction(1, 1)])
    assert audit_column(kept, []) == kept
    assert audit_column(None, []) == "[]"


def test_a_partition_reads_back_as_every_interaction_in_the_order_made() -> None:
    column = audit_column(None, [interaction(1, 1, at=AT), interaction(1, 2)])
    job_row = {"PartitionKey": "j", "RowKey": JOB_ROW, "State": "succeeded", AUDIT_COLUMN: column}
    rows = [interaction_row("j", interaction(2, 1, status=200)), job_row]
    read = partition_interactions(rows)
    assert [(i.attempt, i.sequence) for i in read] == [(1, 1), (1, 2), (2, 1)]
    assert read[0] == interaction(1, 1, at=AT)


def test_a_job_row_without_a_column_and_a_row_listed_twice_read_as_one() -> None:
    row = interaction_row("j", interaction(1, 1))
    job_row = {"PartitionKey": "j", "RowKey": JOB_ROW, "State": "running"}
    assert [(i.attempt, i.sequence) for i in partition_interactions([row, job_row, dict(row)])] == [(1, 1)]
