"""Errors of the Business Central client, and how a BC answer becomes one. Messages are safe to log: never a
token, never a request body.

IntegrationError (shared.errors)
 └── BusinessCentralError                 anything a BC call can fail with; keeps status, BC code, correlation ids
      ├── ThrottledError                  429: the identity's rate or queue limit was hit          retriable
      ├── ServiceUnavailableError         502/503 or the connection failed before an answer        retriable
      ├── RequestTimeoutError             408/504 or no answer within the client timeout           retriable
      ├── ServerError                     500 and other 5xx (e.g. Internal_ServerError)             retriable
      ├── ConflictError                   409: e.g. Internal_EntityWithSameKeyExists
      │    └── EntityChangedError         409 Request_EntityChanged / 412: the ETag is stale; re-read first
      ├── RequestValidationError          400/405/413/415/422...: BC refused the request (code + message)
      ├── NotFoundError                   404: no such entity, company or endpoint
      │    └── CompanyNotFoundError       the configured company does not exist in the environment
      ├── AuthenticationError             401 even after one token refresh
      ├── TokenAcquisitionError           the TokenProvider failed transiently: nothing was sent to BC  retriable
      │    └── TokenRefusedError          the provider says waiting will not help (an admin must act first)
      ├── AuthorizationError              403: the identity lacks permissions
      ├── UnexpectedResponseError         an answer the client cannot use (bad JSON, unknown status)
      │    └── UnsafeNextLinkError        @odata.nextLink points away from the configured BC host
      ├── QueryError                      a filter, name, path segment or query option BC cannot express
      ├── BatchError                      a $batch request cannot be built as asked
      │    ├── BatchIncompleteError       a split $batch stopped part-way: results so far + what is left
      │    └── AtomicBatchFailedError     an atomic $batch had a failing operation: BC kept none of it
      └── ThrottleStorageError            the throttle's coordination storage failed (handled inside the
           │                              throttle: it falls back to a conservative local share)
           └── StaleCoordinationStateError  a compare-and-swap lost a race (another process wrote first)

`retriable` says whether the same call may succeed later without changing it; `retry_after` (seconds) is the
server's Retry-After when it sent one; `request_sent` is False only when the request surely never reached
BC (connect failure), which makes even a non-idempotent call safe to repeat. The job layer re-enqueues retriable
failures honouring `retry_after`.

The second half of the module reads BC's answers: `error_for` picks the class for a status and BC's error code,
and `correlation_of` / `parse_retry_after` read the headers. Sources:

- error codes: learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/dynamics-error-codes
- status codes, and Retry-After on 502/503: learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/web-service-troubleshooting
- throttling (429, 503 after 8 minutes in BC's queue): learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/operational-limits-online
- the correlation headers BC logs: learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/telemetry-webservices-trace
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, ClassVar

import httpx

from shared.errors import IntegrationError
from shared.redaction import redact

if TYPE_CHECKING:
    from shared.bc.models import BatchOperation, BatchResult, JsonValue


@dataclass(frozen=True, slots=True)
class Correlation:
    """The ids that let BC support find a request: ours (client-request-id) and the ones BC answered with."""

    client_request_id: str
    request_id: str | None = None
    ms_correlation_x: str | None = None


class BusinessCentralError(IntegrationError):
    """Root of the BC client's errors."""

    retriable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        correlation: Correlation | None = None,
        retry_after: float | None = None,
        request_sent: bool = True,
    ) -> None:
        self.message = redact(message)
        self.request_sent = request_sent
        self.status = status
        self.code = code
        self.correlation = correlation
        self.retry_after = retry_after
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.code:
            parts.append(f"code={self.code}")
        if self.correlation is not None:
            parts.append(f"client-request-id={self.correlation.client_request_id}")
        if self.retry_after is not None:
            parts.append(f"retry_after={self.retry_after:g}s")
        return " ".join(parts)


class ThrottledError(BusinessCentralError):
    """BC answered 429: too many requests for this identity."""

    retriable = True


class ServiceUnavailableError(BusinessCentralError):
    """BC answered 502/503, or the connection failed before an answer came."""

    retriable = True


