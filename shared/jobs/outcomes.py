"""What a run's outcome means for the job: the decision table for failures, in one place, and (item_error) the
error of a run whose batch items failed.

| failure                                              | decision                    | attempt counted |
|------------------------------------------------------|-----------------------------|-----------------|
| BC 429 / 502 / 503 / 504 / 408 / 5xx, dropped, token | retry (≥ Retry-After)       | yes             |
|   service briefly down, retriable batch items        |                             |                 |
| ambiguous write the next run can reconcile (create/  | retry, reconcile first      | yes             |
|   upsert with a natural key, update, delete)         |                             |                 |
| any other ambiguous write (create without a natural  | failed `ambiguous_write`    | yes             |
|   key, action, batch)                                |                             |                 |
| connection needs an admin (re-authorization, refused | waiting_for_authorization   | no              |
|   credentials, BC 401 after a fresh token)           |                             |                 |
| BC 400 / 403 / 404 / 409 / 412, bad query, unusable  | failed with BC's code       | yes             |
|   answer                                             |                             |                 |
| the run's time budget ran out between a batch's      | continue in a new delivery  | no              |
|   $batch requests, after this run finished an item   |   (`time_budget_spent`)     |                 |
| the budget ran out before the run finished anything  | retry (`time_budget_spent`) | yes             |
| the budget ran out during a request (cut off)        | as a BC timeout: retry, or  | yes             |
|                                                      |   the ambiguous-write rows  |                 |

A continuation is bounded: each one finished at least one more item of the batch, and none is scheduled past the
job's deadline (then `expired`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bcjobs import ErrorInfo, ItemOutcome, ResultSummary
from shared.bc import (
    AuthenticationError,
    AuthorizationError,
    BusinessCentralError,
    ConflictError,
    EntityChangedError,
    NotFoundError,
    QueryError,
    RequestTimeoutError,
    RequestValidationError,
    ServerError,
    ServiceUnavailableError,
    ThrottledError,
    TokenAcquisitionError,
    TokenRefusedError,
    UnexpectedResponseError,
)
from shared.jobs.errors import AmbiguousWriteError, TimeBudgetSpentError
from shared.tokens import TokenProviderError

TIME_BUDGET_SPENT = "time_budget_spent"  # the code of a run whose time budget ran out (JobPolicy.time_budget)


class Verdict(StrEnum):
    """What happens to the job after a failed run."""

    RETRY = "retry"
    FAIL = "fail"
    WAIT_FOR_AUTHORIZATION = "wait_for_authorization"
    CONTINUE = "continue"  # progress, not failure: the rest of a batch in a new delivery, no attempt used


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict, the error to record, and BC's Retry-After (seconds) when it sent one."""

    verdict: Verdict
    error: ErrorInfo
    retry_after: float | None = None
    ambiguous: bool = False


def decide(failure: Exception, *, reconcilable: bool, now: datetime) -> Decision:
    """The decision for a run that raised `failure` at `now` (the processor's Clock); `reconcilable`: a rerun can
    tell whether a lost write landed."""
    if isinstance(failure, AmbiguousWriteError):
        return _ambiguous(failure, reconcilable)
    if isinstance(failure, TimeBudgetSpentError):
        error = ErrorInfo(code=TIME_BUDGET_SPENT, message=str(failure), retriable=True)
        return Decision(Verdict.CONTINUE if failure.progressed else Verdict.RETRY, error)
    if isinstance(failure, TokenProviderError):
        return _token_failure(failure, now)
    if isinstance(failure, TokenRefusedError | AuthenticationError):
        return Decision(Verdict.WAIT_FOR_AUTHORIZATION, error_info(failure))
    if isinstance(failure, BusinessCentralError):
        verdict = Verdict.RETRY if failure.retriable else Verdict.FAIL
        return Decision(verdict, error_info(failure), retry_after=failure.retry_after)
    raise failure  # not a job outcome: a bug or a storage failure, left to the host's retries and poison


