"""The retry policy: brief transient failures are retried in-request, anything longer goes back to the job layer."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from shared.bc.errors import (
    ConflictError,
    RequestTimeoutError,
    ServerError,
    ServiceUnavailableError,
    ThrottledError,
    parse_retry_after,
)
from shared.bc.retry import RetryPolicy

POLICY = RetryPolicy(max_tries=3, budget_seconds=8.0, max_inline_wait_seconds=4.0, jitter=0.0)


def test_short_retry_after_is_waited_for_exactly() -> None:
    """A 429 with Retry-After: 2 is retried after exactly 2 seconds."""
    error = ThrottledError("slow down", status=429, retry_after=2.0)
    assert POLICY.next_delay(error, try_number=1, waited=0.0, idempotent=False) == 2.0


def test_long_retry_after_goes_back_to_the_job_layer() -> None:
    """A Retry-After above the inline limit is raised at once (the job is re-enqueued with that delay)."""
    error = ThrottledError("slow down", status=429, retry_after=30.0)
    assert POLICY.next_delay(error, try_number=1, waited=0.0, idempotent=True) is None


def test_budget_caps_the_total_wait() -> None:
    """A wait that would exceed the total in-request budget is not taken."""
    error = ServiceUnavailableError("busy", status=503, retry_after=3.0)
    assert POLICY.next_delay(error, try_number=2, waited=6.0, idempotent=True) is None


def test_tries_are_capped() -> None:
    """After max_tries the error is raised whatever it is."""
    error = ServerError("boom", status=500)
    assert POLICY.next_delay(error, try_number=3, waited=0.0, idempotent=True) is None


def test_non_retriable_errors_are_raised() -> None:
    """A conflict will not go away by waiting."""
    error = ConflictError("exists", status=409)
    assert POLICY.next_delay(error, try_number=1, waited=0.0, idempotent=True) is None


def test_ambiguous_post_failure_is_not_repeated() -> None:
    """A timeout after a POST was sent may have created the record: not retried in-request."""
    error = RequestTimeoutError("no answer", request_sent=True)
    assert POLICY.next_delay(error, try_number=1, waited=0.0, idempotent=False) is None
    assert POLICY.next_delay(error, try_number=1, waited=0.0, idempotent=True) == pytest.approx(0.25)


def test_post_that_never_left_is_repeated() -> None:
    """A connect failure means BC never saw the POST, so repeating it is safe."""
    error = ServiceUnavailableError("refused", request_sent=False)
    assert POLICY.next_delay(error, try_number=1, waited=0.0, idempotent=False) == pytest.approx(0.25)


def test_server_error_on_post_is_not_repeated() -> None:
    """A 500 after a POST may have half-happened: raised for the job layer to reconcile."""
    error = ServerError("boom", status=500)
    assert POLICY.next_delay(error, try_number=1, waited=0.0, idempotent=False) is None


def test_backoff_doubles_up_to_its_cap_and_jitters_down() -> None:
    """Backoff grows 0.25, 0.5, 1, 2, 2...; jitter only ever shortens it."""
    assert [POLICY.backoff(try_number) for try_number in range(1, 6)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    jittery = RetryPolicy(jitter=0.5)
    delays = [jittery.backoff(3, random.Random(seed)) for seed in range(50)]
    assert all(0.5 <= delay <= 1.0 for delay in delays)
    assert len(set(delays)) > 1


def test_throttling_pauses_for_retry_after_or_the_default() -> None:
    """429 and 503 pause every instance (Retry-After, else the default); other errors do not."""
    assert POLICY.pause_for(ThrottledError("x", status=429, retry_after=7.0)) == 7.0
    assert POLICY.pause_for(ThrottledError("x", status=429)) == POLICY.default_pause_seconds
    assert POLICY.pause_for(ServiceUnavailableError("x", status=503, retry_after=5.0)) == 5.0
    assert POLICY.pause_for(ServiceUnavailableError("x", request_sent=False)) is None
    assert POLICY.pause_for(ServerError("x", status=500)) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2", 2.0), (" 0 ", 0.0), ("-5", 0.0), ("99999", 3600.0), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_seconds_are_parsed_and_capped(header: str | None, expected: float | None) -> None:
    """Delta-seconds are read, negative becomes 0, huge values are capped at an hour, junk is ignored."""
    assert parse_retry_after(header) == expected


def test_retry_after_http_date_is_relative_to_now() -> None:
    """An HTTP-date Retry-After becomes the seconds until then."""
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now) == 30.0
