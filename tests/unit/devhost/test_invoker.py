"""The host side of an invocation: what it sends to the worker, and what a failed or lost call reports."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from devhost.catalog import FunctionSpec, RetryPolicy
from devhost.errors import WorkerError
from devhost.invoker import Invoker
from devhost.outputs import OutputWriter
from devhost.storage import StorageClients
from devhost.wire import CallRequest, CallResult


class FakeWorkers:
    """Answers every call with a canned result (or raises), keeping the requests."""

    def __init__(self, answer: CallResult | Exception) -> None:
        self.answer = answer
        self.requests: list[CallRequest] = []

    async def call(self, request: CallRequest) -> CallResult:
        self.requests.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return CallResult(
            request.invocation_id, self.answer.succeeded, self.answer.value, error=self.answer.error
        )


def _spec(**extra: object) -> FunctionSpec:
    return FunctionSpec("f", lambda trigger: None, False, "trigger", **extra)  # type: ignore[arg-type]


def _invoker(workers: FakeWorkers) -> Invoker:
    return Invoker(workers, OutputWriter(StorageClients(), "base64"))


async def test_the_call_carries_trigger_value_context_and_retry_counters() -> None:
    """The worker gets the function, its trigger argument and value, whether it wants context, and the retries."""
    workers = FakeWorkers(CallResult("", True, "done"))
    spec = _spec(wants_context=True, retry=RetryPolicy(3, timedelta(seconds=1)))
    result = await _invoker(workers).invoke(spec, {"body": 1}, reason="test", retry_count=2)
    [request] = workers.requests
    assert (request.function, request.trigger_arg, request.trigger_value) == ("f", "trigger", {"body": 1})
    assert (request.wants_context, request.retry_count, request.max_retry_count) == (True, 2, 3)
    assert (result.succeeded, result.value, result.invocation_id) == (True, "done", request.invocation_id)


async def test_a_call_lost_with_its_worker_is_a_failed_invocation_with_a_redacted_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker killed mid-call (functionTimeout, crash) fails the invocation; the logged error is redacted."""
    lost = WorkerError("worker restarted while sending Authorization: Bearer abc.def.ghi")
    with caplog.at_level(logging.INFO, logger="devhost.invocation"):
        result = await _invoker(FakeWorkers(lost)).invoke(_spec(), None, reason="test")
    assert not result.succeeded
    assert "WorkerError" in str(result.error)
    assert "abc.def.ghi" not in str(result.error)
    [record] = [r for r in caplog.records if r.name == "devhost.invocation" and r.levelno == logging.ERROR]
    assert getattr(record, "fields")["outcome"] == "Failed"  # noqa: B009 - an extra, not a declared attribute


async def test_a_failed_function_reports_the_workers_error() -> None:
    """The worker's own failure text is what the invocation reports."""
    workers = FakeWorkers(CallResult("", False, error="ValueError: nope"))
    result = await _invoker(workers).invoke(_spec(), None, reason="test")
    assert (result.succeeded, result.error) == (False, "ValueError: nope")
