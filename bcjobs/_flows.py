"""The operations of both clients, written once as flows over the storage SDKs; how a flow is carried out.

A *flow* is a generator holding one client operation (send a job, read its row, wait for it, take a result off
`bc-results`). It yields *instructions* — `SdkCall` (call an SDK method, keep what it returns), `SdkRows` (read a
pager), `FirstPage` (read the first page of a paged query) and `Sleep` — and reads each one's answer from the
instruction once it has been carried out, or has the SDK's error thrown in at the `yield`. The flow builds the
messages and queries, turns rows and reports into results and SDK failures into the package's errors.

`JobsClient` carries flows out with `carry_out` (blocking calls, `time.sleep`); `AsyncJobsClient` with
`carry_out_async` (awaiting the aio SDKs, `asyncio.sleep`). Each instruction knows how to be carried out both
ways, so the twins themselves are only their public signatures, lifecycle and `enqueue_many`'s concurrency
(threads versus a TaskGroup). What both return and the SDK-independent helpers are in `bcjobs.common`.

Why this mechanism (issue 19; the anchors are in the style audit §4.5): httpx drives one generator
(`Auth.auth_flow`) from a sync and an async loop, and this module does the same for every operation. The rules
(error mapping, id checks, paging, polling, settling results) stay in one place and are tested without I/O
(`tests/unit/client/test_flows.py`), and mypy checks each flow because every instruction is typed by its answer
(`SdkCall[TableEntity]`). Writing both clients out in full around pure helpers (azure-storage-queue) would repeat
each flow's calls and error mapping twice, about 300 lines; generating the sync client from the async one
(httpcore's `unasync`) would need a generator script, a checked-in generated file and special cases for what the
twins do differently (threads in `enqueue_many`, `from_clients` on the async client only).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    MutableSequence,
)
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Generic, Protocol, TypeVar

from azure.core.async_paging import AsyncItemPaged
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.core.paging import ItemPaged
from azure.data.tables import TableEntity
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
from bcjobs.rows import (
    JOB_ROW,
    REPORT_COLUMNS,
    AuditedInteraction,
    item_from_row,
    partition_interactions,
    report_from_row,
)
from bcjobs.submit import PreparedJob

logger = logging.getLogger("bcjobs")

R = TypeVar("R")  # what a flow or an SDK call returns
E = TypeVar("E")  # what a pager yields

# -- instructions: what a flow asks its client to carry out --------------------------------------------------


class Instruction(ABC):
    """One thing a flow needs done; it keeps its answer, which the flow reads once it has been carried out."""

    @abstractmethod
    def carry_out(self) -> None:
        """Carry it out with blocking calls (JobsClient)."""

    @abstractmethod
    async def carry_out_async(self) -> None:
        """Carry it out by awaiting the aio SDKs (AsyncJobsClient)."""


class SdkCall(Instruction, Generic[R]):
    """Call an SDK method and keep what it returns as `answer` (the async client awaits it first)."""

    def __init__(self, action: Callable[[], R | Awaitable[R]]) -> None:
        self.action = action
        self.answer: R

    def carry_out(self) -> None:
        value = self.action()
        if isinstance(value, Awaitable):
            raise TypeError("an aio SDK client in the sync client")
        self.answer = value

    async def carry_out_async(self) -> None:
        value = self.action()
        self.answer = await value if isinstance(value, Awaitable) else value


class SdkRows(Instruction, Generic[E]):
    """Call an SDK method that returns a pager and append every item it yields to `into`, as they come."""

    def __init__(
        self, action: Callable[[], Iterable[E] | AsyncIterable[E]], into: MutableSequence[E]
    ) -> None:
        self.action = action
        self.into = into

    def carry_out(self) -> None:
        pager = self.action()
        if isinstance(pager, AsyncIterable):
            raise TypeError("an aio SDK client in the sync client")
        self.into.extend(pager)

    async def carry_out_async(self) -> None:
        pager = self.action()
        if not isinstance(pager, AsyncIterable):
            self.into.extend(pager)
            return
        async for item in pager:
            self.into.append(item)


class FirstPage(Instruction, Generic[E]):
    """Append the items of the first page of `pages` (an SDK `by_page()` pager) to `into`; none when it has none."""

    def __init__(
        self, pages: Iterator[Iterator[E]] | AsyncIterator[AsyncIterator[E]], into: MutableSequence[E]
    ) -> None:
        self.pages = pages
        self.into = into

    def carry_out(self) -> None:
        if isinstance(self.pages, AsyncIterator):
            raise TypeError("an aio SDK client in the sync client")
        self.into.extend(next(self.pages, []))

    async def carry_out_async(self) -> None:
        if not isinstance(self.pages, AsyncIterator):
            self.into.extend(next(self.pages, []))
            return
        page = await anext(self.pages, None)
        if page is not None:
            self.into.extend([item async for item in page])


@dataclass(frozen=True)
class Sleep(Instruction):
    """Wait `seconds` before going on."""

    seconds: float

    def carry_out(self) -> None:
        time.sleep(self.seconds)

    async def carry_out_async(self) -> None:
        await asyncio.sleep(self.seconds)


Flow = Generator[Instruction, None, R]


def ask(action: Callable[[], R | Awaitable[R]]) -> Flow[R]:
    """Part of a flow: one SDK call, and what it returned (`row = yield from ask(...)`)."""
    call = SdkCall(action)
    yield call
    return call.answer


class Driver(Generic[R]):
    """Walks a flow: `instruction` is what to carry out next, None once the flow has returned `result`."""

    def __init__(self, flow: Flow[R]) -> None:
        self._flow = flow
        self.instruction: Instruction | None = None
        self.result: R
        self._advance(partial(next, flow))

    def resume(self) -> None:
        """Go on once the instruction has been carried out (its answer is in it)."""
        self._advance(partial(next, self._flow))

    def fail(self, error: AzureError) -> None:
        """Throw the instruction's SDK error into the flow (which turns it into a result or a package error)."""
        self._advance(partial(self._flow.throw, error))

    def _advance(self, advance: Callable[[], Instruction]) -> None:
        try:
            self.instruction = advance()
        except StopIteration as stop:
            self.instruction = None
            self.result = stop.value


