"""Redaction at the boundary: scrub bearer tokens, JWTs, refresh tokens, secrets and auth codes from text.

Used on every log record (RedactingFilter) and on any text that may end up in a Table row or an error
message. It is a safety net: code should never put a secret into text in the first place.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[REDACTED]"

_SECRET_KEYS = (
    "access_token|refresh_token|id_token|client_secret|client_assertion|code_verifier|code|"
    "password|assertion|authorization|secret|token|sig|signature"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A JWT anywhere (three base64url segments, the first starting like a JSON header).
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # "Bearer <anything>" in headers or messages.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    # key=value in query strings and form bodies.
    (re.compile(rf"(?i)\b({_SECRET_KEYS})=([^&\s\"']+)"), rf"\1={REDACTED}"),
    # "key": "value" in JSON.
    (re.compile(rf"(?i)\"({_SECRET_KEYS})\"\s*:\s*\"[^\"]*\""), rf'"\1": "{REDACTED}"'),
)


def redact(text: str) -> str:
    """Return text with every token-, secret- or code-looking value replaced by [REDACTED]."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record's message and scrubs it before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the rendered message and any exception text; never drops a record."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Attach the filter to the logger's handlers (root by default) once; idempotent."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())
