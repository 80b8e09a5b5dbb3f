"""Call a function the way the Python worker does and log each invocation as one structured line.

`async def` functions run on devhost's event loop; plain functions run in a thread pool (sized like the
worker's: PYTHON_THREADPOOL_THREAD_COUNT, else min(32, cpu+4);
learn.microsoft.com/azure/azure-functions/python-scale-performance-reference). Outputs are written only when the
function succeeded, as the host does. functionTimeout is enforced by abandoning the call: a timed-out
sync function keeps its thread until it returns (the host would restart the worker instead).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from devhost.catalog import FunctionSpec
from devhost.context import InvocationContext
from devhost.outputs import OutputWriter, OutValue
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


class Invoker:
    """Runs functions: builds their arguments, calls them, writes outputs, logs the outcome."""

    def __init__(self, executor: Executor, outputs: OutputWriter, timeout: float | None = None) -> None:
        self._executor = executor
        self._outputs = outputs
        self._timeout = timeout

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
        outs = {binding.name: OutValue() for binding in spec.outputs}
        kwargs: dict[str, Any] = {spec.trigger_arg: trigger_value, **outs}
        if spec.wants_context:
            max_retries = spec.retry.max_retry_count if spec.retry else 0
            kwargs["context"] = InvocationContext.create(invocation_id, spec.name, retry_count, max_retries)
        _log.debug("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.perf_counter()
        try:
            value = await self._call(spec, kwargs)
            await self._outputs.flush(spec.outputs, outs)
        except Exception as exc:
            error = redact(f"{type(exc).__name__}: {exc}")
            result = Invocation(invocation_id, False, _elapsed_ms(started), error=error)
            self._log(spec, reason, result, details, exc)
            return result
        result = Invocation(invocation_id, True, _elapsed_ms(started), value=value)
        self._log(spec, reason, result, details, None)
        return result

    async def _call(self, spec: FunctionSpec, kwargs: dict[str, Any]) -> Any:
        if spec.is_async:
            pending: Any = spec.user_function(**kwargs)
        else:
            call = functools.partial(contextvars.copy_context().run, spec.user_function, **kwargs)
            pending = asyncio.get_running_loop().run_in_executor(self._executor, call)
        if self._timeout is None:
            return await pending
        try:
            return await asyncio.wait_for(pending, self._timeout)
        except TimeoutError:
            raise TimeoutError(f"functionTimeout of {self._timeout:g}s exceeded") from None

    def _log(
        self,
        spec: FunctionSpec,
        reason: str,
        result: Invocation,
        details: Mapping[str, object] | None,
        exc: BaseException | None,
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
        _log.log(
            logging.INFO if result.succeeded else logging.ERROR,
            "Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)",
            spec.name,
            outcome,
            result.invocation_id,
            result.duration_ms,
            extra={"fields": fields},
            exc_info=exc,
        )


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
