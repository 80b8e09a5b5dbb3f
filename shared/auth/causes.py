"""Causes of failures, for logs only: what went wrong underneath an AuthError, said once per outage.

Errors the token lifecycle raises carry short, safe messages (they reach status pages and callers); the SDK or
network error underneath is what an operator needs. `describe` renders an error and its causes (types and first
message lines, redacted, bounded). `FailureLog` logs such a cause once, with the resource and the setting to
check, the first time a resource fails in a given way, and logs again only after the resource recovered —
so an outage is one line, not one per request, and no failure is silent.
"""

from __future__ import annotations

import logging
import threading

from shared.redaction import redact

_MESSAGE_LIMIT = 300
_CHAIN_LIMIT = 4


def describe(error: BaseException) -> str:
    """`Type: first line of message` of `error` and its causes, joined by ` <- ` (redacted, bounded)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and len(parts) < _CHAIN_LIMIT and id(current) not in seen:
        seen.add(id(current))
        lines = str(current).strip().splitlines()
        text = redact(lines[0])[:_MESSAGE_LIMIT] if lines else ""
        parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return " <- ".join(parts)


class FailureLog:
    """Logs each distinct failure of one resource once (at `level`), until the resource answers again."""

    def __init__(self, logger: logging.Logger, resource: str, check: str, level: int = logging.ERROR) -> None:
        self._logger = logger
        self._resource = resource
        self._check = check
        self._level = level
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def failed(self, operation: str, error: BaseException) -> None:
        """Record a failure of `operation` (e.g. `read secret bc-token-default`); the first of its kind since
        the last success is logged at the log's level, repeats at DEBUG."""
        key = (operation, type(error).__name__)
        with self._lock:
            first = key not in self._seen
            self._seen.add(key)
        self._logger.log(
            self._level if first else logging.DEBUG,
            "%s failed: %s: %s. Check %s.",
            self._resource,
            operation,
            describe(error),
            self._check,
            extra={"event": "auth.dependency_failed", "resource": self._resource, "operation": operation},
        )

    def succeeded(self) -> None:
        """The resource answered: log the recovery once, and log the next failure again."""
        with self._lock:
            recovered, self._seen = bool(self._seen), set()
        if recovered:
            self._logger.info(
                "%s answers again",
                self._resource,
                extra={"event": "auth.dependency_recovered", "resource": self._resource},
            )
