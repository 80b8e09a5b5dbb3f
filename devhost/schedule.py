"""Timer schedules: 6-field NCRONTAB (seconds first, UTC) or a TimeSpan interval, as the timer trigger takes them;
and schedule monitoring (useMonitor): the status the host persists per timer and its past-due check at start."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

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


# default(DateTime) in the host's ScheduleStatus: "never".
NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ScheduleStatus:
    """The host's per-timer ScheduleStatus: the last run, the next occurrence, when Next was computed."""

    last: datetime
    next: datetime
    last_updated: datetime

    def as_binding(self) -> dict[str, str]:
        """The shape the worker's TimerRequest.schedule_status carries (Last/Next/LastUpdated)."""
        return {
            "Last": self.last.isoformat(),
            "Next": self.next.isoformat(),
            "LastUpdated": self.last_updated.isoformat(),
        }


class ScheduleMonitor(Protocol):
    """Where schedule status is persisted (the host: a blob per timer in AzureWebJobsStorage)."""

    async def get_status(self, timer: str) -> ScheduleStatus | None:
        """The recorded status, or None if this timer never recorded one."""
        ...

    async def update_status(self, timer: str, status: ScheduleStatus) -> None:
        """Record the status."""
        ...


def monitor_allowed(schedule: CronSchedule | IntervalSchedule, now: datetime) -> bool:
    """False for schedules firing more than once a minute, whose useMonitor the host turns off
    (azure-webjobs-sdk-extensions src/WebJobs.Extensions/Extensions/Timers/Scheduling/TimerSchedule.cs Create,
    ShouldDisableScheduleMonitor: "* * * * *" after the seconds field with several occurrences in a minute)."""
    if isinstance(schedule, IntervalSchedule):
        return schedule.interval >= timedelta(minutes=1)
    if any(field != "*" for field in schedule.expression.split()[1:]):
        return True
    first = schedule.next_after(now)
    return schedule.next_after(first) > now + timedelta(minutes=1)


def _expected_next(
    schedule: CronSchedule | IntervalSchedule, now: datetime, status: ScheduleStatus
) -> tuple[datetime, datetime]:
    """The Next the recorded status should hold, and the time it was computed from (ScheduleMonitor.cs)."""
    if status.last != NEVER:
        return schedule.next_after(status.last), status.last
    if status.last_updated != NEVER:
        return schedule.next_after(status.last_updated), status.last_updated
    return schedule.next_after(now), now


async def check_past_due(
    monitor: ScheduleMonitor, timer: str, now: datetime, schedule: CronSchedule | IntervalSchedule
) -> tuple[bool, ScheduleStatus]:
    """ScheduleMonitor.CheckPastDueAsync at listener start: whether an occurrence was missed since the recorded
    Next, and the status to start from. A first start records an initial status; a changed schedule is
    re-recorded from now, so it does not count as missed (azure-webjobs-sdk-extensions
    src/WebJobs.Extensions/Extensions/Timers/Scheduling/ScheduleMonitor.cs, Listener/TimerListener.cs StartAsync)."""
    status = await monitor.get_status(timer)
    if status is None:
        first = schedule.next_after(now)
        await monitor.update_status(timer, ScheduleStatus(NEVER, first, now))
        return False, ScheduleStatus(NEVER, first, NEVER)  # TimerListener's own initial status
    expected, computed_from = _expected_next(schedule, now, status)
    if status.next != expected:
        if now > expected:
            expected, computed_from = schedule.next_after(now), now
        status = ScheduleStatus(NEVER, expected, computed_from)
        await monitor.update_status(timer, status)
    return now > status.next, status
