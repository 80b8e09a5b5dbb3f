"""What the sync and async clients share: the objects they return and the SDK-independent steps.

Nothing here talks to storage; the operations themselves are flows in `bcjobs._flows`, which `bcjobs.client` (sync)
and `bcjobs.aio` (async) carry out, each with its Azure SDK.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError
from pydantic import ValidationError

from bcjobs.errors import BcJobsError, JobsStorageError
from bcjobs.models import Job
from bcjobs.results import JobReport, JobState
from bcjobs.rows import AUDIT_TABLE_SUFFIX, ITEMS_TABLE_SUFFIX, JOB_ROW, JOBS_TABLE_SUFFIX, AuditedInteraction
from bcjobs.submit import PreparedJob, prepare

DEFAULT_TABLE_PREFIX = "bc"
DEFAULT_CONCURRENCY = 8
MAX_PAGE_SIZE = 1000  # Table Storage returns at most 1,000 entities per request

JobInput = Job | Mapping[str, Any] | PreparedJob


@dataclass(frozen=True, slots=True)
class JobHandle:
    """A job on its way: the id to ask about (`get`, `wait`, `GET /api/jobs/{jobId}`) and the queue message."""

    job_id: str
    message_id: str | None = None
    inserted_on: datetime | None = None
    expires_on: datetime | None = None
    correlation_id: str | None = None

    @property
    def status_path(self) -> str:
        """The status route of the job, relative to the Function app's host."""
        return f"/api/jobs/{self.job_id}"


@dataclass(frozen=True, slots=True)
class EnqueueFailure:
    """A job of `enqueue_many` that was not sent: its position in the input, its id when known, the error."""

    index: int
    job_id: str | None
    error: BcJobsError


@dataclass(slots=True)
class EnqueueResult:
    """What `enqueue_many` did with each job, by its position in the input."""

    sent: dict[int, JobHandle] = field(default_factory=dict)
    failed: dict[int, EnqueueFailure] = field(default_factory=dict)

    @property
    def handles(self) -> list[JobHandle]:
        """The sent jobs' handles, in input order."""
        return [self.sent[index] for index in sorted(self.sent)]

    @property
    def failures(self) -> list[EnqueueFailure]:
        """The jobs not sent, in input order."""
        return [self.failed[index] for index in sorted(self.failed)]

    @property
    def ok(self) -> bool:
        """True when every job was sent."""
        return not self.failed


Progress = Callable[[int, "JobHandle | EnqueueFailure"], None]


def as_prepared(job: JobInput) -> PreparedJob:
    """`job` validated, with its id, encoded (a PreparedJob passes through)."""
    return job if isinstance(job, PreparedJob) else prepare(job)


class JobDetails(JobReport):
    """A job's report plus its BC interactions (the audit log), as `get(..., interactions=True)` returns it."""

    interactions: list[AuditedInteraction] | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of `list_page`: the jobs and the token for the next page (None on the last)."""

    jobs: list[JobReport]
    continuation_token: str | None


def jobs_table_name(prefix: str) -> str:
    """The jobs table of a deployment (`bcjobs` by default)."""
    return f"{prefix}{JOBS_TABLE_SUFFIX}"


def audit_table_name(prefix: str) -> str:
    """The audit table earlier versions wrote (`bcjobaudit` by default); audit rows are now in the jobs table."""
    return f"{prefix}{AUDIT_TABLE_SUFFIX}"


def items_table_name(prefix: str) -> str:
    """The items table of a deployment (`bcjobitems` by default): a large batch's every item outcome."""
    return f"{prefix}{ITEMS_TABLE_SUFFIX}"


def list_query(
    state: JobState | str | None, since: datetime | None, connection: str | None = None
) -> tuple[str, dict[str, object]]:
    """Table filter and parameters for `list`: job rows, optionally of one state, updated at or after `since`, of
    one connection (rows written before connections existed have none and match no connection)."""
    clauses = ["RowKey eq @row"]
    parameters: dict[str, object] = {"row": JOB_ROW}
    if connection is not None:
        clauses.append("Connection eq @connection")
        parameters["connection"] = connection
    if state is not None:
        clauses.append("State eq @state")
        parameters["state"] = JobState(state).value
    if since is not None:
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware (e.g. datetime.now(UTC) - timedelta(hours=1))")
        clauses.append("UpdatedAt ge @since")
        parameters["since"] = since
    return " and ".join(clauses), parameters


def encode_continuation(token: object) -> str | None:
    """The Table SDK's continuation (a dict of next keys) as an opaque URL-safe string."""
    if not token:
        return None
    if not isinstance(token, dict):
        raise TypeError("unexpected continuation token from the Table SDK")
    data = json.dumps({"pk": token.get("PartitionKey"), "rk": token.get("RowKey")}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode("utf-8")).decode("ascii").rstrip("=")


def decode_continuation(token: str | None) -> dict[str, str] | None:
    """The opaque string back as the Table SDK's continuation; ValueError when it is not one of ours."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a continuation token of this API") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str | None) for k in ("pk", "rk")):
        raise ValueError("not a continuation token of this API")
    return {"PartitionKey": data.get("pk"), "RowKey": data.get("rk")}  # type: ignore[dict-item]


def report_from_message(text: str) -> JobReport:
    """A `bc-results` message's report: base64 of the JobReport JSON (plain JSON is accepted too)."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        try:
            stripped = base64.b64decode(stripped, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ValueError("not base64-encoded UTF-8 JSON") from None
    try:
        return JobReport.model_validate_json(stripped)
    except ValidationError as exc:
        fields = sorted(
            {".".join(str(part) for part in error["loc"]) or "(message)" for error in exc.errors()}
        )
        raise ValueError(f"not a job report (check {', '.join(fields[:5])})") from None


def report_message(report: JobReport) -> str:
    """The `bc-results` message text for `report` (what the product publishes)."""
    return base64.b64encode(report.to_json().encode("utf-8")).decode("ascii")


def poll_delays(first: float, *, factor: float = 1.5, cap: float = 10.0) -> Iterator[float]:
    """Seconds between status polls: `first`, then growing by `factor` up to `cap` (never below `first`)."""
    delay = max(first, 0.01)
    cap = max(cap, delay)
    while True:
        yield delay
        delay = min(delay * factor, cap)


def storage_error(operation: str, exc: AzureError) -> JobsStorageError:
    """An SDK failure as JobsStorageError: the operation, status and storage error code, never a URL or key."""
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    code = getattr(exc, "error_code", None)
    code_text = str(code) if code else None
    parts = [p for p in (str(status) if status else None, code_text) if p]
    detail = f" ({', '.join(parts)})" if parts else f" ({type(exc).__name__})"
    hint = _hint(status, code_text)
    return JobsStorageError(f"{operation} failed{detail}{hint}", status=status, error_code=code_text)


def _hint(status: int | None, code: str | None) -> str:
    if code in {"QueueNotFound", "TableNotFound"} or status == 404:
        return ": the queue or table does not exist (deploy the product, or create it locally)"
    if status == 403 or code == "AuthorizationPermissionMismatch":
        return ": the identity lacks a data role on this queue or table (see bcjobs/README.md)"
    if status is None:
        return ": storage could not be reached or the credential failed"
    return ""
