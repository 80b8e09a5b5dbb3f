"""The asynchronous client (azure.*.aio SDKs over aiohttp): the same operations as `bcjobs.client.JobsClient`.

    from bcjobs.aio import AsyncJobsClient

    async with AsyncJobsClient.from_connection_string(conn_str) as jobs:
        handle = await jobs.enqueue(job)
        report = await jobs.wait(handle.job_id, timeout=120)
        async with jobs.results() as stream:
            async for item in stream:
                async with item as report:      # deleted when the block ends normally
                    ...

`from_clients` builds one around SDK clients the caller made and owns (the product's HTTP front door does, with
its managed identity and bounded timeouts).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.identity.aio import DefaultAzureCredential
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from bcjobs import JOBS_QUEUE, RESULTS_QUEUE
from bcjobs.common import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TABLE_PREFIX,
    MAX_PAGE_SIZE,
    EnqueueFailure,
    EnqueueResult,
    JobDetails,
    JobHandle,
    JobInput,
    JobPage,
    Progress,
    as_prepared,
    audit_table_name,
    decode_continuation,
    encode_continuation,
    jobs_table_name,
    list_query,
    poll_delays,
    report_from_message,
    storage_error,
)
from bcjobs.errors import BcJobsError, InvalidJobError, ResultNotCompletedError, WaitTimeoutError
from bcjobs.models import JOB_ID_PATTERN
from bcjobs.results import TERMINAL_STATES, JobReport, JobState
from bcjobs.rows import JOB_ROW, Interaction, interaction_from_row, report_from_row
from bcjobs.submit import PreparedJob

__all__ = [
    "AsyncJobsClient",
    "AsyncResultMessage",
    "AsyncResultStream",
    "EnqueueFailure",
    "EnqueueResult",
    "JobDetails",
    "JobHandle",
    "JobPage",
]

logger = logging.getLogger("bcjobs")


class AsyncJobsClient:
    """Send jobs to `bc-jobs`, read the jobs Table, take reports off `bc-results` (Azure Storage, aio SDKs).

    `credential` defaults to the async DefaultAzureCredential (closed with the client); `client_options` go to
    the Azure SDK clients. Use it on one event loop (the aio SDK clients are bound to theirs).
    """

    def __init__(
        self,
        queue_service_uri: str,
        table_service_uri: str,
        credential: AsyncTokenCredential | None = None,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        jobs_queue: str = JOBS_QUEUE,
        results_queue: str = RESULTS_QUEUE,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        **client_options: Any,
    ) -> None:
        closers: list[Callable[[], Awaitable[None]]] = []
        if credential is None:
            default = DefaultAzureCredential()
            credential, closers = default, [default.close]
        queues = QueueServiceClient(queue_service_uri, credential=credential, **client_options)
        tables = TableServiceClient(endpoint=table_service_uri, credential=credential, **client_options)
        self._setup(
            jobs_queue=queues.get_queue_client(jobs_queue),
            results_queue=queues.get_queue_client(results_queue),
            jobs_table=tables.get_table_client(jobs_table_name(table_prefix)),
            audit_table=tables.get_table_client(audit_table_name(table_prefix)),
            max_concurrency=max_concurrency,
            closers=[queues.close, tables.close, *closers],
        )

    @classmethod
    def from_connection_string(
        cls,
        conn_str: str,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        jobs_queue: str = JOBS_QUEUE,
        results_queue: str = RESULTS_QUEUE,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        **client_options: Any,
    ) -> Self:
        """A client from a storage connection string (Azurite locally; account keys are for development)."""
        queues = QueueServiceClient.from_connection_string(conn_str, **client_options)
        tables = TableServiceClient.from_connection_string(conn_str, **client_options)
        client = cls.__new__(cls)
        client._setup(
            jobs_queue=queues.get_queue_client(jobs_queue),
            results_queue=queues.get_queue_client(results_queue),
            jobs_table=tables.get_table_client(jobs_table_name(table_prefix)),
            audit_table=tables.get_table_client(audit_table_name(table_prefix)),
            max_concurrency=max_concurrency,
            closers=[queues.close, tables.close],
        )
        return client

    @classmethod
    def from_clients(
        cls,
        *,
        jobs_queue: QueueClient,
        results_queue: QueueClient,
        jobs_table: TableClient,
        audit_table: TableClient,
        max_concurrency: int = DEFAULT_CONCURRENCY,
    ) -> Self:
        """A client over SDK clients the caller built and closes (queue clients without an encode policy)."""
        client = cls.__new__(cls)
        client._setup(
            jobs_queue=jobs_queue,
            results_queue=results_queue,
            jobs_table=jobs_table,
            audit_table=audit_table,
            max_concurrency=max_concurrency,
            closers=[],
        )
        return client

    def _setup(
        self,
        *,
        jobs_queue: QueueClient,
        results_queue: QueueClient,
        jobs_table: TableClient,
        audit_table: TableClient,
        max_concurrency: int,
        closers: builtins.list[Callable[[], Awaitable[None]]],
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._jobs_queue, self._results_queue = jobs_queue, results_queue
        self._jobs_table, self._audit_table = jobs_table, audit_table
        self._max_concurrency = max_concurrency
        self._closers = closers

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the SDK clients this client built (and the default credential when it created it)."""
        closers, self._closers = self._closers, []
        for close in closers:
            await close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def create_queues(self) -> None:
        """Create `bc-jobs` and `bc-results` when missing (local development; in Azure the deployment does)."""
        for queue in (self._jobs_queue, self._results_queue):
            try:
                await queue.create_queue()
            except ResourceExistsError:
                continue
            except AzureError as exc:
                raise storage_error(f"creating queue {queue.queue_name}", exc) from exc

    # -- sending ---------------------------------------------------------------------------------------------

    async def enqueue(self, job: JobInput) -> JobHandle:
        """Validate `job` as the trigger will (InvalidJobError otherwise), give it an id if it has none, send it."""
        return await self.send(as_prepared(job))

    async def enqueue_many(
        self,
        jobs: Iterable[JobInput],
        *,
        max_concurrency: int | None = None,
        on_progress: Progress | None = None,
    ) -> EnqueueResult:
        """Send many jobs, at most `max_concurrency` at a time; a bad or unsent job never stops the others.

        Each job's outcome (JobHandle or EnqueueFailure) is in the result by input position, and is passed to
        `on_progress(index, outcome)` as it happens.
        """
        limit = max_concurrency or self._max_concurrency
        result = EnqueueResult()
        work = iter(enumerate(jobs))

        def record(index: int, outcome: JobHandle | EnqueueFailure) -> None:
            if isinstance(outcome, JobHandle):
                result.sent[index] = outcome
            else:
                result.failed[index] = outcome
            if on_progress is not None:
                on_progress(index, outcome)

        async def worker() -> None:
            for index, job in work:  # one shared iterator: each job is taken by exactly one worker
                try:
                    prepared = as_prepared(job)
                except InvalidJobError as exc:
                    record(index, EnqueueFailure(index, exc.job_id, exc))
                    continue
                try:
                    handle = await self.send(prepared)
                except BcJobsError as exc:
                    record(index, EnqueueFailure(index, prepared.job_id, exc))
                else:
                    record(index, handle)

        async with asyncio.TaskGroup() as group:
            for _ in range(limit):
                group.create_task(worker())
        return result

    async def send(self, prepared: PreparedJob) -> JobHandle:
        """Send a job `bcjobs.submit.prepare` returned (its text as it is: already base64)."""
        try:
            message = await self._jobs_queue.send_message(prepared.text)
        except AzureError as exc:
            raise storage_error(
                f"sending job {prepared.job_id} to {self._jobs_queue.queue_name}", exc
            ) from exc
        return JobHandle(
            prepared.job_id,
            message.id,
            message.inserted_on,
            message.expires_on,
            prepared.job.correlation_id,
        )

    # -- reading the jobs table ------------------------------------------------------------------------------

    async def get(self, job_id: str, *, interactions: bool = False) -> JobDetails | None:
        """The job's report from the jobs Table (None until the product has seen it), with its interactions
        (the BC requests it made, oldest first) when asked for."""
        if not re.fullmatch(JOB_ID_PATTERN, job_id):
            return None
        try:
            row = await self._jobs_table.get_entity(job_id, JOB_ROW)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise storage_error(f"reading job {job_id}", exc) from exc
        report = report_from_row(dict(row))
        log = await self.interactions(job_id) if interactions else None
        return JobDetails.model_validate({**report.model_dump(), "interactions": log})

    async def interactions(self, job_id: str) -> builtins.list[Interaction]:
        """The job's BC requests from the audit table, in the order they were made (empty when none)."""
        if not re.fullmatch(JOB_ID_PATTERN, job_id):
            return []
        try:
            rows = [
                row
                async for row in self._audit_table.query_entities(
                    "PartitionKey eq @job", parameters={"job": job_id}
                )
            ]
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise storage_error(f"reading the interactions of job {job_id}", exc) from exc
        return [interaction_from_row(dict(row)) for row in sorted(rows, key=lambda row: str(row["RowKey"]))]

    async def list_page(
        self,
        state: JobState | str | None = None,
        since: datetime | None = None,
        *,
        page_size: int = 100,
        continuation_token: str | None = None,
    ) -> JobPage:
        """One page of jobs (state, updated at or after `since`); pass `continuation_token` on for the next.

        Jobs come in job-id order (the table's key order); a page may hold fewer than `page_size` jobs even
        when more follow (Table Storage pages by rows scanned). ValueError for a token that is not ours.
        """
        query, parameters = list_query(state, since)
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        token = decode_continuation(continuation_token)
        pages = self._jobs_table.query_entities(query, parameters=parameters, results_per_page=size).by_page(
            continuation_token=token  # type: ignore[arg-type]  # typed str, but the Table SDK's token is a dict
        )
        try:
            page = await anext(pages, None)
            rows = [row async for row in page] if page is not None else []
        except ResourceNotFoundError:
            return JobPage([], None)
        except AzureError as exc:
            raise storage_error("listing jobs", exc) from exc
        next_token = encode_continuation(getattr(pages, "continuation_token", None))
        return JobPage([report_from_row(dict(row)) for row in rows], next_token)

    # -- waiting ---------------------------------------------------------------------------------------------

    async def wait(
        self,
        job_id: str,
        timeout: float = 300.0,  # noqa: ASYNC109  # the same deadline parameter as the sync client
        poll: float = 1.0,
        *,
        max_poll: float = 10.0,
        on_poll: Callable[[JobReport | None], None] | None = None,
    ) -> JobReport:
        """Poll the job until it reaches a terminal state and return that report; WaitTimeoutError at the deadline.

        Polls start `poll` seconds apart and back off to `max_poll`; `on_poll` sees every report (None while
        the product has not recorded the job yet).
        """
        deadline = time.monotonic() + timeout
        last: JobReport | None = None
        for delay in poll_delays(poll, cap=max_poll):
            last = await self.get(job_id)
            if on_poll is not None:
                on_poll(last)
            if last is not None and last.state in TERMINAL_STATES:
                return last
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(delay, remaining))
        raise WaitTimeoutError(job_id, timeout, last)

    # -- results ---------------------------------------------------------------------------------------------

    def results(
        self,
        *,
        follow: bool = False,
        visibility_timeout: int = 120,
        batch_size: int = 16,
        idle_timeout: float | None = None,
        poll: float = 1.0,
        max_poll: float = 10.0,
    ) -> AsyncResultStream:
        """Reports from `bc-results`, each deleted only once the caller is done with it (see AsyncResultStream)."""
        return AsyncResultStream(
            self._results_queue,
            follow=follow,
            visibility_timeout=visibility_timeout,
            batch_size=batch_size,
            idle_timeout=idle_timeout,
            poll=poll,
            max_poll=max_poll,
        )

    async def list(
        self,
        state: JobState | str | None = None,
        since: datetime | None = None,
        *,
        limit: int | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[JobReport]:
        """Every job of `state` updated at or after `since` (all pages, job-id order), at most `limit`."""
        token: str | None = None
        count = 0
        while True:
            page = await self.list_page(state, since, page_size=page_size, continuation_token=token)
            for report in page.jobs:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield report
            token = page.continuation_token
            if token is None:
                return


class AsyncResultMessage:
    """One report taken off `bc-results`, hidden from other consumers until completed or abandoned.

    `async with item as report:` completes it when the block ends normally and abandons it when it raises;
    otherwise the stream completes it when the next one is asked for.
    """

    def __init__(self, queue: QueueClient, message: QueueMessage, report: JobReport) -> None:
        self._queue = queue
        self._message = message
        self.report = report
        self.settled = False

    @property
    def message_id(self) -> str:
        """The queue message's id."""
        return str(self._message.id)

    @property
    def dequeue_count(self) -> int:
        """How often the message has been handed out (more than 1: an earlier consumer did not finish)."""
        return int(self._message.dequeue_count or 0)

    async def complete(self) -> None:
        """Delete the message: it will not be handed out again. ResultNotCompletedError if it is too late."""
        if self.settled:
            return
        try:
            await self._queue.delete_message(self._message.id, self._message.pop_receipt)
        except ResourceNotFoundError:
            self.settled = True
            raise ResultNotCompletedError(
                f"result of job {self.report.job_id} could not be deleted: its visibility timeout ran out and "
                "it may be handed out again (raise visibility_timeout)"
            ) from None
        except AzureError as exc:
            raise storage_error(f"deleting the result of job {self.report.job_id}", exc) from exc
        self.settled = True

    async def abandon(self, delay: int = 0) -> None:
        """Make the message visible again after `delay` seconds, for this or another consumer."""
        if self.settled:
            return
        self.settled = True
        try:
            await self._queue.update_message(
                self._message.id, self._message.pop_receipt, visibility_timeout=delay
            )
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise storage_error(f"releasing the result of job {self.report.job_id}", exc) from exc

    async def __aenter__(self) -> JobReport:
        return self.report

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            await self.complete()
        else:
            await self.abandon()


class AsyncResultStream:
    """Iterates `bc-results` (`async for`); at most one handed-out result is pending at a time.

    Asking for the next result completes the previous one unless the caller settled it; `aclose()` or
    `async with stream:` completes the last on a normal exit, abandons it on an exception, and gives back
    what was received but not handed out.
    """

    def __init__(
        self,
        queue: QueueClient,
        *,
        follow: bool,
        visibility_timeout: int,
        batch_size: int,
        idle_timeout: float | None,
        poll: float,
        max_poll: float,
    ) -> None:
        if not 1 <= batch_size <= 32:
            raise ValueError("batch_size must be between 1 and 32 (the queue service's limit)")
        self._queue = queue
        self._follow = follow
        self._visibility = visibility_timeout
        self._batch = batch_size
        self._idle = idle_timeout
        self._poll, self._max_poll = poll, max_poll
        self._buffer: deque[QueueMessage] = deque()
        self._pending: AsyncResultMessage | None = None
        self._closed = False
        self.skipped = 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> AsyncResultMessage:
        await self._settle_pending()
        if self._closed:
            raise StopAsyncIteration
        delays = poll_delays(self._poll, cap=self._max_poll)
        idle_since = time.monotonic()
        while True:
            while self._buffer:
                message = self._buffer.popleft()
                try:
                    report = report_from_message(str(message.content))
                except ValueError as exc:
                    self.skipped += 1
                    logger.warning("results message %s skipped: %s", message.id, exc)
                    continue
                self._pending = AsyncResultMessage(self._queue, message, report)
                return self._pending
            if await self._receive():
                delays = poll_delays(self._poll, cap=self._max_poll)
                idle_since = time.monotonic()
                continue
            if not self._follow:
                raise StopAsyncIteration
            waited = time.monotonic() - idle_since
            if self._idle is not None and waited >= self._idle:
                raise StopAsyncIteration
            delay = next(delays)
            await asyncio.sleep(delay if self._idle is None else min(delay, max(self._idle - waited, 0.0)))

    async def _receive(self) -> bool:
        try:
            async for message in self._queue.receive_messages(
                messages_per_page=self._batch, max_messages=self._batch, visibility_timeout=self._visibility
            ):
                self._buffer.append(message)
        except AzureError as exc:
            raise storage_error(f"receiving from {self._queue.queue_name}", exc) from exc
        return bool(self._buffer)

    async def _settle_pending(self, *, abandon: bool = False) -> None:
        pending, self._pending = self._pending, None
        if pending is None or pending.settled:
            return
        if abandon:
            await pending.abandon()
            return
        try:
            await pending.complete()
        except ResultNotCompletedError as exc:
            logger.warning("%s", exc)

    async def aclose(self, *, abandon: bool = False) -> None:
        """Complete (or abandon) the pending result and give back the ones received but not handed out."""
        if self._closed:
            return
        self._closed = True
        await self._settle_pending(abandon=abandon)
        while self._buffer:
            message = self._buffer.popleft()
            try:
                await self._queue.update_message(message.id, message.pop_receipt, visibility_timeout=0)
            except AzureError:
                logger.warning("results message %s not released; visible again after its timeout", message.id)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose(abandon=exc_type is not None)
