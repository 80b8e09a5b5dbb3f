"""Redaction at the boundary scrubs every token-, secret- and code-looking value."""

from __future__ import annotations

import logging
import sys

import pytest

from shared.redaction import REDACTED, install_redaction, redact, redact_record

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXZhbHVl"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        ("Authorization: Bearer opaque-token-123", "opaque-token-123"),
        ("https://app/api/auth/callback?code=0.AXYZ-code&state=abc", "0.AXYZ-code"),
        ("grant_type=refresh_token&refresh_token=1.ARrt-secret&client_secret=cs~123", "1.ARrt-secret"),
        ("grant_type=refresh_token&refresh_token=1.ARrt-secret&client_secret=cs~123", "cs~123"),
        ('{"access_token": "at-value", "expires_in": 3599}', "at-value"),
        ('{"refresh_token":"rt-value"}', "rt-value"),
        (f"token was {JWT} in free text", JWT),
        ("{'refresh_token': '0.AXr-secret', 'expires_in': 3599}", "0.AXr-secret"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("refresh_token: 0.AXr-secret", "0.AXr-secret"),
        ("refreshToken=0.AXr-secret&x=1", "0.AXr-secret"),
        ('{"clientSecret": "cs~123"}', "cs~123"),
        ("DefaultEndpointsProtocol=https;AccountName=st1;AccountKey=abc123==;EndpointSuffix=x", "abc123=="),
        ("https://hook.example/notify?sig=abcdef0123&sv=2024", "abcdef0123"),
        ('{"refresh_token": "a\\"b-tail-of-secret"}', "b-tail-of-secret"),
        ("x-functions-key: k3y-value", "k3y-value"),
        (
            'event={"data": {"code": "0.AXYZ-auth-code_1.2", "grant_type": "authorization_code"}}',
            "0.AXYZ-auth-code_1.2",
        ),
    ],
)
def test_secrets_are_replaced(text: str, secret: str) -> None:
    """Each known secret shape is replaced by the redaction marker."""
    cleaned = redact(text)
    assert secret not in cleaned
    assert REDACTED in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "GET /v2.0/tenant/production/api/v2.0/companies 200 in 41 ms (state=ok, expires_in=3599)",
        '{"error": {"code": "Request_EntityChanged", "message": "Another user has already changed the record."}}',
        "has_token=False, last_error_code=None, token_calls=3",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    """Messages without secrets (BC error codes included) pass through unchanged, so logs stay readable."""
    assert redact(text) == text


def test_record_redaction_scrubs_rendered_message_and_arguments() -> None:
    """A record whose arguments carry a token is rendered and scrubbed before handlers see it."""
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "sent %s", (f"Bearer {JWT}",), None)

    redact_record(record)

    assert JWT not in record.getMessage()
    assert record.getMessage() == "sent Bearer [REDACTED]"


def test_record_redaction_scrubs_exception_text() -> None:
    """A traceback that mentions a refresh token is scrubbed too."""
    try:
        raise ValueError("refresh_token=1.ARrt-secret rejected")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())

    redact_record(record)

    assert record.exc_text is not None
    assert "1.ARrt-secret" not in record.exc_text


def test_installed_redaction_covers_child_loggers_and_handlers_added_later() -> None:
    """After install_redaction(), a record from any logger reaches a handler added later already scrubbed."""
    install_redaction()
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("tests.redaction.child")
    handler = Collect(logging.DEBUG)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.info("calling BC with %s", f"Authorization: Bearer {JWT}")
        logger.info("bad args %s %s", "only-one")
    finally:
        logger.removeHandler(handler)

    assert [record.getMessage() for record in seen] == [
        "calling BC with Authorization: Bearer [REDACTED]",
        "bad args %s %s (unformattable log arguments dropped)",
    ]