def _ambiguous(failure: AmbiguousWriteError, reconcilable: bool) -> Decision:
    cause = failure.cause
    if reconcilable:
        return Decision(Verdict.RETRY, error_info(cause), retry_after=cause.retry_after, ambiguous=True)
    message = (
        f"BC may or may not have applied this write: the answer was lost ({_code_of(cause)}). Check in BC "
        "whether the change is there before sending it again under a new jobId; give the job a naturalKey "
        "so the product can reconcile such a write itself."
    )
    error = error_info(cause).model_copy(
        update={"code": "ambiguous_write", "message": message, "retriable": False}
    )
    return Decision(Verdict.FAIL, error, ambiguous=True)


def _token_failure(failure: TokenProviderError, now: datetime) -> Decision:
    if failure.transient:
        error = ErrorInfo(code="token_unavailable", message=str(failure), retriable=True)
        return Decision(
            Verdict.RETRY, error, retry_after=_seconds_until(getattr(failure, "retry_after", None), now)
        )
    error = ErrorInfo(
        code="authorization_required",
        message=f"{failure} — the job waits until an admin fixes the connection (GET /api/auth/status)",
    )
    return Decision(Verdict.WAIT_FOR_AUTHORIZATION, error)


def _seconds_until(when: object, now: datetime) -> float | None:
    """A provider's `retry_after` (a datetime, when it knows one) as seconds from `now`."""
    if not isinstance(when, datetime):
        return None
    return max(0.0, (when - now).total_seconds())


_OWN_CODE = re.compile(r"[a-z][a-z_]*")
_CODES: tuple[tuple[type[BusinessCentralError], str], ...] = (
    (TokenRefusedError, "authorization_required"),
    (TokenAcquisitionError, "token_unavailable"),
    (ThrottledError, "bc_throttled"),
    (ServiceUnavailableError, "bc_unavailable"),
    (RequestTimeoutError, "bc_timeout"),
    (ServerError, "bc_server_error"),
    (EntityChangedError, "bc_etag_changed"),
    (ConflictError, "bc_conflict"),
    (RequestValidationError, "bc_validation"),
    (NotFoundError, "bc_not_found"),
    (AuthenticationError, "bc_authentication"),
    (AuthorizationError, "bc_forbidden"),
    (QueryError, "invalid_query"),
    (UnexpectedResponseError, "bc_unexpected_response"),
)


def _code_of(error: BusinessCentralError) -> str:
    if error.code and _OWN_CODE.fullmatch(error.code):
        return (
            error.code
        )  # set by the job layer, e.g. natural_key_not_unique (BC's codes are CamelCase_Names)
    return next((code for kind, code in _CODES if isinstance(error, kind)), "bc_error")


def error_info(error: BusinessCentralError) -> ErrorInfo:
    """BC's error as the job records it: our code, BC's code, message and correlation ids."""
    correlation = error.correlation
    return ErrorInfo(
        code=_code_of(error),
        message=error.message,
        bc_code=error.code,
        status=error.status,
        client_request_id=correlation.client_request_id if correlation else None,
        bc_request_id=(correlation.request_id or correlation.ms_correlation_x) if correlation else None,
        retriable=error.retriable,
    )


def failed_items(summary: ResultSummary) -> list[ItemOutcome]:
    """The batch items that did not succeed (or were rolled back)."""
    return [item for item in summary.items or [] if item.error is not None or item.rolled_back]


def item_error(summary: ResultSummary) -> ErrorInfo | None:
    """The job's error when some of its batch items failed."""
    failed = failed_items(summary)
    if not failed:
        return None
    first = next((item.error for item in failed if item.error), None)
    rolled = all(item.rolled_back for item in failed) and bool(failed)
    what = (
        "the atomic batch was rolled back"
        if rolled
        else f"{len(failed)} of {summary.count} operations failed"
    )
    return ErrorInfo(
        code="batch_rolled_back" if rolled else "batch_items_failed",
        message=f"{what}; see result.items" + (f" (first: {first.message})" if first else ""),
        bc_code=first.bc_code if first else None,
        status=first.status if first else None,
        client_request_id=first.client_request_id if first else None,
    )
