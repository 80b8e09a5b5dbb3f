"""The HTTP front door for jobs, without azure.functions (its triggers only map the Reply):
`POST /api/jobs` sends, `GET /api/jobs` lists, `GET /api/jobs/{jobId}` shows one job.

POST follows the asynchronous request-reply pattern: 202 Accepted with each job's id and status URL
(`Location` when one job was sent) and `Retry-After`. Every job is validated first with the trigger's own checks
(`bcjobs.submit.prepare`: the model, the size limit, the wire round trip); with one bad job nothing is sent
(400 naming the index and the field of each bad job) unless the caller asked for `?partial=true`, when the good
ones are sent and the bad ones listed under `rejected`. GET lists jobs from the jobs Table a page at a time with a
continuation token. GET of one job answers its report with every batch item's outcome and its BC interactions.

All three read and write through one `bcjobs.aio.AsyncJobsClient` per process and event loop (the contract's own
reader of the jobs, audit and items tables). Storage failures answer 503 with `Retry-After`; the body carries a
reference logged with the cause, never storage details.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from bcjobs import JOBS_QUEUE, ItemOutcome, JobReport, JobState
from bcjobs.aio import AsyncJobsClient
from bcjobs.common import JobDetails, JobHandle, JobPage, audit_table_name, items_table_name, jobs_table_name
from bcjobs.errors import BcJobsError, Problem
from bcjobs.models import JOB_ID_PATTERN
from bcjobs.submit import PreparedJob, Rejection, prepare_all
from bcjobs.wire import MAX_JOB_BYTES
from shared.azure_clients import queue_client, table_client
from shared.connections import (
    CONNECTION_NAME_PATTERN,
    Connection,
    ConnectionUnusableError,
    RegistryUnavailableError,
)
from shared.connections.compose import registry_services
from shared.errors import IntegrationError, SettingsError
from shared.http import Reply, json_reply
from shared.jobs.lanes import refusal_of
from shared.per_loop import PerLoop
from shared.settings import Settings, get_settings

logger = logging.getLogger(__name__)

MAX_JOBS_PER_REQUEST = 100
MAX_BODY_BYTES = MAX_JOBS_PER_REQUEST * (MAX_JOB_BYTES + 4096)
ACCEPTED_RETRY_AFTER = "5"  # seconds until the status route is worth asking
UNAVAILABLE_RETRY_AFTER = "10"
STATUS_UNAVAILABLE_RETRY_AFTER = "5"  # what GET /api/jobs/{jobId} has always said (POST and the list say 10)
SEND_CONCURRENCY = 16
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class JobReader(Protocol):
    """What the status route reads (AsyncJobsClient in the app)."""

    async def get(self, job_id: str, *, interactions: bool = False) -> JobDetails | None:
        """The job's report (with its BC interactions when asked for); None for an unknown job."""
        ...

    async def items(self, job: str | JobReport) -> list[ItemOutcome]:
        """Every item outcome of a batch job, from the items table when the row keeps only some."""
        ...


class JobsBackend(JobReader, Protocol):
    """What the routes need from storage (AsyncJobsClient in the app)."""

    async def send(self, prepared: PreparedJob) -> JobHandle:
        """Put one prepared job on bc-jobs."""
        ...

    async def list_page(
        self,
        state: JobState | str | None = None,
        since: datetime | None = None,
        *,
        page_size: int = 100,
        continuation_token: str | None = None,
        connection: str | None = None,
    ) -> JobPage:
        """One page of job reports."""
        ...


Backend = Callable[[], Awaitable[JobsBackend]]


class ConnectionLookup(Protocol):
    """What POST asks of the registry (ConnectionRegistry in the app; cached, so no storage call per job)."""

    async def resolve(self, name: str | None) -> Connection:
        """The enabled connection; ConnectionUnusableError with the reason otherwise."""
        ...


Connections = Callable[[], Awaitable[ConnectionLookup]]


async def _app_registry() -> ConnectionLookup:
    return (await registry_services()).registry


# -- POST /api/jobs ------------------------------------------------------------------------------------------


