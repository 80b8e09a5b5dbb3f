"""What the product reports back about a job: its state, and the result or error (v1, camelCase on the wire).

The same shape is the `bc-results` queue message, the body of `GET /api/jobs/{jobId}` (plus the interactions),
and what the app client returns.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class JobState(StrEnum):
    """Where a job is. Terminal states never change again."""

    RECEIVED = "received"
    RUNNING = "running"
    RETRY_SCHEDULED = "retry_scheduled"
    WAITING_FOR_AUTHORIZATION = "waiting_for_authorization"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    DEAD_LETTERED = "dead_lettered"

    @property
    def terminal(self) -> bool:
        """True for succeeded, failed, rejected, expired and dead_lettered."""
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.REJECTED, JobState.EXPIRED, JobState.DEAD_LETTERED}
)


class _ReportModel(BaseModel):
    """A report as read: unknown fields are ignored, so an older client reads a newer product's reports."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class ErrorInfo(_ReportModel):
    """Why a job (or one batch item) did not succeed: our code, BC's code and message, BC's correlation ids."""

    code: str = Field(description="the product's code, e.g. bc_validation, ambiguous_write, invalid_job")
    message: str
    bc_code: str | None = None
    status: int | None = None
    client_request_id: str | None = Field(default=None, description="our request id, as BC support knows it")
    bc_request_id: str | None = None
    retriable: bool = False


class ItemOutcome(_ReportModel):
    """One operation of a batch job."""

    index: int
    status: int | None = None
    id: str | None = None
    etag: str | None = None
    rolled_back: bool = False
    error: ErrorInfo | None = None


class ResultSummary(_ReportModel):
    """What a job achieved: the record's id, number and ETag, counts, batch items, and read data that fits."""

    id: str | None = None
    number: str | None = None
    etag: str | None = None
    count: int | None = None
    reconciled: bool = Field(default=False, description="found by natural key after an ambiguous write")
    created: bool | None = Field(default=None, description="upsert: True when it created the record")
    items: list[ItemOutcome] | None = None
    items_truncated: bool = Field(
        default=False,
        description=(
            "batch: in the job row and the results message, `items` holds only the failing outcomes that fit "
            "(both are bounded at 64 KiB); every item's outcome is in the status route's body "
            "(GET /api/jobs/{jobId}) and in the `{prefix}jobitems` table"
        ),
    )
    items_succeeded: int | None = Field(
        default=None, description="batch, when items_truncated: operations that succeeded"
    )
    items_failed: int | None = Field(
        default=None, description="batch, when items_truncated: operations that failed or were rolled back"
    )
    entities: list[dict[str, Any]] | None = Field(
        default=None, description="get/list: the records, when they fit"
    )
    truncated: bool = Field(default=False, description="entities were left out to keep the result small")


class JobReport(_ReportModel):
    """A job's state as the app sees it (results queue message, status route, client)."""

    schema_version: int = 1
    job_id: str
    state: JobState
    operation: str | None = None
    connection: str | None = Field(default=None, description="the connection the job ran on")
    correlation_id: str | None = None
    attempts: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None
    result: ResultSummary | None = None
    error: ErrorInfo | None = None

    def to_json(self) -> str:
        """Compact wire JSON (camelCase, unset fields left out)."""
        return self.model_dump_json(by_alias=True, exclude_none=True)
