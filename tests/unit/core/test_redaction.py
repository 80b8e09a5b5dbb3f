"""Redaction at the boundary scrubs every token-, secret- and code-looking value."""

from __future__ import annotations

import logging
import sys

import pytest

from shared.redaction import REDACTED, RedactingFilter, redact

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
    ],
)
def test_secrets_are_replaced(text: str, secret: str) -> None:
    """Each known secret shape is replaced by the redaction marker."""
    cleaned = redact(text)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_ordinary_text_is_left_alone() -> None:
    """Messages without secrets pass through unchanged, so logs stay readable."""
    text = "GET /v2.0/tenant/production/api/v2.0/companies 200 in 41 ms (state=ok, expires_in=3599)"
    assert redact(text) == text


def test_logging_filter_scrubs_rendered_message_and_arguments() -> None:
    """A record whose arguments carry a token is rendered and scrubbed before handlers see it."""
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "sent %s", (f"Bearer {JWT}",), None)

    assert RedactingFilter().filter(record)

    assert JWT not in record.getMessage()
    assert record.getMessage() == "sent Bearer [REDACTED]"


def test_logging_filter_scrubs_exception_text() -> None:
    """A traceback that mentions a refresh token is scrubbed too."""
    try:
        raise ValueError("refresh_token=1.ARrt-secret rejected")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())

    RedactingFilter().filter(record)

    assert record.exc_text is not None
    assert "1.ARrt-secret" not in record.exc_text
