"""The jobs Table as apps may read it (role: Storage Table Data Reader), one definition for product and client.

Jobs table `{prefix}jobs`: one row per job, PartitionKey = job id, RowKey = "job". A job's audit (its BC
interactions) is kept in its row's `Audit` column, a JSON list of AuditedInteraction (camelCase), while it fits in
AUDIT_COLUMN_BUDGET; a run whose interactions no longer fit keeps them as audit rows in the same partition, one per
interaction, RowKey = `{attempt:03d}-{sequence:04d}` (a query for jobs names `RowKey eq 'job'`). Read both:
`partition_interactions`. Earlier versions wrote every interaction as a row, and before that to `{prefix}jobaudit`
(same keys), still read. Items table
`{prefix}jobitems`: a batch job's full per-operation outcomes when they do not fit in its row (`itemsTruncated`),
PartitionKey = job id, RowKey = `{index:04d}`, `Outcome` = the ItemOutcome's JSON. Column names are
PascalCase, the Table Storage convention; JSON columns hold the report's camelCase shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic.alias_generators import to_camel

from bcjobs.results import ErrorInfo, ItemOutcome, JobReport, JobState, ResultSummary

JOB_ROW = "job"
JOBS_TABLE_SUFFIX = "jobs"
AUDIT_TABLE_SUFFIX = "jobaudit"
ITEMS_TABLE_SUFFIX = "jobitems"
ITEM_OUTCOME_COLUMN = "Outcome"
AUDIT_COLUMN = "Audit"
# The Audit column's UTF-8 bytes at most. A string property holds 64 KiB of UTF-16 (32 K units; UTF-8 never has
# fewer bytes than UTF-16 has units) and an entity 1 MiB with the Result column's 24 KB beside it
# (learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model). An interaction takes
# about 200 bytes, so the column holds some 150: all of nearly every job's.
AUDIT_COLUMN_BUDGET = 30_000


class AuditedInteraction(BaseModel):
    """One BC request of a job as the audit table keeps it (no body, no query string, no token)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    attempt: int  # the job's run (claims, auth waits included)
    sequence: int
    call_attempt: int = 1  # the BC client's own in-call try of the same request
    at: datetime | None = None
    method: str
    path: str
    status: int | None = None
    duration_ms: float = 0.0
    bc_error_code: str | None = None
    client_request_id: str | None = None
    bc_request_id: str | None = None
    error: str | None = None


def audit_row_key(attempt: int, sequence: int) -> str:
    """Sorts in the order the requests were made."""
    return f"{attempt:03d}-{sequence:04d}"


@cache
def _interaction_list() -> TypeAdapter[list[AuditedInteraction]]:
    return TypeAdapter(list[AuditedInteraction])  # built at first use: `import bcjobs.rows` stays light


def audit_column(kept: str | None, interactions: Sequence[AuditedInteraction]) -> str:
    """The Audit column with `interactions` after those it keeps already (`kept`: the column as read)."""
    if not interactions:
        return kept or "[]"
    added = _interaction_list().dump_json(list(interactions), by_alias=True, exclude_none=True).decode()
    if not kept or kept == "[]":
        return added
    return f"{kept[:-1]},{added[1:]}"  # the two JSON lists spliced: the kept one is never parsed


def partition_interactions(rows: Iterable[Mapping[str, Any]]) -> list[AuditedInteraction]:
    """Every interaction of a job's partition (its row's Audit column and its audit rows), in the order they were
    made; a key found twice (a row of an earlier table beside this one, later rows listed last) is one interaction."""
    found: dict[str, AuditedInteraction] = {}
    for row in rows:
        if row["RowKey"] != JOB_ROW:
            found[str(row["RowKey"])] = interaction_from_row(dict(row))
        elif row.get(AUDIT_COLUMN):
            kept = _interaction_list().validate_json(row[AUDIT_COLUMN])
            found.update((audit_row_key(i.attempt, i.sequence), i) for i in kept)
    return [found[key] for key in sorted(found)]


# The columns report_from_row reads: what a listing selects (not the audit the row keeps).
REPORT_COLUMNS = (
    "PartitionKey",
    "State",
    "Operation",
    "Connection",
    "CorrelationId",
    "Attempts",
    "CreatedAt",
    "UpdatedAt",
    "FinishedAt",
    "NextAttemptAt",
    "Result",
    "Error",
)


def report_from_row(row: dict[str, Any]) -> JobReport:
    """A job row as the app's report."""
    return JobReport(
        job_id=str(row["PartitionKey"]),
        state=JobState(row["State"]),
        operation=row.get("Operation"),
        connection=row.get("Connection"),
        correlation_id=row.get("CorrelationId"),
        attempts=int(row.get("Attempts") or 0),
        created_at=row.get("CreatedAt"),
        updated_at=row.get("UpdatedAt"),
        finished_at=row.get("FinishedAt"),
        next_attempt_at=row.get("NextAttemptAt"),
        result=ResultSummary.model_validate_json(row["Result"]) if row.get("Result") else None,
        error=ErrorInfo.model_validate_json(row["Error"]) if row.get("Error") else None,
    )


def interaction_from_row(row: dict[str, Any]) -> AuditedInteraction:
    """An audit row as an AuditedInteraction."""
    return AuditedInteraction(
        attempt=int(row["Attempt"]),
        sequence=int(row["Sequence"]),
        call_attempt=int(row.get("CallAttempt") or 1),
        at=row.get("At"),
        method=str(row["Method"]),
        path=str(row["Path"]),
        status=row.get("Status"),
        duration_ms=float(row.get("DurationMs") or 0.0),
        bc_error_code=row.get("BcErrorCode"),
        client_request_id=row.get("ClientRequestId"),
        bc_request_id=row.get("BcRequestId"),
        error=row.get("Error"),
    )


def interaction_row(job_id: str, interaction: AuditedInteraction) -> dict[str, Any]:
    """An AuditedInteraction as an audit row."""
    row: dict[str, Any] = {
        "PartitionKey": job_id,
        "RowKey": audit_row_key(interaction.attempt, interaction.sequence),
        "Attempt": interaction.attempt,
        "Sequence": interaction.sequence,
        "CallAttempt": interaction.call_attempt,
        "At": interaction.at,
        "Method": interaction.method,
        "Path": interaction.path,
        "Status": interaction.status,
        "DurationMs": round(interaction.duration_ms, 1),
        "BcErrorCode": interaction.bc_error_code,
        "ClientRequestId": interaction.client_request_id,
        "BcRequestId": interaction.bc_request_id,
        "Error": interaction.error,
    }
    return {key: value for key, value in row.items() if value is not None}


def json_column(model: BaseModel | None) -> str | None:
    """A report part as a JSON column (camelCase, unset fields left out)."""
    return None if model is None else model.model_dump_json(by_alias=True, exclude_none=True)


def loads_column(text: str | None) -> Any:
    """A JSON column's value (None when empty)."""
    return json.loads(text) if text else None


def item_row_key(index: int) -> str:
    """Sorts in operation order (a batch holds at most 1,000 operations)."""
    return f"{index:04d}"


def item_row(job_id: str, item: ItemOutcome) -> dict[str, Any]:
    """A batch item's outcome as an items-table entity (one per operation)."""
    return {
        "PartitionKey": job_id,
        "RowKey": item_row_key(item.index),
        ITEM_OUTCOME_COLUMN: item.model_dump_json(by_alias=True, exclude_none=True),
    }


def item_from_row(row: dict[str, Any]) -> ItemOutcome:
    """An items-table entity as the batch item's outcome."""
    return ItemOutcome.model_validate_json(row[ITEM_OUTCOME_COLUMN])
