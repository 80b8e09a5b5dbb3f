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
its managed identity and bounded timeouts). What the client does is in `bcjobs._flows`, as flows this module
carries out by awaiting the aio SDKs.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from azure.core.credentials_async import AsyncTokenCredential
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.identity.aio import DefaultAzureCredential
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from bcjobs import JOBS_QUEUE, RESULTS_QUEUE
from bcjobs import _flows as flows
from bcjobs.common import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TABLE_PREFIX,
    EnqueueFailure,
    EnqueueResult,
    JobDetails,
    JobHandle,
    JobInput,
    JobPage,
    Progress,
    as_prepared,
)
from bcjobs.errors import BcJobsError
from bcjobs.results import ItemOutcome, JobReport, JobState
from bcjobs.rows import AuditedInteraction
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


class AsyncJobsClient(flows.JobsClientBase):
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
        self._closers = [queues.close, tables.close, *closers]
        self._attach(
            flows.StorageClients.of(queues, tables, table_prefix, jobs_queue, results_queue), max_concurrency
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
        client._closers = [queues.close, tables.close]
        client._attach(
            flows.StorageClients.of(queues, tables, table_prefix, jobs_queue, results_queue), max_concurrency
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
        items_table: TableClient | None = None,
    ) -> Self:
        """A client over SDK clients the caller built and closes (queue clients without an encode policy).

        Without `items_table` (`{prefix}jobitems`), `items()` of a job whose row says `itemsTruncated` raises
        BcJobsError.
        """
        client = cls.__new__(cls)
        client._closers = []
        storage = flows.StorageClients(jobs_queue, results_queue, jobs_table, audit_table, items_table)
        client._attach(storage, max_concurrency)
        return client

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
        await flows.carry_out_async(flows.create_queues(self._storage))

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
        tally = flows.Tally(on_progress)
        work = iter(enumerate(jobs))  # one shared iterator: each job is taken by exactly one worker
        async with asyncio.TaskGroup() as group:
            for _ in range(max_concurrency or self._max_concurrency):
                group.create_task(self._send_each(work, tally))
        return tally.result

    async def _send_each(self, work: Iterable[tuple[int, JobInput]], tally: flows.Tally) -> None:
        for index, job in work:
            prepared = tally.prepare(index, job)
            if prepared is None:
                continue
            try:
                handle = await self.send(prepared)
            except BcJobsError as exc:
                tally.failed(index, prepared.job_id, exc)
            else:
                tally.record(index, handle)

    async def send(self, prepared: PreparedJob) -> JobHandle:
        """Send a job `bcjobs.submit.prepare` returned (its text as it is: already base64)."""
        return await flows.carry_out_async(flows.send(self._storage, prepared))

    # -- reading the jobs table ------------------------------------------------------------------------------

    async def get(self, job_id: str, *, interactions: bool = False) -> JobDetails | None:
        """The job's report from the jobs Table (None until the product has seen it), with its interactions
        (the BC requests it made, oldest first) when asked for."""
        return await flows.carry_out_async(flows.get(self._storage, job_id, with_interactions=interactions))

    async def interactions(self, job_id: str) -> builtins.list[AuditedInteraction]:
        """The job's BC requests from the audit table, in the order they were made (empty when none)."""
        return await flows.carry_out_async(flows.interactions(self._storage, job_id))

    async def items(self, job: str | JobReport) -> builtins.list[ItemOutcome]:
        """Every item outcome of a batch job, in operation order: `result.items` as the job row has it, or, when
        the row says `itemsTruncated` (it then keeps only counts and the first failing items), all of them from
        the `{prefix}jobitems` table. Pass the report you already have (`get`, `wait`, a result) to skip reading
        the row again; empty for a job that is not there yet or has no items."""
        return await flows.carry_out_async(flows.items(self._storage, job))

    async def list_page(
        self,
        state: JobState | str | None = None,
        since: datetime | None = None,
        *,
        page_size: int = 100,
        continuation_token: str | None = None,
        connection: str | None = None,
    ) -> JobPage:
        """One page of jobs (state, updated at or after `since`, of one `connection`); pass `continuation_token`
        on for the next.

        Jobs come in job-id order (the table's key order); a page may hold fewer than `page_size` jobs even
        when more follow (Table Storage pages by rows scanned). ValueError for a token that is not ours.
        """
        return await flows.carry_out_async(
            flows.list_page(self._storage, state, since, page_size, continuation_token, connection)
        )

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
        return await flows.carry_out_async(
            flows.wait(self._storage, job_id, timeout, poll, max_poll, on_poll)
        )

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
            self._storage.results_queue,
            follow=follow,
            visibility_timeout=visibility_timeout,
            batch_size=batch_size,
            idle_timeout=idle_timeout,
            poll=poll,
            max_poll=max_poll,
        )

    async def peek_results(self, max_messages: int = flows.PEEK_MAX) -> builtins.list[JobReport]:
        """The first reports on `bc-results` (at most 32), left there and visible to other consumers."""
        return await flows.carry_out_async(flows.peek_results(self._storage.results_queue, max_messages))

    async def list(
        self,
        state: JobState | str | None = None,
        since: datetime | None = None,
        *,
        limit: int | None = None,
        page_size: int = 100,
        connection: str | None = None,
    ) -> AsyncIterator[JobReport]:
        """Every job of `state` updated at or after `since` (of one `connection`; all pages, job-id order), at
        most `limit`."""
        listing = flows.Listing(limit)
        while listing.more:
            page = await self.list_page(
                state, since, page_size=page_size, continuation_token=listing.token, connection=connection
            )
            for report in listing.take(page):
                yield report


class AsyncResultMessage(flows.ResultMessageBase):
    """One report taken off `bc-results`, hidden from other consumers until completed or abandoned.

    `async with item as report:` completes it when the block ends normally and abandons it when it raises;
    otherwise the stream completes it when the next one is asked for.
    """

    async def complete(self) -> None:
        """Delete the message: it will not be handed out again. ResultNotCompletedError if it is too late."""
        await flows.carry_out_async(self._complete())

    async def abandon(self, delay: int = 0) -> None:
        """Make the message visible again after `delay` seconds, for this or another consumer."""
        await flows.carry_out_async(self._abandon(delay))

    async def __aenter__(self) -> JobReport:
        return self.report

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            await self.complete()
        else:
            await self.abandon()


class AsyncResultStream(flows.ResultStreamBase[AsyncResultMessage]):
    """Iterates `bc-results` (`async for`); at most one handed-out result is pending at a time.

    Asking for the next result completes the previous one unless the caller settled it; `aclose()` or
    `async with stream:` completes the last on a normal exit, abandons it on an exception, and gives back
    what was received but not handed out.
    """

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> AsyncResultMessage:
        item = await flows.carry_out_async(self._next())
        if item is None:
            raise StopAsyncIteration
        return item

    async def aclose(self, *, abandon: bool = False) -> None:
        """Complete (or abandon) the pending result and give back the ones received but not handed out."""
        await flows.carry_out_async(self._close(abandon=abandon))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose(abandon=exc_type is not None)

    def _wrap(self, message: QueueMessage, report: JobReport) -> AsyncResultMessage:
        return AsyncResultMessage(self._queue, message, report)
