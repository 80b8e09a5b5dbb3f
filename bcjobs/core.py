"""The clients' sans-I/O core: every rule of the sync and async clients, written once, doing no I/O itself.

Each operation is a *flow*: a generator that yields the storage calls it needs as steps (`Call`, `Rows`,
`FirstPage`, `Sleep`) and is sent each answer back, or has the SDK's error thrown in at the `yield`. The flow builds
the messages and queries, interprets rows and reports into results and turns SDK failures into the package's
errors. The shells only carry steps out: `bcjobs.client` calls the sync SDKs and `time.sleep`, `bcjobs.aio` awaits
the aio SDKs and `asyncio.sleep` (the pattern of httpx's auth flows, one generator driven by a sync and an async
loop). What both return and the SDK-independent helpers are in `bcjobs.common`.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Generator, MutableSequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueMessage

from bcjobs.common import (
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
    items_table_name,
    jobs_table_name,
    list_query,
    poll_delays,
    report_from_message,
    storage_error,
)
from bcjobs.errors import BcJobsError, InvalidJobError, ResultNotCompletedError, WaitTimeoutError
from bcjobs.models import JOB_ID_PATTERN
from bcjobs.results import TERMINAL_STATES, ItemOutcome, JobReport, JobState
from bcjobs.rows import JOB_ROW, AuditedInteraction, interaction_from_row, item_from_row, report_from_row
from bcjobs.submit import PreparedJob

logger = logging.getLogger("bcjobs")

R = TypeVar("R")

# -- steps: what a flow asks its shell to do -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """Call an SDK method and send back what it returns (the async shell awaits it)."""

    action: Callable[[], Any]


@dataclass(frozen=True, slots=True)
class Rows:
    """Call an SDK method that returns a pager and append every item it yields to `into`, as they come."""

    action: Callable[[], Any]
    into: MutableSequence[Any]


@dataclass(frozen=True, slots=True)
class FirstPage:
    """Append the items of the first page of `pages` (an SDK `by_page()` pager) to `into`; none when it has none."""

    pages: Any
    into: MutableSequence[Any]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait `seconds` before going on."""

    seconds: float


Step = Call | Rows | FirstPage | Sleep
Flow = Generator[Step, Any, R]


class Stepper(Generic[R]):
    """Walks a flow for a shell: `step` is what to carry out next, None once the flow has returned `result`."""

    def __init__(self, flow: Flow[R]) -> None:
        self._flow = flow
        self.step: Step | None = None
        self.result: R
        self._resume(partial(next, flow))

    def answer(self, value: Any) -> None:
        """Send the step's answer to the flow."""
        self._resume(partial(self._flow.send, value))

    def fail(self, error: AzureError) -> None:
        """Throw the step's SDK error into the flow (which turns it into a result or one of the package's errors)."""
        self._resume(partial(self._flow.throw, error))

    def _resume(self, advance: Callable[[], Step]) -> None:
        try:
            self.step = advance()
        except StopIteration as stop:
            self.step = None
            self.result = stop.value


# -- the SDK clients as the flows see them (sync or aio: an aio method returns an awaitable) -------------------


class QueueLike(Protocol):
    """The queue client methods the flows call."""

    @property
    def queue_name(self) -> str: ...

    def create_queue(self) -> Any: ...

    def send_message(self, content: Any) -> Any: ...

    def delete_message(self, message: Any, pop_receipt: Any) -> Any: ...

    def update_message(self, message: Any, pop_receipt: Any, *, visibility_timeout: int) -> Any: ...

    def receive_messages(
        self, *, messages_per_page: int, max_messages: int, visibility_timeout: int
    ) -> Any: ...


class TableLike(Protocol):
    """The table client methods the flows call."""

    def get_entity(self, partition_key: str, row_key: str) -> Any: ...

    def query_entities(
        self, query_filter: str, *, parameters: dict[str, Any], results_per_page: int | None = None
    ) -> Any: ...


Q = TypeVar("Q", bound=QueueLike)
T = TypeVar("T", bound=TableLike)
Q_co = TypeVar("Q_co", covariant=True)
T_co = TypeVar("T_co", covariant=True)


