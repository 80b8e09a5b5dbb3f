"""Timer runs as the host's TimerListener makes them: isPastDue only for the catch-up at start of a monitored
timer that missed an occurrence; schedule status recorded and passed only when monitored."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import azure.functions as func
from azure.functions.timer import TimerRequest

from devhost.catalog import FunctionSpec, TimerFunction, build_catalog, functions_of
from devhost.invoker import Invocation
from devhost.schedule import NEVER, CronSchedule, ScheduleStatus, check_past_due, monitor_allowed
from devhost.timers import TimerRunner

HOURLY = CronSchedule("0 0 * * * *")
T0 = datetime(2026, 1, 1, 12, 20, tzinfo=UTC)


@dataclass
class Clock:
    """A wall clock the test moves."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class MemoryMonitor:
    """Schedule status in memory (the host keeps it in AzureWebJobsStorage)."""

    statuses: dict[str, ScheduleStatus] = field(default_factory=dict)

    async def get_status(self, timer: str) -> ScheduleStatus | None:
        return self.statuses.get(timer)

    async def update_status(self, timer: str, status: ScheduleStatus) -> None:
        self.statuses[timer] = status


@dataclass
class Runs:
    """A fake invoker: records each TimerRequest, advances the clock, stops the timer after `stop_after` runs."""

    stopping: asyncio.Event
    clock: Clock
    stop_after: int
    advance: timedelta = timedelta(0)
    seen: list[TimerRequest] = field(default_factory=list)

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger_value: object,
        *,
        reason: str,
        details: Mapping[str, object] | None = None,
        retry_count: int = 0,
    ) -> Invocation:
        assert isinstance(trigger_value, TimerRequest)
        self.seen.append(trigger_value)
        self.clock.now += self.advance
        if len(self.seen) >= self.stop_after:
            self.stopping.set()
        return Invocation("id", True, 1.0)


def _timer(use_monitor: bool | None, run_on_startup: bool = False) -> TimerFunction:
    app = func.FunctionApp()

    @app.timer_trigger(
        arg_name="timer", schedule="0 0 * * * *", run_on_startup=run_on_startup, use_monitor=use_monitor
    )
    def hourly(timer: func.TimerRequest) -> None:
        return None

    [timer] = build_catalog(functions_of(app), {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}).timers
    return timer


async def _run(timer: TimerFunction, monitor: MemoryMonitor, runs: Runs) -> None:
    runner = TimerRunner(timer, runs, runs.stopping, monitor=monitor, clock=runs.clock)
    await asyncio.wait_for(runner.run(), timeout=5)


def test_use_monitor_defaults_to_true_and_is_read_from_the_metadata() -> None:
    """useMonitor unset means monitored (the host's default); use_monitor=False is kept."""
    assert _timer(None).use_monitor is True
    assert _timer(False).use_monitor is False


def test_sub_minute_schedules_are_never_monitored() -> None:
    """The host turns useMonitor off for schedules firing more than once a minute."""
    assert not monitor_allowed(CronSchedule("*/10 * * * * *"), T0)
    assert monitor_allowed(CronSchedule("0 * * * * *"), T0)
    assert monitor_allowed(CronSchedule("*/10 5 * * * *"), T0)


async def test_restart_after_a_missed_occurrence_runs_once_past_due() -> None:
    """Recorded Next 12:00 is past at 12:20: one immediate run with isPastDue and the recorded status."""
    monitor = MemoryMonitor(
        {
            "hourly": ScheduleStatus(
                T0 - timedelta(hours=1, minutes=20),
                T0 - timedelta(minutes=20),
                T0 - timedelta(hours=1, minutes=20),
            )
        }
    )
    clock = Clock()
    runs = Runs(asyncio.Event(), clock, stop_after=1)
    await _run(_timer(True), monitor, runs)
    [catch_up] = runs.seen
    assert catch_up.past_due is True
    assert catch_up.schedule_status["Next"] == (T0 - timedelta(minutes=20)).isoformat()
    assert monitor.statuses["hourly"] == ScheduleStatus(T0, T0 + timedelta(minutes=40), T0)


async def test_a_late_normal_run_is_not_past_due() -> None:
    """A startup run that outlasts the hour makes the 13:00 run start 5 s late: it is still not past due."""
    clock = Clock()
    runs = Runs(asyncio.Event(), clock, stop_after=2, advance=timedelta(minutes=40, seconds=5))
    monitor = MemoryMonitor()
    await _run(_timer(True, run_on_startup=True), monitor, runs)
    assert [run.past_due for run in runs.seen] == [False, False]
    assert runs.seen[1].schedule_status["Next"] == "2026-01-01T13:00:00+00:00"
    assert monitor.statuses["hourly"].last == clock.now - timedelta(minutes=40, seconds=5)


async def test_first_start_records_a_status_and_is_not_past_due() -> None:
    """A timer with no recorded status records Next and waits for it instead of running."""
    monitor = MemoryMonitor()
    past_due, status = await check_past_due(monitor, "hourly", T0, HOURLY)
    assert past_due is False
    assert status.next == monitor.statuses["hourly"].next == T0 + timedelta(minutes=40)


async def test_a_changed_schedule_is_not_a_missed_occurrence() -> None:
    """A recorded Next that the schedule could not have produced is recomputed from now, not run past due."""
    monitor = MemoryMonitor(
        {"hourly": ScheduleStatus(T0 - timedelta(days=1), T0 - timedelta(hours=3), T0 - timedelta(days=1))}
    )
    past_due, status = await check_past_due(monitor, "hourly", T0, HOURLY)
    assert past_due is False
    assert status == ScheduleStatus(NEVER, T0 + timedelta(minutes=40), T0)


async def test_unmonitored_timer_has_no_catch_up_and_no_status() -> None:
    """useMonitor false: a past recorded Next is ignored, nothing is recorded, no schedule status is passed."""
    stale = ScheduleStatus(T0 - timedelta(hours=2), T0 - timedelta(hours=1), T0 - timedelta(hours=2))
    monitor = MemoryMonitor({"hourly": stale})
    clock = Clock()
    runs = Runs(asyncio.Event(), clock, stop_after=1)
    await _run(_timer(False, run_on_startup=True), monitor, runs)
    [startup] = runs.seen
    assert (startup.past_due, startup.schedule_status) == (False, {})  # the host sends null; TimerRequest: {}
    assert monitor.statuses == {"hourly": stale}
