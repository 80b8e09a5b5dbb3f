"""The synchronous client for apps: send BC jobs, read their state, wait for them, take results off `bc-results`.

    from bcjobs.client import JobsClient

    with JobsClient.from_connection_string(conn_str) as jobs:         # local / Azurite
        handle = jobs.enqueue({"operation": "get", "entitySet": "customers", "id": "..."})
        report = jobs.wait(handle.job_id, timeout=120)

    jobs = JobsClient("https://acct.queue.core.windows.net", "https://acct.table.core.windows.net")
    # Azure: DefaultAzureCredential; roles in bcjobs/README.md

Messages are sent as the text `bcjobs.wire.encode` returns (already base64) through a queue client without an
encode policy: the product's trigger base64-decodes the text itself. Importable without the Functions runtime.
The async twin is `bcjobs.aio.AsyncJobsClient`. What the client does is in `bcjobs._flows`, as flows this module
carries out with blocking SDK calls.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from azure.core.credentials import TokenCredential
from azure.data.tables import TableServiceClient
from azure.identity import DefaultAzureCredential
from azure.storage.queue import QueueMessage, QueueServiceClient

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
    "EnqueueFailure",
    "EnqueueResult",
    "JobDetails",
    "JobHandle",
    "JobPage",
    "JobsClient",
    "ResultMessage",
    "ResultStream",
]


class JobsClient(flows.JobsClientBase):
    """Send jobs to `bc-jobs`, read the jobs Table, take reports off `bc-results` (Azure Storage, sync SDKs).

    `credential` defaults to DefaultAzureCredential (closed with the client); `client_options` go to the Azure
    SDK clients (e.g. `connection_timeout`, `retry_total`). The client is thread-safe, like the SDK clients.
    """

    def __init__(
        self,
        queue_service_uri: str,
        table_service_uri: str,
        credential: TokenCredential | None = None,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        jobs_queue: str = JOBS_QUEUE,
        results_queue: str = RESULTS_QUEUE,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        **client_options: Any,
    ) -> None:
        closers: list[Callable[[], None]] = []
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

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the SDK clients (and the default credential when the client created it)."""
        closers, self._closers = self._closers, []
        for close in closers:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def create_queues(self) -> None:
        """Create `bc-jobs` and `bc-results` when missing (local development; in Azure the deployment does)."""
        flows.carry_out(flows.create_queues(self._storage))

    # -- sending ---------------------------------------------------------------------------------------------

    def enqueue(self, job: JobInput) -> JobHandle:
        """Validate `job` as the trigger will (InvalidJobError otherwise), give it an id if it has none, send it."""
        return self.send(as_prepared(job))

    def enqueue_many(
        self,
        jobs: Iterable[JobInput],
        *,
        max_concurrency: int | None = None,
        on_progress: Progress | None = None,
    ) -> EnqueueResult:
        """Send many jobs, at most `max_concurrency` at a time; a bad or unsent job never stops the others.

        Each job's outcome (JobHandle or EnqueueFailure) is in the result by input position, and is passed to
        `on_progress(index, outcome)` in the calling thread as it happens.
        """
        limit = max_concurrency or self._max_concurrency
        tally = flows.Tally(on_progress)
        pending: dict[Future[JobHandle], tuple[int, str]] = {}
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="bcjobs-send") as pool:
            for index, job in enumerate(jobs):
                prepared = tally.prepare(index, job)
                if prepared is None:
                    continue
                if len(pending) >= limit:
                    _collect(pending, tally)
                pending[pool.submit(self.send, prepared)] = (index, prepared.job_id)
            while pending:
                _collect(pending, tally)
        return tally.result

    def send(self, prepared: PreparedJob) -> JobHandle:
        """Send a job `bcjobs.submit.prepare` returned (its text as it is: already base64)."""
        return flows.carry_out(flows.send(self._storage, prepared))

    # -- reading the jobs table ------------------------------------------------------------------------------

    def get(self, job_id: str, *, interactions: bool = False) -> JobDetails | None:
        """The job's report from the jobs Table (None until the product has seen it), with its interactions
        (the BC requests it made, oldest first) when asked for."""
        return flows.carry_out(flows.get(self._storage, job_id, with_interactions=interactions))

    def interactions(self, job_id: str) -> builtins.list[AuditedInteraction]:
        """The job's BC requests from the audit table, in the order they were made (empty when none)."""
        return flows.carry_out(flows.interactions(self._storage, job_id))

    def items(self, job: str | JobReport) -> builtins.list[ItemOutcome]:
        """Every item outcome of a batch job, in operation order: `result.items` as the job row has it, or, when
        the row says `itemsTruncated` (it then keeps only counts and the first failing items), all of them from
        the `{prefix}jobitems` table. Pass the report you already have (`get`, `wait`, a result) to skip reading
        the row again; empty for a job that is not there yet or has no items."""
        return flows.carry_out(flows.items(self._storage, job))

    def list_page(
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
        when more follow (Table Storage pages by rows scanned).
        """
        return flows.carry_out(
            flows.list_page(self._storage, state, since, page_size, continuation_token, connection)
        )

    # -- waiting ---------------------------------------------------------------------------------------------

    def wait(
        self,
        job_id: str,
        timeout: float = 300.0,
        poll: float = 1.0,
        *,
        max_poll: float = 10.0,
        on_poll: Callable[[JobReport | None], None] | None = None,
    ) -> JobReport:
        """Poll the job until it reaches a terminal state and return that report; WaitTimeoutError at the deadline.

        Polls start `poll` seconds apart and back off to `max_poll`; `on_poll` sees every report (None while
        the product has not recorded the job yet).
        """
        return flows.carry_out(flows.wait(self._storage, job_id, timeout, poll, max_poll, on_poll))

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
    ) -> ResultStream:
        """Reports from `bc-results`, each deleted only once the caller is done with it (see ResultStream).

        Without `follow` the stream ends when the queue is empty; with it, it waits for more (polling with
        backoff up to `max_poll`) until `idle_timeout` passes without a message, or forever when None.
        `visibility_timeout` is how long a handed-out result stays hidden from other consumers.
        """
        return ResultStream(
            self._storage.results_queue,
            follow=follow,
            visibility_timeout=visibility_timeout,
            batch_size=batch_size,
            idle_timeout=idle_timeout,
            poll=poll,
            max_poll=max_poll,
        )

    def peek_results(self, max_messages: int = flows.PEEK_MAX) -> builtins.list[JobReport]:
        """The first reports on `bc-results` (at most 32), left there and visible to other consumers."""
        return flows.carry_out(flows.peek_results(self._storage.results_queue, max_messages))

    def list(
        self,
        state: JobState | str | None = None,
        since: datetime | None = None,
        *,
        limit: int | None = None,
        page_size: int = 100,
        connection: str | None = None,
    ) -> Iterator[JobReport]:
        """Every job of `state` updated at or after `since` (of one `connection`; all pages, job-id order), at
        most `limit`."""
        listing = flows.Listing(limit)
        while listing.more:
            page = self.list_page(
                state, since, page_size=page_size, continuation_token=listing.token, connection=connection
            )
            yield from listing.take(page)


def _collect(pending: dict[Future[JobHandle], tuple[int, str]], tally: flows.Tally) -> None:
    """Wait for at least one send to finish and record each finished one; an error not of the package propagates."""
    done, _ = wait(pending, return_when=FIRST_COMPLETED)
    for future in done:
        index, job_id = pending.pop(future)
        error = future.exception()
        if error is None:
            tally.record(index, future.result())
        elif isinstance(error, BcJobsError):
            tally.failed(index, job_id, error)
        else:
            raise error


class ResultMessage(flows.ResultMessageBase):
    """One report taken off `bc-results`, hidden from other consumers until it is completed or abandoned.

    Use it as a context manager (completed when the block ends normally, abandoned when it raises), call
    `complete()` / `abandon()`, or leave it to the stream, which completes it when you ask for the next one.
    """

    def complete(self) -> None:
        """Delete the message: it will not be handed out again. ResultNotCompletedError if it is too late."""
        flows.carry_out(self._complete())

    def abandon(self, delay: int = 0) -> None:
        """Make the message visible again after `delay` seconds, for this or another consumer."""
        flows.carry_out(self._abandon(delay))

    def __enter__(self) -> JobReport:
        return self.report

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.complete()
        else:
            self.abandon()


class ResultStream(flows.ResultStreamBase[ResultMessage], Iterator[ResultMessage]):
    """Iterates `bc-results`; at most one handed-out result is pending at a time.

    Asking for the next result completes (deletes) the previous one unless the caller settled it already, so
    `for item in stream: handle(item.report)` deletes each report after `handle` returned. Leave the stream
    with `close()` or `with stream:` — the last result is completed on a normal exit and abandoned on an
    exception; messages received but not handed out are made visible again at once.
    """

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> ResultMessage:
        item = flows.carry_out(self._next())
        if item is None:
            raise StopIteration
        return item

    def close(self, *, abandon: bool = False) -> None:
        """Complete (or abandon) the pending result and give back the ones received but not handed out."""
        flows.carry_out(self._close(abandon=abandon))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(abandon=exc_type is not None)

    def _wrap(self, message: QueueMessage, report: JobReport) -> ResultMessage:
        return ResultMessage(self._queue, message, report)
