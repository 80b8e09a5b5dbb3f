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
its managed identity and bounded timeouts). What the client does is in `bcjobs.core`, as flows this module
carries out by awaiting the aio SDKs.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.identity.aio import DefaultAzureCredential
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from bcjobs import JOBS_QUEUE, RESULTS_QUEUE
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
from bcjobs.core import (
    Call,
    ClientCore,
    FirstPage,
    Flow,
    Listing,
    MessageCore,
    Rows,
    Step,
    Stepper,
    StreamCore,
    Tally,
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

R = TypeVar("R")


async def _run(flow: Flow[R]) -> R:
    """Carry a core flow out by awaiting the aio SDK calls; its result, or the error it raised."""
    stepper = Stepper(flow)
    while stepper.step is not None:
        try:
            answer = await _perform(stepper.step)
        except AzureError as exc:
            stepper.fail(exc)
        else:
            stepper.answer(answer)
    return stepper.result


async def _perform(step: Step) -> Any:
    if isinstance(step, Call):
        return await step.action()
    if isinstance(step, Rows):
        async for item in step.action():
            step.into.append(item)
    elif isinstance(step, FirstPage):
        page = await anext(step.pages, None)
        step.into.extend([item async for item in page] if page is not None else [])
    else:
        await asyncio.sleep(step.seconds)
    return None


class AsyncJobsClient(ClientCore[QueueClient, TableClient]):
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
        self._connect(queues, tables, table_prefix, jobs_queue, results_queue, max_concurrency)

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
        client._connect(queues, tables, table_prefix, jobs_queue, results_queue, max_concurrency)
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
        client._setup(
            jobs_queue=jobs_queue,
            results_queue=results_queue,
            jobs_table=jobs_table,
            audit_table=audit_table,
            max_concurrency=max_concurrency,
            items_table=items_table,
        )
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
        await _run(self._create_queues())

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
        tally = Tally(on_progress)
        work = iter(enumerate(jobs))  # one shared iterator: each job is taken by exactly one worker
        async with asyncio.TaskGroup() as group:
            for _ in range(max_concurrency or self._max_concurrency):
                group.create_task(self._send_each(work, tally))
        return tally.result

    async def _send_each(self, work: Iterable[tuple[int, JobInput]], tally: Tally) -> None:
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
        return await _run(self._send(prepared))

    # -- reading the jobs table ------------------------------------------------------------------------------

    async def get(self, job_id: str, *, interactions: bool = False) -> JobDetails | None:
        """The job's report from the jobs Table (None until the product has seen it), with its interactions
        (the BC requests it made, oldest first) when asked for."""
        return await _run(self._get(job_id, interactions=interactions))

    async def interactions(self, job_id: str) -> builtins.list[AuditedInteraction]:
        """The job's BC requests from the audit table, in the order they were made (empty when none)."""
        return await _run(self._interactions(job_id))

    async def items(self, job: str | JobReport) -> builtins.list[ItemOutcome]:
        """Every item outcome of a batch job, in operation order: `result.items` as the job row has it, or, when
        the row says `itemsTruncated` (it then keeps only counts and the first failing items), all of them from
        the `{prefix}jobitems` table. Pass the report you already have (`get`, `wait`, a result) to skip reading
        the row again; empty for a job that is not there yet or has no items."""
        return await _run(self._items(job))

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
        return await _run(self._list_page(state, since, page_size, continuation_token))

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
        return await _run(self._wait(job_id, timeout, poll, max_poll, on_poll))

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
        listing = Listing(limit)
        while listing.more:
            page = await self.list_page(state, since, page_size=page_size, continuation_token=listing.token)
            for report in listing.take(page):
                yield report


class AsyncResultMessage(MessageCore[QueueClient]):
    """One report taken off `bc-results`, hidden from other consumers until completed or abandoned.

    `async with item as report:` completes it when the block ends normally and abandons it when it raises;
    otherwise the stream completes it when the next one is asked for.
    """

    async def complete(self) -> None:
        """Delete the message: it will not be handed out again. ResultNotCompletedError if it is too late."""
        await _run(self._complete())

    async def abandon(self, delay: int = 0) -> None:
        """Make the message visible again after `delay` seconds, for this or another consumer."""
        await _run(self._abandon(delay))

    async def __aenter__(self) -> JobReport:
        return self.report

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            await self.complete()
        else:
            await self.abandon()


class AsyncResultStream(StreamCore[QueueClient, AsyncResultMessage]):
    """Iterates `bc-results` (`async for`); at most one handed-out result is pending at a time.

    Asking for the next result completes the previous one unless the caller settled it; `aclose()` or
    `async with stream:` completes the last on a normal exit, abandons it on an exception, and gives back
    what was received but not handed out.
    """

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> AsyncResultMessage:
        item = await _run(self._next())
        if item is None:
            raise StopAsyncIteration
        return item

    async def aclose(self, *, abandon: bool = False) -> None:
        """Complete (or abandon) the pending result and give back the ones received but not handed out."""
        await _run(self._close(abandon=abandon))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose(abandon=exc_type is not None)

    def _wrap(self, message: QueueMessage, report: JobReport) -> AsyncResultMessage:
        return AsyncResultMessage(self._queue, message, report)