async def submit_jobs(
    body: bytes,
    *,
    partial: bool,
    base_url: str,
    backend: Backend | None = None,
    connections: Connections | None = None,
) -> Reply:
    """Validate one job or a list of them, send them to bc-jobs, answer 202/400/413/503 (see the module doc)."""
    parsed = _jobs_of(body)
    if isinstance(parsed, Reply):
        return parsed
    good, bad = prepare_all(parsed)
    good, bad = await _check_connections(good, bad, connections or _app_registry)
    if bad and (not partial or not good):
        return _invalid(bad, len(parsed), partial=partial)
    try:
        client = await (backend or front_door_backend)()
    except (SettingsError, BcJobsError) as exc:
        not_sent = [_accepted(index, prepared.job_id, base_url) for index, prepared in good]
        return _unavailable(exc, {"jobs": [], "notEnqueued": not_sent}, UNAVAILABLE_RETRY_AFTER)
    sent, failed = await _send_all(client, good)
    accepted = [_accepted(index, handle.job_id, base_url) for index, handle in sent]
    if failed:
        not_sent = [_accepted(index, prepared.job_id, base_url) for index, prepared, _ in failed]
        return _unavailable(
            failed[0][2], {"jobs": accepted, "notEnqueued": not_sent}, UNAVAILABLE_RETRY_AFTER
        )
    return _enqueued(accepted, bad)


async def _check_connections(
    good: list[tuple[int, PreparedJob]], bad: list[Rejection], connections: Connections
) -> tuple[list[tuple[int, PreparedJob]], list[Rejection]]:
    """Refuse at the door a job whose connection is unknown, disabled or may not call its custom API (a 400 now
    beats a `rejected` report later). When the registry cannot be read, the jobs go on: the processor decides."""
    if all(prepared.job.connection is None for _, prepared in good):
        return good, bad
    try:
        lookup = await connections()
        kept, refused = [], list(bad)
        for index, prepared in good:
            reason = await _connection_refusal(lookup, prepared)
            if reason is None:
                kept.append((index, prepared))
            else:
                refused.append(Rejection(index, prepared.job_id, (Problem("connection", reason),)))
    except (RegistryUnavailableError, SettingsError) as exc:
        logger.warning("jobs front door: connections not checked (%s); the processor will", exc)
        return good, bad
    return kept, sorted(refused, key=lambda rejection: rejection.index)


async def _connection_refusal(lookup: ConnectionLookup, prepared: PreparedJob) -> str | None:
    try:
        connection = await lookup.resolve(prepared.job.connection)
    except ConnectionUnusableError as unusable:
        return unusable.reason
    return refusal_of(connection, prepared.job)


def _invalid(bad: list[Rejection], total: int, *, partial: bool) -> Reply:
    """400 naming each bad job's index and field."""
    sent_nothing = "" if partial else "; nothing was enqueued (add ?partial=true to enqueue the valid ones)"
    return json_reply(
        400,
        {
            "error": "invalid_jobs",
            "message": f"{len(bad)} of {total} jobs are invalid{sent_nothing}",
            "rejected": [rejection.to_dict() for rejection in bad],
        },
    )


def _enqueued(accepted: list[dict[str, Any]], bad: list[Rejection]) -> Reply:
    """202 with each job's id and status URL (and `Location` for a single job)."""
    body_out: dict[str, Any] = {"jobs": accepted}
    if bad:
        body_out["rejected"] = [rejection.to_dict() for rejection in bad]
    headers = {"Retry-After": ACCEPTED_RETRY_AFTER}
    if len(accepted) == 1:
        headers["Location"] = accepted[0]["location"]
    return json_reply(202, body_out, headers)


def _jobs_of(body: bytes) -> list[object] | Reply:
    if len(body) > MAX_BODY_BYTES:
        return _error(413, "body_too_large", f"at most {MAX_JOBS_PER_REQUEST} jobs of {MAX_JOB_BYTES} bytes")
    if not body.strip():
        return _error(400, "invalid_body", "send a job (a JSON object) or a JSON array of up to 100 jobs")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return _error(400, "invalid_body", "the body is not JSON (UTF-8)")
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        return _error(400, "invalid_body", "send a job (a JSON object) or a JSON array of jobs")
    if not value:
        return _error(400, "invalid_body", "the array holds no job")
    if len(value) > MAX_JOBS_PER_REQUEST:
        return _error(
            400, "too_many_jobs", f"at most {MAX_JOBS_PER_REQUEST} jobs per request (got {len(value)})"
        )
    return list(value)


