"""Custom dimensions of exported log records, and the last line of defence against secrets in them.

A job run opens a scope (`job_scope`); code that learns the job's id, correlation id, operation, attempt or
connection notes it (`note_job`). Every log record exported while the scope is open carries them as attributes
(customDimensions in Application Insights), whichever module logged it (shared.bc, shared.auth, shared.jobs); a
record's own `extra` wins. The settings' connection name is a default dimension of every record; a job's scope
names the job's own connection, and the metrics recorded in it carry that too (`job_connection`).

RedactingLogProcessor (shared/telemetry/processors.py) runs shared.redaction over every string attribute and the body before export, and blanks
attributes whose *name* says they hold a secret: the record factory redacts messages at creation, but extras and
the exception stack trace the OpenTelemetry handler renders from `exc_info` are attributes it never saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from shared.redaction import REDACTED, redact

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LogRecordProcessor

JOB_DIMENSIONS = ("job_id", "correlation_id", "operation", "attempt", "connection")
# Attribute names whose value is a secret whatever it looks like (matched lower-cased).
SECRET_ATTRIBUTE_NAMES = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "client_secret",
        "secret",
        "password",
        "authorization",
        "code",
        "code_verifier",
        "client_assertion",
        "sig",
        "signature",
        "x-functions-key",
        "api_key",
        "account_key",
        "connection_string",
    }
)

_scope: ContextVar[dict[str, str] | None] = ContextVar("bc_telemetry_job_scope", default=None)
_defaults: dict[str, str] = {}


@contextmanager
def job_scope(**dimensions: str | int | None) -> Iterator[None]:
    """Open a job's scope for the current task (and tasks it starts); `note_job` fills it in as facts arrive."""
    token = _scope.set({})
    try:
        note_job(**dimensions)
        yield
    finally:
        _scope.reset(token)


def note_job(**dimensions: str | int | None) -> None:
    """Add dimensions (job_id, correlation_id, operation, attempt, connection) to the open job scope; no scope:
    ignored."""
    scope = _scope.get()
    if scope is not None:
        scope.update({name: str(value) for name, value in dimensions.items() if value is not None})


def set_default_dimensions(**dimensions: str) -> None:
    """Dimensions of every record of the process (the settings' connection name)."""
    _defaults.update(dimensions)


def current_dimensions() -> dict[str, str]:
    """The defaults plus the open job scope's dimensions."""
    return {**_defaults, **(_scope.get() or {})}


def job_connection() -> str:
    """The connection a metric recorded now belongs to: the open job's, else the process's default ("none" when
    neither is known). Connection names are a bounded set an admin registers, fit for a metric attribute."""
    return current_dimensions().get("connection", "none")


def scrub_attribute(name: str, value: Any) -> Any:
    """`value` safe to export under `name`."""
    if name.lower() in SECRET_ATTRIBUTE_NAMES and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: scrub_attribute(str(key), item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [scrub_attribute(name, item) for item in value]
    return value


def log_record_processors() -> list[LogRecordProcessor]:
    """The processors every exported record goes through, in order (dimensions first, redaction last)."""
    # Imported here: the OpenTelemetry SDK (with psutil) loads only when telemetry is configured, never for
    # `import function_app` (issue 24, point 4).
    from shared.telemetry.processors import JobDimensionsProcessor, RedactingLogProcessor

    return [JobDimensionsProcessor(), RedactingLogProcessor()]