class RequestTimeoutError(BusinessCentralError):
    """BC answered 408/504, or no answer came in time (the request may or may not have been processed)."""

    retriable = True


class ServerError(BusinessCentralError):
    """BC failed internally (500 or an unlisted 5xx)."""

    retriable = True


class ConflictError(BusinessCentralError):
    """BC refused a write that conflicts with existing data (409)."""


class EntityChangedError(ConflictError):
    """The ETag sent in If-Match is stale: someone changed the record since it was read."""


class RequestValidationError(BusinessCentralError):
    """BC refused the request as invalid; `code` and `message` say why (e.g. Application_FieldValidationException)."""


class NotFoundError(BusinessCentralError):
    """The entity, company or endpoint does not exist."""


class CompanyNotFoundError(NotFoundError):
    """No company with the configured id or name exists in the environment."""


class AuthenticationError(BusinessCentralError):
    """BC rejected the bearer token even after one refresh."""


class TokenAcquisitionError(BusinessCentralError):
    """The TokenProvider raised instead of handing out a token; the original is chained as `__cause__`.

    Retriable as far as BC is concerned (nothing reached it); the job layer inspects `__cause__` to tell a
    passing outage from a connection that needs an admin to sign in again (shared/bc cannot see those types).
    """

    retriable = True

    def __init__(self, message: str, *, provider_error: str) -> None:
        self.provider_error = provider_error
        super().__init__(message, request_sent=False)


class TokenRefusedError(TokenAcquisitionError):
    """The provider raised a TokenProviderError that is not transient (e.g. re-authorization required)."""

    retriable = False


class AuthorizationError(BusinessCentralError):
    """The identity is authenticated but not allowed to do this (403)."""


class UnexpectedResponseError(BusinessCentralError):
    """BC answered something the client cannot interpret."""


class UnsafeNextLinkError(UnexpectedResponseError):
    """A next-page link points to another host; following it would send the bearer token there."""


class QueryError(BusinessCentralError):
    """A request cannot be built from the values given (bad entity set, field or action name, NaN, empty
    `in`, ...); fix the input. Never retriable."""


class BatchError(BusinessCentralError):
    """A $batch cannot be sent as asked (e.g. an atomic batch longer than one request allows)."""


class BatchIncompleteError(BatchError):
    """A non-atomic batch split into several requests failed after some of them were committed.

    Not retriable as the same call: repeating it would apply `completed` twice. Resubmit only `remaining`
    (`failed` then `not_attempted`); the failing request's error is `__cause__`. `failed_may_have_applied` is
    False only when BC surely did not process the failing request (429, 503, connection never opened).
    """

    def __init__(
        self,
        message: str,
        *,
        completed: tuple[BatchResult, ...],
        failed: tuple[BatchOperation, ...],
        not_attempted: tuple[BatchOperation, ...],
        failed_may_have_applied: bool,
        cause: BusinessCentralError,
    ) -> None:
        self.completed = completed
        self.failed = failed
        self.not_attempted = not_attempted
        self.failed_may_have_applied = failed_may_have_applied
        super().__init__(
            message,
            status=cause.status,
            code=cause.code,
            correlation=cause.correlation,
            retry_after=cause.retry_after,
        )

    @property
    def remaining(self) -> tuple[BatchOperation, ...]:
        """Every operation without a result: the failed request's, then the ones never sent."""
        return (*self.failed, *self.not_attempted)


class AtomicBatchFailedError(BatchError):
    """An atomic (`Isolation: snapshot`) $batch in which BC answered an operation with a non-2xx status.

    BC then reverts every change of the batch, yet each operation it ran before the failure keeps its own
    200/201/204 and body in the answer (the example in
    https://learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/use-odata-batch). So
    `results` holds one result per operation, in order, all with `rolled_back=True`: none of them exists in
    BC. `failed_index` is the first operation answered with a non-2xx status and `cause` is its error, whose
    status, code, correlation and retry_after this error copies. Not retriable as a class: whether resending
    the batch can succeed is `cause.retriable` (a 429 inside the batch may pass later, a validation error not).
    """

    retriable = False

    def __init__(
        self,
        message: str,
        *,
        results: tuple[BatchResult, ...],
        failed_index: int,
        cause: BusinessCentralError,
    ) -> None:
        self.results = results
        self.failed_index = failed_index
        self.cause = cause
        super().__init__(
            message,
            status=cause.status,
            code=cause.code,
            correlation=cause.correlation,
            retry_after=cause.retry_after,
        )


