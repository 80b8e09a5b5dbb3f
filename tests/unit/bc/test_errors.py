"""BC answers become typed errors that keep BC's code and correlation ids and never leak a token."""

from __future__ import annotations

import inspect

import pytest

import shared.bc.errors as errors_module
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
    error_for,
)
from shared.errors import IntegrationError

CORRELATION = Correlation("req-1", request_id="bc-req", ms_correlation_x="bc-corr")


def test_every_public_error_descends_from_the_integration_root() -> None:
    """One except clause (IntegrationError) catches everything the client raises on purpose."""
    error_types = [
        member
        for _, member in inspect.getmembers(errors_module, inspect.isclass)
        if member.__module__ == errors_module.__name__ and issubclass(member, Exception)
    ]
    assert len(error_types) >= 15
    for error_type in error_types:
        assert issubclass(error_type, BusinessCentralError), error_type
        assert issubclass(error_type, IntegrationError)
        assert error_type.__name__.endswith("Error")


def test_every_error_is_named_in_the_module_tree() -> None:
    """The module docstring draws the whole tree."""
    doc = errors_module.__doc__ or ""
    for name, member in inspect.getmembers(errors_module, inspect.isclass):
        if member.__module__ == errors_module.__name__ and issubclass(member, Exception):
            assert name in doc


@pytest.mark.parametrize(
    ("status", "code", "expected", "retriable"),
    [
        (400, "BadRequest_InvalidToken", RequestValidationError, False),
        (401, "Authentication_InvalidCredentials", AuthenticationError, False),
        (403, "Authorization_Forbidden", AuthorizationError, False),
        (404, "Internal_RecordNotFound", NotFoundError, False),
        (405, "BadRequest_MethodNotAllowed", RequestValidationError, False),
        (408, None, RequestTimeoutError, True),
        (409, "Request_EntityChanged", EntityChangedError, False),
        (409, "Internal_EntityWithSameKeyExists", ConflictError, False),
        (412, None, EntityChangedError, False),
        (429, "Application_TooManyRequests", ThrottledError, True),
        (500, "Internal_ServerError", ServerError, True),
        (501, "BadRequest_MethodNotImplemented", RequestValidationError, False),
        (502, None, ServiceUnavailableError, True),
        (503, None, ServiceUnavailableError, True),
        (504, None, RequestTimeoutError, True),
        (302, None, UnexpectedResponseError, False),
    ],
)
def test_status_and_code_choose_the_error_type(
    status: int, code: str | None, expected: type[BusinessCentralError], retriable: bool
) -> None:
    """Each documented status (and 409's code) maps to its error type and retriability."""
    body = {"error": {"code": code, "message": "m"}} if code else None
    error = error_for(status, body, CORRELATION)
    assert type(error) is expected
    assert error.retriable is retriable
    assert error.code == code
    assert error.status == status


def test_error_keeps_code_message_correlation_and_retry_after() -> None:
    """The BC code, message, our request id, BC's ids and Retry-After all survive on the error."""
    body = {"error": {"code": "Application_TooManyRequests", "message": "Too many requests reached."}}
    error = error_for(429, body, CORRELATION, retry_after="12")
    assert isinstance(error, ThrottledError)
    assert error.retry_after == 12.0
    assert error.correlation == CORRELATION
    assert "Application_TooManyRequests" in str(error)
    assert "client-request-id=req-1" in str(error)


def test_correlation_id_is_taken_from_the_message_when_no_header_came() -> None:
    """BC appends 'CorrelationId:  <guid>.' to messages; it becomes the correlation id."""
    guid = "c32f628c-0a5b-4c4e-9e8e-0e7f1e2d3c4b"
    body = {"error": {"code": "Unknown", "message": f"Bad thing.  CorrelationId:  {guid}."}}
    error = error_for(400, body, Correlation("req-1"))
    assert error.correlation is not None
    assert error.correlation.ms_correlation_x == guid


def test_token_in_a_message_is_redacted() -> None:
    """Even if BC echoed a bearer token into a message, the error never shows it."""
    secret = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    error = AuthenticationError(f"rejected Bearer {secret}", status=401)
    assert secret not in str(error)
    assert secret not in repr(error)


def test_missing_body_still_gives_a_useful_message() -> None:
    """A bodiless 503 says what status came back."""
    error = error_for(503, None, CORRELATION, retry_after="5")
    assert "503" in str(error)
    assert error.retry_after == 5.0