def carry_out(flow: Flow[R]) -> R:
    """The flow carried out with blocking SDK calls: its result, or the error it raised."""
    driver = Driver(flow)
    while driver.instruction is not None:
        try:
            driver.instruction.carry_out()
        except AzureError as exc:
            driver.fail(exc)
        else:
            driver.resume()
    return driver.result


async def carry_out_async(flow: Flow[R]) -> R:
    """The flow carried out by awaiting the aio SDK calls: its result, or the error it raised."""
    driver = Driver(flow)
    while driver.instruction is not None:
        try:
            await driver.instruction.carry_out_async()
        except AzureError as exc:
            driver.fail(exc)
        else:
            driver.resume()
    return driver.result


# -- the SDK clients as the flows see them (sync or aio: an aio method returns an awaitable) -------------------


class QueueLike(Protocol):
    """The queue client methods the flows call."""

    @property
    def queue_name(self) -> str: ...

    def create_queue(self) -> Awaitable[None] | None: ...

    def send_message(self, content: str, /) -> QueueMessage | Awaitable[QueueMessage]: ...

    def delete_message(self, message: str, pop_receipt: str | None, /) -> Awaitable[None] | None: ...

    def update_message(
        self, message: str, pop_receipt: str | None, /, *, visibility_timeout: int
    ) -> QueueMessage | Awaitable[QueueMessage]: ...

    def receive_messages(
        self, *, messages_per_page: int, max_messages: int, visibility_timeout: int
    ) -> ItemPaged[QueueMessage] | AsyncItemPaged[QueueMessage]: ...

    def peek_messages(
        self, max_messages: int | None = None
    ) -> list[QueueMessage] | Awaitable[list[QueueMessage]]: ...


class TableLike(Protocol):
    """The table client methods the flows call."""

    def get_entity(self, partition_key: str, row_key: str, /) -> TableEntity | Awaitable[TableEntity]: ...

    def query_entities(
        self,
        query_filter: str,
        /,
        *,
        parameters: dict[str, object],
        results_per_page: int | None = None,
        select: list[str] | None = None,
    ) -> ItemPaged[TableEntity] | AsyncItemPaged[TableEntity]: ...


class QueueServiceLike(Protocol):
    """A queue service client: hands out queue clients."""

    def get_queue_client(self, queue: str, /) -> QueueLike: ...


class TableServiceLike(Protocol):
    """A table service client: hands out table clients."""

    def get_table_client(self, table_name: str, /) -> TableLike: ...


