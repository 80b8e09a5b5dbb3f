"""The `context` argument the worker passes to functions that declare one (azure.functions.Context)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import azure.functions as func
from azure.functions._abc import RetryContext, RpcException, TraceContext


@dataclass(frozen=True, slots=True)
class _Trace(TraceContext):
    traceparent: str = ""

    @property
    def trace_state(self) -> str:
        """No W3C trace state locally."""
        return ""

    @property
    def trace_parent(self) -> str:
        """The traceparent devhost made up for this invocation."""
        return self.traceparent

    @property
    def attributes(self) -> dict[str, str]:
        """No attributes locally."""
        return {}


class _NoException(RpcException):
    """Devhost does not carry the previous try's exception into the retry context."""

    @property
    def source(self) -> str:
        """Empty."""
        return ""

    @property
    def stack_trace(self) -> str:
        """Empty."""
        return ""

    @property
    def message(self) -> str:
        """Empty."""
        return ""


@dataclass(frozen=True, slots=True)
class _Retry(RetryContext):
    count: int = 0
    maximum: int = 0

    @property
    def retry_count(self) -> int:
        """0 on the first try."""
        return self.count

    @property
    def max_retry_count(self) -> int:
        """From @app.retry, 0 without a policy."""
        return self.maximum

    @property
    def exception(self) -> RpcException:
        """Not tracked by devhost."""
        return _NoException()


@dataclass(frozen=True, slots=True)
class InvocationContext(func.Context):
    """Invocation id, function name and retry counters, as the worker provides them."""

    invocation: str
    name: str
    directory: str = ""
    retry: _Retry = field(default_factory=_Retry)
    trace: _Trace = field(default_factory=_Trace)
    local: threading.local = field(default_factory=threading.local, compare=False)

    @classmethod
    def create(
        cls, invocation_id: str, function_name: str, retry_count: int, max_retry_count: int
    ) -> InvocationContext:
        """A context for one invocation."""
        traceparent = f"00-{invocation_id.replace('-', '')}-{invocation_id.replace('-', '')[:16]}-01"
        return cls(
            invocation_id, function_name, "", _Retry(retry_count, max_retry_count), _Trace(traceparent)
        )

    @property
    def invocation_id(self) -> str:
        """This invocation's id (also in devhost's log line)."""
        return self.invocation

    @property
    def thread_local_storage(self) -> threading.local:  # type: ignore[override]
        """Per-invocation thread-local storage."""
        return self.local

    @property
    def function_name(self) -> str:
        """The function's name."""
        return self.name

    @property
    def function_directory(self) -> str:
        """Empty locally (no function folder in the v2 model)."""
        return self.directory

    @property
    def trace_context(self) -> TraceContext:
        """A made-up W3C traceparent."""
        return self.trace

    @property
    def retry_context(self) -> RetryContext:
        """Retry counters of this invocation."""
        return self.retry