class QueueServiceLike(Protocol[Q_co]):
    """A queue service client: hands out queue clients."""

    def get_queue_client(self, queue: str) -> Q_co: ...


class TableServiceLike(Protocol[T_co]):
    """A table service client: hands out table clients."""

    def get_table_client(self, table_name: str) -> T_co: ...


# -- the client ------------------------------------------------------------------------------------------------


class ClientCore(Generic[Q, T]):
    """Everything JobsClient and AsyncJobsClient do, as flows over their SDK clients."""

    _jobs_queue: Q
    _results_queue: Q
    _jobs_table: T
    _audit_table: T
    _items_table: T | None
    _max_concurrency: int

    def _connect(
        self,
        queues: QueueServiceLike[Q],
        tables: TableServiceLike[T],
        table_prefix: str,
        jobs_queue: str,
        results_queue: str,
        max_concurrency: int,
    ) -> None:
        """Take the deployment's queues and tables from the service clients."""
        self._setup(
            jobs_queue=queues.get_queue_client(jobs_queue),
            results_queue=queues.get_queue_client(results_queue),
            jobs_table=tables.get_table_client(jobs_table_name(table_prefix)),
            audit_table=tables.get_table_client(audit_table_name(table_prefix)),
            items_table=tables.get_table_client(items_table_name(table_prefix)),
            max_concurrency=max_concurrency,
        )

    def _setup(
        self,
        *,
        jobs_queue: Q,
        results_queue: Q,
        jobs_table: T,
        audit_table: T,
        max_concurrency: int,
        items_table: T | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._jobs_queue, self._results_queue = jobs_queue, results_queue
        self._jobs_table, self._audit_table, self._items_table = jobs_table, audit_table, items_table
        self._max_concurrency = max_concurrency

    def _create_queues(self) -> Flow[None]:
        for queue in (self._jobs_queue, self._results_queue):
            try:
                yield Call(queue.create_queue)
            except ResourceExistsError:
                continue
            except AzureError as exc:
                raise storage_error(f"creating queue {queue.queue_name}", exc) from exc

    def _send(self, prepared: PreparedJob) -> Flow[JobHandle]:
        queue = self._jobs_queue
        try:
            message = yield Call(partial(queue.send_message, prepared.text))
        except AzureError as exc:
            raise storage_error(f"sending job {prepared.job_id} to {queue.queue_name}", exc) from exc
        job = prepared.job
        return JobHandle(
            prepared.job_id, message.id, message.inserted_on, message.expires_on, job.correlation_id
        )

    def _get(self, job_id: str, *, interactions: bool) -> Flow[JobDetails | None]:
        if not re.fullmatch(JOB_ID_PATTERN, job_id):
            return None
        try:
            row = yield Call(partial(self._jobs_table.get_entity, job_id, JOB_ROW))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise storage_error(f"reading job {job_id}", exc) from exc
        report = report_from_row(dict(row))
        log = (yield from self._interactions(job_id)) if interactions else None
        return JobDetails.model_validate({**report.model_dump(), "interactions": log})

    def _interactions(self, job_id: str) -> Flow[list[AuditedInteraction]]:
        if not re.fullmatch(JOB_ID_PATTERN, job_id):
            return []
        query = partial(self._audit_table.query_entities, "PartitionKey eq @job", parameters={"job": job_id})
        rows: list[Any] = []
        try:
            yield Rows(query, rows)
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise storage_error(f"reading the interactions of job {job_id}", exc) from exc
        return [interaction_from_row(dict(row)) for row in sorted(rows, key=lambda row: str(row["RowKey"]))]

    def _items(self, job: str | JobReport) -> Flow[list[ItemOutcome]]:
        """Every item outcome of a batch job: the row's own list, or the items table's when the row says
        `itemsTruncated` (the product writes that table before such a row). A report given is not read again."""
        report = job if isinstance(job, JobReport) else (yield from self._get(job, interactions=False))
        if report is None or report.result is None:
            return []
        if not report.result.items_truncated:
            return list(report.result.items or [])
        kept = yield from self._kept_items(report.job_id)
        expected = (report.result.items_succeeded or 0) + (report.result.items_failed or 0)
        if len(kept) < expected:
            logger.warning("job %s: %d of its %d item outcomes found", report.job_id, len(kept), expected)
        return kept

    def _kept_items(self, job_id: str) -> Flow[list[ItemOutcome]]:
        table = self._items_table
        if table is None:
            raise BcJobsError(
                f"job {job_id} has more item outcomes than its row holds and this client has no items table "
                "(from_clients: pass items_table)"
            )
        query = partial(table.query_entities, "PartitionKey eq @job", parameters={"job": job_id})
        rows: list[Any] = []
        try:
            yield Rows(query, rows)
        except AzureError as exc:  # a missing table too: a row that says itemsTruncated has one behind it
            raise storage_error(f"reading the item outcomes of job {job_id}", exc) from exc
        return [item_from_row(dict(row)) for row in sorted(rows, key=lambda row: str(row["RowKey"]))]

    def _list_page(
        self,
        state: JobState | str | None,
        since: datetime | None,
        page_size: int,
        continuation_token: str | None,
    ) -> Flow[JobPage]:
        query, parameters = list_query(state, since)
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        token = decode_continuation(continuation_token)  # the Table SDK's token is a dict, though typed str
        pages = self._jobs_table.query_entities(query, parameters=parameters, results_per_page=size).by_page(
            continuation_token=token
        )
        rows: list[Any] = []
        try:
            yield FirstPage(pages, rows)
        except ResourceNotFoundError:
            return JobPage([], None)
        except AzureError as exc:
            raise storage_error("listing jobs", exc) from exc
        next_token = encode_continuation(getattr(pages, "continuation_token", None))
        return JobPage([report_from_row(dict(row)) for row in rows], next_token)

    def _wait(
        self,
        job_id: str,
        timeout: float,
        poll: float,
        max_poll: float,
        on_poll: Callable[[JobReport | None], None] | None,
    ) -> Flow[JobReport]:
        deadline = time.monotonic() + timeout
        last: JobReport | None = None
        for delay in poll_delays(poll, cap=max_poll):
            last = yield from self._get(job_id, interactions=False)
            if on_poll is not None:
                on_poll(last)
            if last is not None and last.state in TERMINAL_STATES:
                return last
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            yield Sleep(min(delay, remaining))
        raise WaitTimeoutError(job_id, timeout, last)


class Tally:
    """What `enqueue_many` has done so far: each outcome by input position, passed on to `on_progress`."""

    def __init__(self, on_progress: Progress | None) -> None:
        self.result = EnqueueResult()
        self._on_progress = on_progress

    def prepare(self, index: int, job: JobInput) -> PreparedJob | None:
        """The job ready to send, or None once its rejection is recorded."""
        try:
            return as_prepared(job)
        except InvalidJobError as exc:
            self.record(index, EnqueueFailure(index, exc.job_id, exc))
            return None

    def failed(self, index: int, job_id: str | None, error: BcJobsError) -> None:
        """A job that could not be sent."""
        self.record(index, EnqueueFailure(index, job_id, error))

    def record(self, index: int, outcome: JobHandle | EnqueueFailure) -> None:
        """A job's outcome: sent (its handle) or not (an EnqueueFailure)."""
        if isinstance(outcome, JobHandle):
            self.result.sent[index] = outcome
        else:
            self.result.failed[index] = outcome
        if self._on_progress is not None:
            self._on_progress(index, outcome)


class Listing:
    """Where `list` is: the token of the next page, and how many jobs it may still hand out (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit
        self.token: str | None = None
        self.more = limit != 0

    def take(self, page: JobPage) -> list[JobReport]:
        """The jobs of `page` to hand out; `more` says whether to ask for the next page."""
        jobs = page.jobs if self.left is None else page.jobs[: self.left]
        if self.left is not None:
            self.left -= len(jobs)
        self.token = page.continuation_token
        self.more = self.token is not None and self.left != 0
        return jobs


# -- results ---------------------------------------------------------------------------------------------------


class MessageCore(Generic[Q]):
    """A report taken off `bc-results` and its queue message; the flows that complete or abandon it."""

    def __init__(self, queue: Q, message: QueueMessage, report: JobReport) -> None:
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

    def _complete(self) -> Flow[None]:
        if self.settled:
            return
        message, job_id = self._message, self.report.job_id
        try:
            yield Call(partial(self._queue.delete_message, message.id, message.pop_receipt))
        except ResourceNotFoundError:
            self.settled = True
            raise ResultNotCompletedError(
                f"result of job {job_id} could not be deleted: its visibility timeout ran out and "
                "it may be handed out again (raise visibility_timeout)"
            ) from None
        except AzureError as exc:
            raise storage_error(f"deleting the result of job {job_id}", exc) from exc
        self.settled = True

    def _abandon(self, delay: int) -> Flow[None]:
        if self.settled:
            return
        self.settled = True
        message = self._message
        try:
            yield Call(
                partial(self._queue.update_message, message.id, message.pop_receipt, visibility_timeout=delay)
            )
        except ResourceNotFoundError:
            return  # already visible again (timeout ran out): nothing to give back
        except AzureError as exc:
            raise storage_error(f"releasing the result of job {self.report.job_id}", exc) from exc


M = TypeVar("M", bound=MessageCore[Any])


class StreamCore(Generic[Q, M]):
    """The state of a results stream and its flows; a shell wraps each handed-out message in its message type."""

    def __init__(
        self,
        queue: Q,
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
        self._pending: M | None = None
        self._closed = False
        self.skipped = 0  # messages that were not job reports (left on the queue)

    def _wrap(self, message: QueueMessage, report: JobReport) -> M:
        raise NotImplementedError

    def _next(self) -> Flow[M | None]:
        """The next result to hand out (the previous one settled first); None when the stream ends."""
        yield from self._settle_pending()
        if self._closed:
            return None
        delays = poll_delays(self._poll, cap=self._max_poll)
        idle_since = time.monotonic()
        while True:
            item = self._take()
            if item is not None:
                return item
            if (yield from self._receive()):
                delays = poll_delays(self._poll, cap=self._max_poll)
                idle_since = time.monotonic()
                continue
            pause = self._pause(next(delays), time.monotonic() - idle_since)
            if pause is None:
                return None
            yield Sleep(pause)

    def _take(self) -> M | None:
        """The first buffered message that holds a job report, now pending; others are skipped."""
        while self._buffer:
            message = self._buffer.popleft()
            try:
                report = report_from_message(str(message.content))
            except ValueError as exc:
                self.skipped += 1
                logger.warning("results message %s skipped: %s", message.id, exc)
                continue
            self._pending = self._wrap(message, report)
            return self._pending
        return None

    def _pause(self, delay: float, waited: float) -> float | None:
        """How long to wait before receiving again with the queue empty; None when the stream ends instead."""
        if not self._follow:
            return None
        if self._idle is None:
            return delay
        if waited >= self._idle:
            return None
        return min(delay, max(self._idle - waited, 0.0))

    def _receive(self) -> Flow[bool]:
        receive = partial(
            self._queue.receive_messages,
            messages_per_page=self._batch,
            max_messages=self._batch,
            visibility_timeout=self._visibility,
        )
        try:
            yield Rows(receive, self._buffer)
        except AzureError as exc:
            raise storage_error(f"receiving from {self._queue.queue_name}", exc) from exc
        return bool(self._buffer)

    def _settle_pending(self, *, abandon: bool = False) -> Flow[None]:
        pending, self._pending = self._pending, None
        if pending is None or pending.settled:
            return
        if abandon:
            yield from pending._abandon(0)
            return
        try:
            yield from pending._complete()
        except ResultNotCompletedError as exc:
            logger.warning("%s", exc)

    def _close(self, *, abandon: bool) -> Flow[None]:
        if self._closed:
            return
        self._closed = True
        yield from self._settle_pending(abandon=abandon)
        while self._buffer:
            message = self._buffer.popleft()
            try:
                yield Call(
                    partial(self._queue.update_message, message.id, message.pop_receipt, visibility_timeout=0)
                )
            except AzureError:
                logger.warning("results message %s not released; visible again after its timeout", message.id)