class ThrottleStorageError(BusinessCentralError):
    """The throttle's coordination storage could not be read or written."""


class StaleCoordinationStateError(ThrottleStorageError):
    """A compare-and-swap on the coordination row lost a race (another process wrote first)."""


# ----- from a BC answer to an error -----------------------------------------------------------------

CLIENT_REQUEST_ID = "client-request-id"
# BC appends "  CorrelationId:  <guid>." to error messages (observed, not documented; the sandbox does the
# same: sandbox/bc/errors.py).
_MESSAGE_CORRELATION = re.compile(r"CorrelationId:\s+([0-9A-Fa-f-]{36})")
_ENTITY_CHANGED = "Request_EntityChanged"

_BY_STATUS: dict[int, type[BusinessCentralError]] = {
    400: RequestValidationError,
    401: AuthenticationError,
    403: AuthorizationError,
    404: NotFoundError,
    408: RequestTimeoutError,
    409: ConflictError,
    412: EntityChangedError,  # some proxies answer a stale ETag with 412 (BC itself: 409 Request_EntityChanged)
    429: ThrottledError,
    500: ServerError,
    501: RequestValidationError,  # BadRequest_MethodNotImplemented: e.g. no such bound action (error codes above)
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    504: RequestTimeoutError,
}


def correlation_of(client_request_id: str, headers: Mapping[str, str]) -> Correlation:
    """Our id plus whatever correlation headers BC answered with (all optional: API v2.0 documents no list)."""
    return Correlation(
        client_request_id=client_request_id,
        request_id=headers.get("request-id"),
        ms_correlation_x=headers.get("ms-correlation-x"),
    )


def error_code_of(body: JsonValue) -> tuple[str | None, str | None]:
    """(code, message) from BC's `{"error": {"code", "message"}}`, or (None, None)."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            code, message = error.get("code"), error.get("message")
            return (code if isinstance(code, str) else None, message if isinstance(message, str) else None)
    return None, None


def error_for(
    status: int,
    body: JsonValue,
    correlation: Correlation,
    retry_after: str | None = None,
) -> BusinessCentralError:
    """The typed error for a non-2xx status and BC's error body."""
    code, message = error_code_of(body)
    if correlation.ms_correlation_x is None and message and (found := _MESSAGE_CORRELATION.search(message)):
        correlation = Correlation(correlation.client_request_id, correlation.request_id, found.group(1))
    error_type = _error_type(status, code)
    return error_type(
        message or f"BC answered {status}",
        status=status,
        code=code,
        correlation=correlation,
        retry_after=parse_retry_after(retry_after),
    )


def _error_type(status: int, code: str | None) -> type[BusinessCentralError]:
    if status == 409 and code == _ENTITY_CHANGED:
        return EntityChangedError
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 400 <= status < 500:
        return RequestValidationError
    if status >= 500:
        return ServerError
    return UnexpectedResponseError


def error_from_response(response: httpx.Response, correlation: Correlation) -> BusinessCentralError:
    """The typed error for an HTTP response that is not 2xx."""
    return error_for(
        response.status_code, json_body(response), correlation, response.headers.get("retry-after")
    )


def json_body(response: httpx.Response) -> JsonValue:
    """The response's JSON, or None when it has no (valid) JSON body."""
    if not response.content:
        return None
    try:
        parsed: JsonValue = json.loads(response.content)
    except ValueError:
        return None
    return parsed


# MSAL caps a server-requested delay at one hour (throttled_http_client.py::RetryAfterParser); so do we.
MAX_RETRY_AFTER_SECONDS = 3600.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date, RFC 9110 §10.2.3), capped; None if absent/bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds))
