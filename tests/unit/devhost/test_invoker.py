"""Invoking functions like the worker: where they run, timeouts, and what a failure reports."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devhost.catalog import FunctionSpec
from devhost.invoker import Invoker
from devhost.outputs import OutputWriter
from devhost.storage import StorageClients


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    """The worker pool sync functions run in."""
    pool = ThreadPoolExecutor(2, thread_name_prefix="devhost-worker")
    yield pool
    pool.shutdown(wait=True)


def _invoker(executor: ThreadPoolExecutor, timeout: float | None = None) -> Invoker:
    return Invoker(executor, OutputWriter(StorageClients(), "base64"), timeout)


def _spec(function: Callable[..., Any]) -> FunctionSpec:
    return FunctionSpec("f", function, asyncio.iscoroutinefunction(function), "trigger")


async def test_async_functions_run_on_the_loop_and_sync_ones_in_the_pool(
    executor: ThreadPoolExecutor,
) -> None:
    """An async def runs on the event loop's thread; a plain def runs on a devhost-worker thread."""

    async def on_loop(trigger: object) -> str:
        return threading.current_thread().name

    def in_pool(trigger: object) -> str:
        return threading.current_thread().name

    invoker = _invoker(executor)
    loop_result = await invoker.invoke(_spec(on_loop), None, reason="test")
    pool_result = await invoker.invoke(_spec(in_pool), None, reason="test")
    assert loop_result.value == threading.current_thread().name
    assert str(pool_result.value).startswith("devhost-worker")


async def test_function_timeout_fails_the_invocation(executor: ThreadPoolExecutor) -> None:
    """A call running past functionTimeout is abandoned and reported as failed."""
    release = asyncio.Event()

    async def hangs(trigger: object) -> None:
        await release.wait()

    result = await _invoker(executor, timeout=0.05).invoke(_spec(hangs), None, reason="test")
    assert not result.succeeded
    assert "functionTimeout" in str(result.error)


async def test_failure_reports_the_error_without_secrets(executor: ThreadPoolExecutor) -> None:
    """A raised exception becomes a failed result whose error text is redacted."""

    def leaks(trigger: object) -> None:
        raise RuntimeError("upstream said: Authorization: Bearer abc.def.ghi")

    result = await _invoker(executor).invoke(_spec(leaks), None, reason="test")
    assert not result.succeeded
    assert "RuntimeError" in str(result.error)
    assert "abc.def.ghi" not in str(result.error)