async def _send_all(
    client: JobsBackend, good: list[tuple[int, PreparedJob]]
) -> tuple[list[tuple[int, JobHandle]], list[tuple[int, PreparedJob, BcJobsError]]]:
    gate = asyncio.Semaphore(SEND_CONCURRENCY)
    sent: list[tuple[int, JobHandle]] = []
    failed: list[tuple[int, PreparedJob, BcJobsError]] = []

    async def send(index: int, prepared: PreparedJob) -> None:
        async with gate:
            try:
                sent.append((index, await client.send(prepared)))
            except BcJobsError as exc:
                failed.append((index, prepared, exc))

    await asyncio.gather(*(send(index, prepared) for index, prepared in good))
    return sorted(sent, key=lambda item: item[0]), sorted(failed, key=lambda item: item[0])


def _accepted(index: int, job_id: str, base_url: str) -> dict[str, Any]:
    return {"index": index, "jobId": job_id, "location": status_url(base_url, job_id)}


def status_url(base_url: str, job_id: str) -> str:
    """The job's status route (`GET /api/jobs/{jobId}`) under the app's base URL."""
    return f"{base_url.rstrip('/')}/api/jobs/{quote(job_id, safe='')}"


# -- GET /api/jobs -------------------------------------------------------------------------------------------


async def list_jobs(params: Mapping[str, str], *, base_url: str, backend: Backend | None = None) -> Reply:
    """One page of jobs: `state`, `since` (ISO-8601 with offset), `pageSize` (1-1000), `continuationToken`,
    `connection` (the jobs of one connection)."""
    query = _list_query(params)
    if isinstance(query, Reply):
        return query
    state, since, page_size, token, connection = query
    try:
        client = await (backend or front_door_backend)()
        page = await client.list_page(
            state, since, page_size=page_size, continuation_token=token, connection=connection
        )
    except ValueError:
        return _error(400, "invalid_parameter", "continuationToken: not a token this API returned")
    except (SettingsError, BcJobsError) as exc:
        return _unavailable(exc, {}, UNAVAILABLE_RETRY_AFTER)
    body: dict[str, Any] = {
        "jobs": [json.loads(report.model_dump_json(by_alias=True, exclude_none=True)) for report in page.jobs]
    }
    if page.continuation_token:
        body["continuationToken"] = page.continuation_token
        kept = {key: params[key] for key in ("state", "since", "pageSize", "connection") if params.get(key)}
        body["nextLink"] = (
            f"{base_url.rstrip('/')}/api/jobs?{urlencode({**kept, 'continuationToken': page.continuation_token})}"
        )
    return json_reply(200, body)


def _list_query(
    params: Mapping[str, str],
) -> tuple[JobState | None, datetime | None, int, str | None, str | None] | Reply:
    try:
        state = _state_param(params.get("state"))
        since = _since_param(params.get("since"))
        size = _page_size_param(params.get("pageSize"))
        connection = _connection_param(params.get("connection"))
    except _BadParameterError as bad:
        return _error(400, "invalid_parameter", str(bad))
    return state, since, size, params.get("continuationToken") or None, connection


class _BadParameterError(IntegrationError):
    """A query parameter the list route cannot use; the message names it and what it takes."""


def _state_param(text: str | None) -> JobState | None:
    if not text:
        return None
    try:
        return JobState(text)
    except ValueError:
        raise _BadParameterError(f"state: one of {', '.join(s.value for s in JobState)}") from None


