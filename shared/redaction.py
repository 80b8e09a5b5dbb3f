"""Redaction at the boundary: scrub bearer tokens, JWTs, refresh tokens, secrets, keys and auth codes from text.

Applied to every log record (see shared/logging_setup.py) and to any text that may end up in a Table row or
an error message. It is a safety net: code should never put a secret into text in the first place.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

REDACTED = "[REDACTED]"

# Names whose values are secrets, in snake_case, camelCase and header spellings (matched case-insensitively).
_SECRET_NAMES = (
    r"access_?token|refresh_?token|id_?token|client_?secret|client_?assertion|code_?verifier|"
    r"password|passwd|assertion|secret|token|sig|signature|account_?key|shared_?access_?signature|"
    r"authorization|x-functions-key|api_?key"
)
_QUOTED = r"(?P<q>[\"'])(?:\\.|(?!(?P=q)).)*(?P=q)"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A JWT anywhere (three base64url segments, the first starting like a JSON header).
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # "Bearer <credential>" / "Basic <credential>" in headers or messages.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    # "name": "value" / 'name': 'value' (JSON, Python reprs), escaped quotes inside the value included.
    (re.compile(rf"(?i)([\"'])({_SECRET_NAMES})\1(\s*:\s*){_QUOTED}"), rf"\1\2\1\3'{REDACTED}'"),
    # "code": "value" is an authorization code unless it has the shape of BC's error codes (words joined
    # by underscores, e.g. Request_EntityChanged), which logs need to keep.
    (
        re.compile(
            r"(?i)([\"'])code\1(\s*:\s*)(?P<q>[\"'])(?![A-Za-z]+(?:_[A-Za-z]+)*(?P=q))(?:\\.|(?!(?P=q)).)*(?P=q)"
        ),
        rf"\1code\1\2'{REDACTED}'",
    ),
    # name=value in query strings, form bodies and connection strings.
    (re.compile(rf"(?i)\b({_SECRET_NAMES}|code)=([^&\s\"',;]+)"), rf"\1={REDACTED}"),
    # name: value in header-like text.
    (
        re.compile(rf"(?i)\b({_SECRET_NAMES})(\s*:\s*)(?![\s\"'\[]|(?:bearer|basic)\b)([^\s,;\"'}}]+)"),
        rf"\1\2{REDACTED}",
    ),
)


def redact(text: str) -> str:
    """Return text with every token-, secret-, key- or code-looking value replaced by [REDACTED]."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Render the record's message and exception text once, scrubbed; later formatting reuses them."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # bad %-arguments: logging would report it later; never leak them
        message = f"{record.msg} (unformattable log arguments dropped)"
        record.msg, record.args = message, None
    cleaned = redact(message)
    if cleaned != message or record.args:
        record.msg = cleaned
        record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    return record


class _RedactingRecordFactory:
    """Wraps the current LogRecord factory so every record is redacted as it is created."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self._inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(self._inner(*args, **kwargs))


def install_redaction() -> None:
    """Redact every log record of the process at creation, whichever logger or handler; idempotent.

    A record factory covers handlers added later (the Functions worker's, Azure Monitor's); a handler
    filter would miss those, and a filter on the root logger never sees records from child loggers.
    """
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingRecordFactory):
        logging.setLogRecordFactory(_RedactingRecordFactory(current))
