"""Errors of the job pipeline. Messages are safe to log: never a token, a secret or a job's `data`.

IntegrationError (shared.errors)
 └── JobError                        the job pipeline cannot do its part
      ├── JobStoreError              the jobs or audit Table failed (the delivery is retried by the host)
      ├── JobQueueError              a queue send failed (retry copy or report; retried by the host)
      ├── AmbiguousWriteError        a write may or may not have reached BC: the answer was lost
      └── TimeBudgetSpentError       a run's time budget ran out between requests (a batch continues later)

BusinessCentralError (shared.bc: outcomes the job layer adds to BC's own, decided like them)
 ├── NaturalKeyNotUniqueError        more than one record matches a job's natural key
 └── RetriableBatchItemsError        some batch items failed for reasons worth retrying     retriable
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from shared.bc import BusinessCentralError
from shared.errors import IntegrationError
from shared.table_cas import TableStorageError

_T = TypeVar("_T")

if TYPE_CHECKING:
    from bcjobs import ItemOutcome


class JobError(IntegrationError):
    """Root of the job pipeline's errors."""


class JobStoreError(JobError):
    """A jobs-table or audit-table call failed; nothing about the job's outcome was lost, the host retries."""


class JobQueueError(JobError):
    """Sending a queue message failed; the host retries the delivery."""


class AmbiguousWriteError(JobError):
    """BC may have applied a write whose answer never came (timeout, dropped connection, 5xx after sending)."""

    def __init__(self, cause: BusinessCentralError, *, items: dict[int, ItemOutcome] | None = None) -> None:
        self.cause = cause
        self.items = items  # a batch's items known to be done before the lost answer
        super().__init__(f"the answer to a write was lost ({type(cause).__name__}): BC may have applied it")


class NaturalKeyNotUniqueError(BusinessCentralError):
    """More than one record matches the job's natural key: BC holds duplicates the job cannot choose between."""


class RetriableBatchItemsError(BusinessCentralError):
    """Some batch items failed for reasons worth retrying; `items` holds every item known so far."""

    retriable = True

    def __init__(self, items: dict[int, ItemOutcome], cause: BusinessCentralError) -> None:
        self.items = items
        failed = sum(1 for item in items.values() if item.error is not None)
        super().__init__(
            f"{failed} batch operations to retry: {cause.message}",
            status=cause.status,
            code=cause.code,
            correlation=cause.correlation,
            retry_after=cause.retry_after,
        )


class TimeBudgetSpentError(JobError):
    """The run's time budget ran out before the job's next BC request (between a batch's $batch requests).

    `items`: every batch item known so far (this run's and earlier runs'); `progressed`: this run finished at
    least one item, so the rest may continue in a new delivery without using an attempt.
    """

    def __init__(self, message: str, *, items: dict[int, ItemOutcome], progressed: bool) -> None:
        self.items = items
        self.progressed = progressed
        super().__init__(message)


def items_known(failure: Exception) -> dict[int, ItemOutcome] | None:
    """The batch items a failed run knows the outcome of: AmbiguousWriteError (when a batch), RetriableBatchItemsError
    and TimeBudgetSpentError carry them; any other failure knows none (None)."""
    if isinstance(failure, AmbiguousWriteError | RetriableBatchItemsError | TimeBudgetSpentError):
        return failure.items
    return None


async def table_call(call: Awaitable[_T]) -> _T:
    """Await a shared.table_cas call; its TableStorageError becomes JobStoreError (the job layer's seam)."""
    try:
        return await call
    except TableStorageError as exc:
        raise JobStoreError(str(exc)) from exc