@dataclass(frozen=True, slots=True)
class StorageClients:
    """The SDK clients of one deployment's queues and tables (without `items_table`, large batches fail)."""

    jobs_queue: QueueLike
    results_queue: QueueLike
    jobs_table: TableLike
    audit_table: TableLike
    items_table: TableLike | None = None

    @classmethod
    def of(
        cls,
        queues: QueueServiceLike,
        tables: TableServiceLike,
        table_prefix: str,
        jobs_queue: str,
        results_queue: str,
    ) -> StorageClients:
        """The deployment's queues and tables, taken from the service clients."""
        return cls(
            jobs_queue=queues.get_queue_client(jobs_queue),
            results_queue=queues.get_queue_client(results_queue),
            jobs_table=tables.get_table_client(jobs_table_name(table_prefix)),
            audit_table=tables.get_table_client(audit_table_name(table_prefix)),
            items_table=tables.get_table_client(items_table_name(table_prefix)),
        )


class JobsClientBase:
    """What both clients hold: the deployment's SDK clients and how many sends `enqueue_many` keeps in flight."""

    _storage: StorageClients
    _max_concurrency: int

    def _attach(self, storage: StorageClients, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._storage, self._max_concurrency = storage, max_concurrency


# -- the client's flows ----------------------------------------------------------------------------------------


def create_queues(storage: StorageClients) -> Flow[None]:
    """Create `bc-jobs` and `bc-results` when missing."""
    for queue in (storage.jobs_queue, storage.results_queue):
        try:
            yield from ask(queue.create_queue)
        except ResourceExistsError:
            continue
        except AzureError as exc:
            raise storage_error(f"creating queue {queue.queue_name}", exc) from exc


def send(storage: StorageClients, prepared: PreparedJob) -> Flow[JobHandle]:
    """Send a prepared job to `bc-jobs`; its handle."""
    queue = storage.jobs_queue
    try:
        message = yield from ask(partial(queue.send_message, prepared.text))
    except AzureError as exc:
        raise storage_error(f"sending job {prepared.job_id} to {queue.queue_name}", exc) from exc
    job = prepared.job
    return JobHandle(prepared.job_id, message.id, message.inserted_on, message.expires_on, job.correlation_id)


def get(storage: StorageClients, job_id: str, *, with_interactions: bool) -> Flow[JobDetails | None]:
    """The job's report (None when it has no row), with its interactions when asked for."""
    if not re.fullmatch(JOB_ID_PATTERN, job_id):
        return None
    try:
        row = yield from ask(partial(storage.jobs_table.get_entity, job_id, JOB_ROW))
    except ResourceNotFoundError:
        return None
    except AzureError as exc:
        raise storage_error(f"reading job {job_id}", exc) from exc
    report = report_from_row(dict(row))
    log = (yield from interactions(storage, job_id)) if with_interactions else None
    return JobDetails.model_validate({**report.model_dump(), "interactions": log})


def interactions(storage: StorageClients, job_id: str) -> Flow[list[AuditedInteraction]]:
    """The job's interactions, oldest first (empty when none): its row's Audit column and the audit rows of its
    partition (bcjobs.rows), and the rows earlier versions wrote to the audit table (a row in both is the same)."""
    if not re.fullmatch(JOB_ID_PATTERN, job_id):
        return []
    found: list[TableEntity] = []
    for table in (storage.audit_table, storage.jobs_table):  # the jobs table's rows win: they are the newer
        found += yield from _partition(table, job_id, "reading the interactions of job")
    return partition_interactions(found)


def _partition(table: TableLike, job_id: str, doing: str) -> Flow[list[TableEntity]]:
    """Every row of the job's partition in `table`; empty when the table does not exist."""
    query = partial(table.query_entities, "PartitionKey eq @job", parameters={"job": job_id})
    rows: list[TableEntity] = []
    try:
        yield SdkRows(query, rows)
    except ResourceNotFoundError:
        return []
    except AzureError as exc:
        raise storage_error(f"{doing} {job_id}", exc) from exc
    return rows


def items(storage: StorageClients, job: str | JobReport) -> Flow[list[ItemOutcome]]:
    """Every item outcome of a batch job: the row's own list, or the items table's when the row says
    `itemsTruncated` (the product writes that table before such a row). A report given is not read again."""
    report = job if isinstance(job, JobReport) else (yield from get(storage, job, with_interactions=False))
    if report is None or report.result is None:
        return []
    if not report.result.items_truncated:
        return list(report.result.items or [])
    kept = yield from _kept_items(storage, report.job_id)
    expected = (report.result.items_succeeded or 0) + (report.result.items_failed or 0)
    if len(kept) < expected:
        logger.warning("job %s: %d of its %d item outcomes found", report.job_id, len(kept), expected)
    return kept


def _kept_items(storage: StorageClients, job_id: str) -> Flow[list[ItemOutcome]]:
    table = storage.items_table
    if table is None:
        raise BcJobsError(
            f"job {job_id} has more item outcomes than its row holds and this client has no items table "
            "(from_clients: pass items_table)"
        )
    query = partial(table.query_entities, "PartitionKey eq @job", parameters={"job": job_id})
    rows: list[TableEntity] = []
    try:
        yield SdkRows(query, rows)
    except AzureError as exc:  # a missing table too: a row that says itemsTruncated has one behind it
        raise storage_error(f"reading the item outcomes of job {job_id}", exc) from exc
    return [item_from_row(dict(row)) for row in sorted(rows, key=lambda row: str(row["RowKey"]))]


def list_page(
    storage: StorageClients,
    state: JobState | str | None,
    since: datetime | None,
    page_size: int,
    continuation_token: str | None,
    connection: str | None = None,
) -> Flow[JobPage]:
    """One page of job rows (state, updated at or after `since`, connection) and the token of the next."""
    query, parameters = list_query(state, since, connection)
    size = max(1, min(page_size, MAX_PAGE_SIZE))
    token = decode_continuation(continuation_token)
    pages = storage.jobs_table.query_entities(
        query, parameters=parameters, results_per_page=size, select=list(REPORT_COLUMNS)
    ).by_page(
        continuation_token=token  # type: ignore[arg-type]  # the Table SDK's token is a dict, though typed str
    )
    rows: list[TableEntity] = []
    try:
        yield FirstPage(pages, rows)
    except ResourceNotFoundError:
        return JobPage([], None)
    except AzureError as exc:
        raise storage_error("listing jobs", exc) from exc
    next_token = encode_continuation(getattr(pages, "continuation_token", None))
    return JobPage([report_from_row(dict(row)) for row in rows], next_token)


def wait(
    storage: StorageClients,
    job_id: str,
    timeout: float,
    poll: float,
    max_poll: float,
    on_poll: Callable[[JobReport | None], None] | None,
) -> Flow[JobReport]:
    """Poll the job's row, backing off, until a terminal report; WaitTimeoutError with the last one at the deadline."""
    deadline = time.monotonic() + timeout
    last: JobReport | None = None
    for delay in poll_delays(poll, cap=max_poll):
        last = yield from get(storage, job_id, with_interactions=False)
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


class ResultMessageBase:
    """A report taken off `bc-results` and its queue message; the flows that complete or abandon it."""

    def __init__(self, queue: QueueLike, message: QueueMessage, report: JobReport) -> None:
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
            yield from ask(partial(self._queue.delete_message, message.id, message.pop_receipt))
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
            yield from ask(
                partial(self._queue.update_message, message.id, message.pop_receipt, visibility_timeout=delay)
            )
        except ResourceNotFoundError:
            return  # already visible again (timeout ran out): nothing to give back
        except AzureError as exc:
            raise storage_error(f"releasing the result of job {self.report.job_id}", exc) from exc


M = TypeVar("M", bound=ResultMessageBase)


PEEK_MAX = 32  # the queue service's limit for one peek


def peek_results(queue: QueueLike, max_messages: int) -> Flow[list[JobReport]]:
    """The first reports on the results queue, left there and visible (messages that hold none skipped)."""
    try:
        messages = yield from ask(partial(queue.peek_messages, max_messages=min(max_messages, PEEK_MAX)))
    except AzureError as exc:
        raise storage_error(f"peeking at {queue.queue_name}", exc) from exc
    reports: list[JobReport] = []
    for message in messages:
        try:
            reports.append(report_from_message(str(message.content)))
        except ValueError as exc:
            logger.warning("results message %s skipped: %s", message.id, exc)
    return reports


class ResultStreamBase(Generic[M]):
    """The state of a results stream and its flows; a shell wraps each handed-out message in its message type."""

    def __init__(
        self,
        queue: QueueLike,
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
            yield SdkRows(receive, self._buffer)
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
                yield from ask(
                    partial(self._queue.update_message, message.id, message.pop_receipt, visibility_timeout=0)
                )
            except AzureError:
                logger.warning("results message %s not released; visible again after its timeout", message.id)
