"""The synchronous client for apps: send BC jobs, read their state, wait for them, take results off `bc-results`.

    from bcjobs.client import JobsClient

    with JobsClient.from_connection_string(conn_str) as jobs:         # local / Azurite
        handle = jobs.enqueue({"operation": "get", "entitySet": "customers", "id": "..."})
        report = jobs.wait(handle.job_id, timeout=120)

    jobs = JobsClient("https://acct.queue.core.windows.net", "https://acct.table.core.windows.net")
    # Azure: DefaultAzureCredential; roles in bcjobs/README.md

Messages are sent as the text `bcjobs.wire.encode` returns (already base64) through a queue client without an
encode policy: the product's trigger base64-decodes the text itself. Importable without the Functions runtime.
The async twin is `bcjobs.aio.AsyncJobsClient`.
"""

from __future__ import annotations

import builtins
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.identity import DefaultAzureCredential
from azure.storage.queue import QueueClient, QueueMessage, QueueServiceClient

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
    "EnqueueFailure",
    "EnqueueResult",
    "JobDetails",
    "JobHandle",
    "JobPage",
    "JobsClient",
    "ResultMessage",
    "ResultStream",
]

logger = logging.getLogger("bcjobs")


class JobsClient:
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
        self._setup(
            QueueServiceClient(queue_service_uri, credential=credential, **client_options),
            TableServiceClient(endpoint=table_service_uri, credential=credential, **client_options),
            table_prefix=table_prefix,
            jobs_queue=jobs_queue,
            results_queue=results_queue,
            max_concurrency=max_concurrency,
            closers=closers,
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
        client = cls.__new__(cls)
        client._setup(
            QueueServiceClient.from_connection_string(conn_str, **client_options),
            TableServiceClient.from_connection_string(conn_str, **client_options),
            table_prefix=table_prefix,
            jobs_queue=jobs_queue,
            results_queue=results_queue,
            max_concurrency=max_concurrency,
            closers=[],
        )
        return client

    def _setup(
        self,
        queues: QueueServiceClient,
        tables: TableServiceClient,
        *,
        table_prefix: str,
        jobs_queue: str,
        results_queue: str,
        max_concurrency: int,
        closers: builtins.list[Callable[[], None]],
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._queues, self._tables = queues, tables
        self._jobs_queue = queues.get_queue_client(jobs_queue)
        self._results_queue = queues.get_queue_client(results_queue)
        self._jobs_table = tables.get_table_client(jobs_table_name(table_prefix))
        self._audit_table = tables.get_table_client(audit_table_name(table_prefix))
        self._max_concurrency = max_concurrency
        self._closers = [self._queues.close, self._tables.close, *closers]

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
        for queue in (self._jobs_queue, self._results_queue):
            try:
                queue.create_queue()
            except ResourceExistsError:
                continue
            except AzureError as exc:
                raise storage_error(f"creating queue {queue.queue_name}", exc) from exc

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
        result = EnqueueResult()

        def record(index: int, outcome: JobHandle | EnqueueFailure) -> None:
            if isinstance(outcome, JobHandle):
                result.sent[index] = outcome
            else:
                result.failed[index] = outcome
            if on_progress is not None:
                on_progress(index, outcome)

        def collect(done: Iterable[Future[JobHandle]]) -> None:
            for future in done:
                index, job_id = pending.pop(future)
                error = future.exception()
                if error is None:
                    record(index, future.result())
                elif isinstance(error, BcJobsError):
                    record(index, EnqueueFailure(index, job_id, error))
                else:
                    raise error

        pending: dict[Future[JobHandle], tuple[int, str]] = {}
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="bcjobs-send") as pool:
            for index, job in enumerate(jobs):
                try:
                    prepared = as_prepared(job)
                except InvalidJobError as exc:
                    record(index, EnqueueFailure(index, exc.job_id, exc))
                    continue
                if len(pending) >= limit:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    collect(done)
                pending[pool.submit(self.send, prepared)] = (index, prepared.job_id)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                collect(done)
        return result

    def send(self, prepared: PreparedJob) -> JobHandle:
        """Send a job `bcjobs.submit.prepare` returned (its text as it is: already base64)."""
        try:
            message = self._jobs_queue.send_message(prepared.text)
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

    def get(self, job_id: str, *, interactions: bool = False) -> JobDetails | None:
        """The job's report from the jobs Table (None until the product has seen it), with its interactions
        (the BC requests it made, oldest first) when asked for."""
        if not re.fullmatch(JOB_ID_PATTERN, job_id):
            return None
        try:
            row = self._jobs_table.get_entity(job_id, JOB_ROW)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise storage_error(f"reading job {job_id}", exc) from exc
        report = report_from_row(dict(row))
        log = self.interactions(job_id) if interactions else None
        return JobDetails.model_validate({**report.model_dump(), "interactions": log})

    def interactions(self, job_id: str) -> builtins.list[Interaction]:
        """The job's BC requests from the audit table, in the order they were made (empty when none)."""
        if not re.fullmatch(JOB_ID_PATTERN, job_id):
            return []
        try:
            rows = builtins.list(
                self._audit_table.query_entities("PartitionKey eq @job", parameters={"job": job_id})
            )
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise storage_error(f"reading the interactions of job {job_id}", exc) from exc
        return [interaction_from_row(dict(row)) for row in sorted(rows, key=lambda row: str(row["RowKey"]))]

    def list_page(
        self,
        state: JobState | str | None = None,
        since: datetime | None = None,
        *,
        page_size: int = 100,
        continuation_token: str | None = None,
    ) -> JobPage:
        """One page of jobs (state, updated at or after `since`); pass `continuation_token` on for the next.

        Jobs come in job-id order (the table's key order); a page may hold fewer than `page_size` jobs even
        when more follow (Table Storage pages by rows scanned).
        """
        query, parameters = list_query(state, since)
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        token = decode_continuation(continuation_token)
        pages = self._jobs_table.query_entities(query, parameters=parameters, results_per_page=size).by_page(
            continuation_token=token  # type: ignore[arg-type]  # typed str, but the Table SDK's token is a dict
        )
        try:
            rows = builtins.list(next(pages, []))
        except ResourceNotFoundError:
            return JobPage([], None)
        except AzureError as exc:
            raise storage_error("listing jobs", exc) from exc
        next_token = encode_continuation(getattr(pages, "continuation_token", None))
        return JobPage([report_from_row(dict(row)) for row in rows], next_token)

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
        deadline = time.monotonic() + timeout
        last: JobReport | None = None
        for delay in poll_delays(poll, cap=max_poll):
            last = self.get(job_id)
            if on_poll is not None:
                on_poll(last)
            if last is not None and last.state in TERMINAL_STATES:
                return last
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(delay, remaining))
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
    ) -> ResultStream:
        """Reports from `bc-results`, each deleted only once the caller is done with it (see ResultStream).

        Without `follow` the stream ends when the queue is empty; with it, it waits for more (polling with
        backoff up to `max_poll`) until `idle_timeout` passes without a message, or forever when None.
        `visibility_timeout` is how long a handed-out result stays hidden from other consumers.
        """
        return ResultStream(
            self._results_queue,
            follow=follow,
            visibility_timeout=visibility_timeout,
            batch_size=batch_size,
            idle_timeout=idle_timeout,
            poll=poll,
            max_poll=max_poll,
        )

    def list(
        self,
        state: JobState | str | None = None,
        since: datetime | None = None,
        *,
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[JobReport]:
        """Every job of `state` updated at or after `since` (all pages, job-id order), at most `limit`."""
        token: str | None = None
        count = 0
        while True:
            page = self.list_page(state, since, page_size=page_size, continuation_token=token)
            for report in page.jobs:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield report
            token = page.continuation_token
            if token is None:
                return


class ResultMessage:
    """One report taken off `bc-results`, hidden from other consumers until it is completed or abandoned.

    Use it as a context manager (completed when the block ends normally, abandoned when it raises), call
    `complete()` / `abandon()`, or leave it to the stream, which completes it when you ask for the next one.
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

    def complete(self) -> None:
        """Delete the message: it will not be handed out again. ResultNotCompletedError if it is too late."""
        if self.settled:
            return
        try:
            self._queue.delete_message(self._message.id, self._message.pop_receipt)
        except ResourceNotFoundError:
            self.settled = True
            raise ResultNotCompletedError(
                f"result of job {self.report.job_id} could not be deleted: its visibility timeout ran out and "
                "it may be handed out again (raise visibility_timeout)"
            ) from None
        except AzureError as exc:
            raise storage_error(f"deleting the result of job {self.report.job_id}", exc) from exc
        self.settled = True

    def abandon(self, delay: int = 0) -> None:
        """Make the message visible again after `delay` seconds, for this or another consumer."""
        if self.settled:
            return
        self.settled = True
        try:
            self._queue.update_message(self._message.id, self._message.pop_receipt, visibility_timeout=delay)
        except ResourceNotFoundError:
            return  # already visible again (timeout ran out): nothing to give back
        except AzureError as exc:
            raise storage_error(f"releasing the result of job {self.report.job_id}", exc) from exc

    def __enter__(self) -> JobReport:
        return self.report

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.complete()
        else:
            self.abandon()


class ResultStream(Iterator[ResultMessage]):
    """Iterates `bc-results`; at most one handed-out result is pending at a time.

    Asking for the next result completes (deletes) the previous one unless the caller settled it already, so
    `for item in stream: handle(item.report)` deletes each report after `handle` returned. Leave the stream
    with `close()` or `with stream:` — the last result is completed on a normal exit and abandoned on an
    exception; messages received but not handed out are made visible again at once.
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
        self._pending: ResultMessage | None = None
        self._closed = False
        self.skipped = 0  # messages that were not job reports (left on the queue)

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> ResultMessage:
        self._settle_pending()
        if self._closed:
            raise StopIteration
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
                self._pending = ResultMessage(self._queue, message, report)
                return self._pending
            if self._receive():
                delays = poll_delays(self._poll, cap=self._max_poll)
                idle_since = time.monotonic()
                continue
            if not self._follow:
                raise StopIteration
            waited = time.monotonic() - idle_since
            if self._idle is not None and waited >= self._idle:
                raise StopIteration
            delay = next(delays)
            time.sleep(delay if self._idle is None else min(delay, max(self._idle - waited, 0.0)))

    def _receive(self) -> bool:
        try:
            messages = self._queue.receive_messages(
                messages_per_page=self._batch, max_messages=self._batch, visibility_timeout=self._visibility
            )
            self._buffer.extend(messages)
        except AzureError as exc:
            raise storage_error(f"receiving from {self._queue.queue_name}", exc) from exc
        return bool(self._buffer)

    def _settle_pending(self, *, abandon: bool = False) -> None:
        pending, self._pending = self._pending, None
        if pending is None or pending.settled:
            return
        if abandon:
            pending.abandon()
            return
        try:
            pending.complete()
        except ResultNotCompletedError as exc:
            logger.warning("%s", exc)

    def close(self, *, abandon: bool = False) -> None:
        """Complete (or abandon) the pending result and give back the ones received but not handed out."""
        if self._closed:
            return
        self._closed = True
        self._settle_pending(abandon=abandon)
        while self._buffer:
            message = self._buffer.popleft()
            try:
                self._queue.update_message(message.id, message.pop_receipt, visibility_timeout=0)
            except AzureError:
                logger.warning("results message %s not released; visible again after its timeout", message.id)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(abandon=exc_type is not None)
