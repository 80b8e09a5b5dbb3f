"""BC answers -> typed errors and correlation ids.

- error codes: learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/dynamics-error-codes
- status codes, and Retry-After on 502/503: learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/web-service-troubleshooting
- throttling (429, 503 after 8 minutes in BC's queue): learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/operational-limits-online
- the correlation headers BC logs: learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/telemetry-webservices-trace
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import httpx

from shared.bc.errors import (
    AuthenticationError,
    AuthorizationError,
    BusinessCentralError,
    ConflictError,
    Correlation,
    EntityChangedError,
    NotFoundError,
    RequestTimeoutError,
    RequestValidationError,
    ServerError,
    ServiceUnavailableError,
    ThrottledError,
    UnexpectedResponseError,
)
from shared.bc.models import JsonValue
from shared.bc.retry import parse_retry_after

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
