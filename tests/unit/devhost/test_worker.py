"""The worker process's side: calling functions like the Python worker, and log records that cross to devhost."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func
import pytest

from devhost.wire import CallRequest, LogLine, read_frame
from devhost.worker import FunctionRunner, log_line, thread_pool_size


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """The worker's thread pool for sync functions."""
    executor = ThreadPoolExecutor(2, thread_name_prefix="devhost-worker")
    yield executor
    executor.shutdown(wait=True)


def _runner(pool: ThreadPoolExecutor, function: Callable[..., Any]) -> FunctionRunner:
    return FunctionRunner({"f": function}, pool)


def _request(**extra: Any) -> CallRequest:
    return CallRequest("inv-1", "f", "trigger", "value", **extra)


async def test_async_functions_run_on_the_loop_and_sync_ones_in_the_pool(pool: ThreadPoolExecutor) -> None:
    """An async def runs on the event loop's thread; a plain def runs on a devhost-worker thread."""

    async def on_loop(trigger: object) -> str:
        return threading.current_thread().name

    def in_pool(trigger: object) -> str:
        return threading.current_thread().name

    loop_result = await _runner(pool, on_loop).run(_request())
    pool_result = await _runner(pool, in_pool).run(_request())
    assert loop_result.value == threading.current_thread().name
    assert str(pool_result.value).startswith("devhost-worker")


async def test_out_values_and_context_are_given_and_collected(pool: ThreadPoolExecutor) -> None:
    """Out parameters come back by binding name; `context` has the invocation id and retry counters."""

    def uses_both(trigger: str, out: func.Out[str], context: func.Context) -> None:
        out.set(f"{trigger}:{context.invocation_id}:{context.retry_context.retry_count}")

    request = _request(outputs=("out",), wants_context=True, retry_count=1, max_retry_count=2)
    result = await _runner(pool, uses_both).run(request)
    assert result.succeeded
    assert result.outs == {"out": "value:inv-1:1"}


async def test_failure_reports_error_and_stack_without_secrets(pool: ThreadPoolExecutor) -> None:
    """A raised exception becomes a failed result whose error and traceback are redacted."""

    def leaks(trigger: object) -> None:
        raise RuntimeError("upstream said: Authorization: Bearer abc.def.ghi")

    result = await _runner(pool, leaks).run(_request())
    assert not result.succeeded
    assert "RuntimeError" in str(result.error)
    assert "leaks" in str(result.stack)  # the function's frame is in the traceback
    assert "abc.def.ghi" not in f"{result.error}{result.stack}"


async def test_a_return_value_that_cannot_cross_to_the_host_fails_the_call(pool: ThreadPoolExecutor) -> None:
    """A value that does not pickle (a lock) fails the invocation instead of breaking the connection."""

    async def returns_a_lock(trigger: object) -> object:
        return threading.Lock()

    result = await _runner(pool, returns_a_lock).run(_request())
    assert not result.succeeded
    assert "cannot be sent to the host" in str(result.error)


async def test_log_records_cross_with_message_exception_and_extras() -> None:
    """The message is rendered, the exception is text, extras cross (as repr when they do not pickle)."""
    try:
        raise ValueError("inner")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "hello %s", ("world",), sys.exc_info(),
            extra={"fields": {"event": "e"}, "reference": "r-1", "lock": threading.Lock()},
        )  # fmt: skip
    reader = asyncio.StreamReader()
    reader.feed_data(log_line(record))
    crossed = await read_frame(reader)
    assert isinstance(crossed, LogLine)
    rebuilt = logging.makeLogRecord(dict(crossed.attributes))
    assert rebuilt.getMessage() == "hello world"
    assert "ValueError: inner" in str(rebuilt.exc_text)
    assert (getattr(rebuilt, "fields"), getattr(rebuilt, "reference")) == ({"event": "e"}, "r-1")  # noqa: B009
    assert "lock" in str(getattr(rebuilt, "lock"))  # noqa: B009


def test_thread_pool_size_follows_the_setting_else_pythons_default() -> None:
    """PYTHON_THREADPOOL_THREAD_COUNT wins when it is a positive number; otherwise min(32, cpu + 4)."""
    assert thread_pool_size({"PYTHON_THREADPOOL_THREAD_COUNT": "3"}) == 3
    assert 5 <= thread_pool_size({"PYTHON_THREADPOOL_THREAD_COUNT": "zero"}) <= 32