def _since_param(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        since = datetime.fromisoformat(text)
    except ValueError:
        since = None
    if since is None or since.tzinfo is None:
        raise _BadParameterError("since: an ISO-8601 date-time with an offset, e.g. 2026-12-01T00:00:00Z")
    return since


def _connection_param(text: str | None) -> str | None:
    if not text:
        return None
    if re.fullmatch(CONNECTION_NAME_PATTERN, text) is None:
        raise _BadParameterError(
            "connection: a connection name (a-z 0-9 -, 1-40 characters; GET /api/connections)"
        )
    return text


def _page_size_param(text: str | None) -> int:
    if not text:
        return DEFAULT_PAGE_SIZE
    size = int(text) if text.isdigit() else 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _BadParameterError(f"pageSize: a whole number from 1 to {MAX_PAGE_SIZE}")
    return size


# -- GET /api/jobs/{jobId} ---------------------------------------------------------------------------------


def valid_job_id(job_id: str) -> bool:
    """True for an id the contract allows (anything else cannot name a job)."""
    return re.fullmatch(JOB_ID_PATTERN, job_id) is not None


async def job_status(job_id: str, *, backend: Backend | None = None) -> Reply:
    """200 with the job (`status_body`), 404 for an unknown id, 400 for an id no job can have, 503."""
    if not valid_job_id(job_id):
        return _error(400, "invalid_job_id", "a job id is 1-100 characters of A-Z a-z 0-9 . _ : -")
    try:
        reader = await (backend or front_door_backend)()
        body = await status_body(reader, job_id)
    except (SettingsError, BcJobsError) as exc:
        return _unavailable(exc, {}, STATUS_UNAVAILABLE_RETRY_AFTER)
    if body is None:
        return _error(404, "not_found", f"no job {job_id}: check the id, or wait until it is received")
    return json_reply(200, body)


async def status_body(reader: JobReader, job_id: str) -> dict[str, Any] | None:
    """The report with `interactions`, as wire JSON; None for an unknown job."""
    details = await reader.get(job_id, interactions=True)
    if details is None:
        return None
    body: dict[str, Any] = details.model_dump(mode="json", by_alias=True, exclude_none=True)
    if details.result is not None and details.result.items_truncated:
        # The row keeps the counts and the first failing items; this answer has room for every item's outcome.
        kept = await reader.items(details)
        body["result"]["items"] = [
            item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in kept
        ]
        body["result"]["itemsTruncated"] = False
    return body


# -- replies -------------------------------------------------------------------------------------------------


def _error(status: int, code: str, message: str) -> Reply:
    return json_reply(status, {"error": code, "message": message})


def _unavailable(exc: Exception, extra: dict[str, Any], retry_after: str) -> Reply:
    """503 with a reference that the log line carries with the cause (the body never names storage)."""
    reference = uuid.uuid4().hex[:12]
    logger.error(
        "jobs front door: storage failed (ref %s): %s",
        reference,
        exc,
        extra={"event": "jobs.front_door_storage_failed", "reference": reference},
    )
    body = {"error": "storage_unavailable", "message": "try again shortly", "reference": reference, **extra}
    return json_reply(503, body, {"Retry-After": retry_after})


# -- the app's storage clients -------------------------------------------------------------------------------


@dataclass
class _Clients:
    """The process's AsyncJobsClient for one loop and the SDK clients under it (closed together)."""

    client: AsyncJobsClient
    closers: list[Callable[[], Awaitable[None]]]

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


async def _build(settings: Settings) -> _Clients:
    """JobsStorage locally, the service URIs + managed identity in Azure (shared.azure_clients)."""
    prefix = settings.storage.table_prefix
    jobs_queue = queue_client(settings.storage, JOBS_QUEUE)
    results_queue = queue_client(settings.storage, settings.jobs.results_queue)
    jobs_table = table_client(settings.storage, jobs_table_name(prefix))
    audit_table = table_client(settings.storage, audit_table_name(prefix))
    items_table = table_client(settings.storage, items_table_name(prefix))
    client = AsyncJobsClient.from_clients(
        jobs_queue=jobs_queue.client,
        results_queue=results_queue.client,
        jobs_table=jobs_table.client,
        audit_table=audit_table.client,
        items_table=items_table.client,
    )
    closers: list[Callable[[], Awaitable[None]]] = [
        jobs_queue.close,
        results_queue.close,
        jobs_table.close,
        audit_table.close,
        items_table.close,
    ]
    return _Clients(client, closers)


_per_loop: PerLoop[Settings, _Clients] = PerLoop(_build)


async def front_door_backend(settings: Settings | None = None) -> AsyncJobsClient:
    """The process's client for the running loop (aio clients are bound to their loop), from the settings."""
    return (await _per_loop.get(settings or get_settings())).client


async def close_front_door() -> None:
    """Close and forget the running loop's clients (tests, local host shutdown)."""
    await _per_loop.close()
