"""Invoke a function in its group's worker process and log each invocation as one structured line.

The host side of an invocation (the real host's FunctionExecutor): it sends the trigger value to the worker
process (devhost/workers.py; the worker builds the arguments and runs the code, devhost/worker.py), writes the
Out values it gets back only when the function succeeded, as the host does, and logs "Executed ...". A function
that runs past functionTimeout fails, and so does every other invocation in flight on its worker: the worker is
killed and restarted (devhost/workers.py says why).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from devhost.catalog import FunctionSpec
from devhost.outputs import OutputWriter
from devhost.wire import CallRequest, CallResult
from shared.redaction import redact

_log = logging.getLogger("devhost.invocation")


@dataclass(frozen=True, slots=True)
class Invocation:
    """What one call of a function produced."""

    invocation_id: str
    succeeded: bool
    duration_ms: float
    value: Any = field(default=None, repr=False)
    error: str | None = None


class FunctionCaller(Protocol):
    """Where function code runs: devhost's WorkerPool (a worker process per function group)."""

    async def call(self, request: CallRequest) -> CallResult:
        """Run one invocation; raise when it ended with its worker (killed, exited)."""
        ...


class Invoker:
    """Runs functions: sends the call to a worker, writes outputs, logs the outcome."""

    def __init__(self, caller: FunctionCaller, outputs: OutputWriter) -> None:
        self._caller = caller
        self._outputs = outputs

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger_value: object,
        *,
        reason: str,
        details: Mapping[str, object] | None = None,
        retry_count: int = 0,
    ) -> Invocation:
        """Call spec's function with the trigger value; never raises for a failure of the function itself."""
        invocation_id = str(uuid.uuid4())
        request = CallRequest(
            invocation_id,
            spec.name,
            spec.trigger_arg,
            trigger_value,
            tuple(binding.name for binding in spec.outputs),
            spec.wants_context,
            retry_count,
            spec.retry.max_retry_count if spec.retry else 0,
        )
        _log.debug("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.perf_counter()
        try:
            called = await self._caller.call(request)
            if called.succeeded:
                await self._outputs.flush(spec.outputs, called.outs)
        except Exception as exc:  # the worker died or was killed, or an output could not be written
            called = CallResult(invocation_id, False, error=redact(f"{type(exc).__name__}: {exc}"))
        result = Invocation(invocation_id, called.succeeded, _elapsed_ms(started), called.value, called.error)
        self._log(spec, reason, result, details, called.stack)
        return result

    def _log(
        self,
        spec: FunctionSpec,
        reason: str,
        result: Invocation,
        details: Mapping[str, object] | None,
        stack: str | None,
    ) -> None:
        outcome = "Succeeded" if result.succeeded else "Failed"
        fields: dict[str, object] = {
            "event": "invocation",
            "function": spec.name,
            "invocation_id": result.invocation_id,
            "trigger": reason,
            "outcome": outcome,
            "duration_ms": round(result.duration_ms, 1),
            **(details or {}),
        }
        if result.error is not None:
            fields["error"] = result.error
        if stack is not None:
            fields["stack"] = stack  # the worker's traceback, redacted (the host logs the RpcException)
        _log.log(
            logging.INFO if result.succeeded else logging.ERROR,
            "Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)",
            spec.name,
            outcome,
            result.invocation_id,
            result.duration_ms,
            extra={"fields": fields},
        )


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
