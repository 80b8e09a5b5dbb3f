"""Timer schedules: 6-field NCRONTAB (seconds first, UTC) or a TimeSpan interval, as the timer trigger takes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter

from devhost.errors import FunctionLoadError
from devhost.hostconfig import parse_timespan


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """{second} {minute} {hour} {day} {month} {day-of-week}, evaluated in UTC."""

    expression: str

    def next_after(self, moment: datetime) -> datetime:
        """Next occurrence via croniter with second_at_beginning=True: NCRONTAB's six fields, seconds first
        (learn.microsoft.com/azure/azure-functions/functions-bindings-timer; checked on croniter 7.0.0)."""
        following: datetime = croniter(self.expression, moment, second_at_beginning=True).get_next(datetime)
        return following


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """A TimeSpan schedule ("00:05:00"): every interval after the previous occurrence."""

    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        """moment + interval."""
        return moment + self.interval


def parse_schedule(expression: str) -> CronSchedule | IntervalSchedule:
    """Parse a resolved schedule; a 5-field cron or anything croniter rejects raises FunctionLoadError."""
    text = expression.strip()
    if ":" in text and " " not in text:
        try:
            interval = parse_timespan(text)
        except ValueError as exc:
            raise FunctionLoadError(str(exc)) from exc
        if interval <= timedelta(0):
            raise FunctionLoadError(f"schedule {expression!r}: interval must be positive")
        return IntervalSchedule(interval)
    fields = text.split()
    if len(fields) != 6:
        raise FunctionLoadError(
            f"schedule {expression!r} has {len(fields)} fields; NCRONTAB needs 6 "
            "({second} {minute} {hour} {day} {month} {day-of-week})"
        )
    if not croniter.is_valid(text, second_at_beginning=True):
        raise FunctionLoadError(f"schedule {expression!r} is not a valid NCRONTAB expression")
    return CronSchedule(text)
