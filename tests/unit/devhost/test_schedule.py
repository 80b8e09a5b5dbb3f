"""Timer schedules: 6-field NCRONTAB in UTC, TimeSpan intervals and retry delays (past due: test_timers.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devhost.catalog import RetryPolicy
from devhost.errors import FunctionLoadError
from devhost.schedule import CronSchedule, IntervalSchedule, parse_schedule

T0 = datetime(2026, 1, 1, 12, 0, 1, 500_000, tzinfo=UTC)


def test_seconds_field_comes_first() -> None:
    """'*/5 * * * * *' fires every 5 seconds; the first field is seconds, not minutes."""
    schedule = parse_schedule("*/5 * * * * *")
    first = schedule.next_after(T0)
    assert first == datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
    assert schedule.next_after(first) == datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)


def test_hourly_schedule_fires_on_the_hour_utc() -> None:
    """'0 0 * * * *' (the token refresh default) fires at minute 0, second 0 of the next hour, in UTC."""
    assert parse_schedule("0 0 * * * *").next_after(T0) == datetime(2026, 1, 1, 13, 0, 0, tzinfo=UTC)


def test_five_field_cron_is_refused() -> None:
    """A classic 5-field cron is a load error: NCRONTAB for Functions needs the seconds field."""
    with pytest.raises(FunctionLoadError, match="needs 6"):
        parse_schedule("*/5 * * * *")


def test_invalid_expression_is_refused() -> None:
    """A field out of range is a load error."""
    with pytest.raises(FunctionLoadError, match="not a valid"):
        parse_schedule("0 0 25 * * *")


def test_timespan_schedule_is_an_interval() -> None:
    """'00:00:30' means every 30 seconds."""
    schedule = parse_schedule("00:00:30")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(T0) == T0 + timedelta(seconds=30)
    assert isinstance(parse_schedule("0 * * * * *"), CronSchedule)


def test_retry_delays_fixed_and_exponential() -> None:
    """fixed_delay waits the same each time; exponential_backoff doubles up to its maximum."""
    fixed = RetryPolicy(3, timedelta(seconds=2))
    backoff = RetryPolicy(5, timedelta(seconds=1), timedelta(seconds=5))
    assert [fixed.delay_before(n) for n in (1, 2, 3)] == [2.0, 2.0, 2.0]
    assert [backoff.delay_before(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
