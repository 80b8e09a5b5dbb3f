"""Timer triggers: fire on the schedule (UTC), once at start when run_on_startup, retry per @app.retry; schedule
monitoring (useMonitor) as the host does it.

Source: azure-webjobs-sdk-extensions src/WebJobs.Extensions/Extensions/Timers/Listener/TimerListener.cs
(StartAsync, HandleTimerEvent, InvokeJobFunction) and Scheduling/ScheduleMonitor.cs.
- isPastDue is true only for the one catch-up run at listener start, when the timer is monitored and its recorded
  Next is in the past (an occurrence was missed while no host ran it). Every other run is not past due, however
  late it starts.
- The next occurrence is computed from when a run started (or its scheduled time, if it fired early), so a run
  that outlasts its interval is followed at once by one more run; a timer never overlaps itself.
- A monitored timer's status (Last, Next, LastUpdated) is recorded after each run and passed to the function as
  schedule_status; an unmonitored timer (useMonitor false, or a sub-minute schedule) gets schedule_status None.
- The host keeps the status in the AzureWebJobsStorage account (StorageScheduleMonitor.cs: the blob
  azure-webjobs-hosts/timers/<host id>/<timer>/status). devhost keeps it in that same account, in the table
  devhosttimerstatus (PartitionKey host id, RowKey timer), not in a local file: the status then lives and dies
  with the storage account, as on the host (a test's Azurite starts empty; several devhost processes on one
  account share it), and devhost's Azurite serves queues and tables only, no blobs.
Not reproduced: the singleton lock across instances (two devhost processes both run a timer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.functions.timer import TimerRequest

from devhost.catalog import FunctionSpec, TimerFunction
from devhost.invoker import Invocation
from devhost.schedule import NEVER, ScheduleMonitor, ScheduleStatus, check_past_due
from devhost.storage import StorageClients, StorageConnection
from devhost.waiting import wait_any

_log = logging.getLogger("devhost.timer")
STATUS_TABLE = "devhosttimerstatus"


class TimerInvoker(Protocol):
    """What a timer needs of devhost's Invoker."""

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger_value: object,
        *,
        reason: str,
        details: Mapping[str, object] | None = None,
        retry_count: int = 0,
    ) -> Invocation:
        """Call the function; never raises for a failure of the function itself."""
        ...


class TableScheduleMonitor:
    """Schedule status in a table of the AzureWebJobsStorage account (ISO 8601 strings: a table's DateTime
    cannot hold the host's "never", year 1)."""

    def __init__(self, storage: StorageClients, connection: StorageConnection, host_id: str) -> None:
        self._storage = storage
        self._connection = connection
        self._host_id = host_id

    async def get_status(self, timer: str) -> ScheduleStatus | None:
        """The recorded status, or None."""
        table = await self._storage.table(self._connection, STATUS_TABLE)
        try:
            entity = await table.get_entity(self._host_id, timer)
        except ResourceNotFoundError:
            return None
        return ScheduleStatus(
            datetime.fromisoformat(entity["Last"]),
            datetime.fromisoformat(entity["Next"]),
            datetime.fromisoformat(entity["LastUpdated"]),
        )

    async def update_status(self, timer: str, status: ScheduleStatus) -> None:
        """Record the status (upsert)."""
        table = await self._storage.table(self._connection, STATUS_TABLE)
        await table.upsert_entity({"PartitionKey": self._host_id, "RowKey": timer, **status.as_binding()})


def _monitor_for(
    timer: TimerFunction, storage: StorageClients | None, monitor: ScheduleMonitor | None
) -> ScheduleMonitor | None:
    if not timer.use_monitor:
        return None  # TimerListener: ScheduleMonitor = UseMonitor ? scheduleMonitor : null
    if monitor is None and storage is not None and timer.status_store is not None:
        monitor = TableScheduleMonitor(storage, timer.status_store, timer.host_id)
    if monitor is None:
        _log.warning(
            "Timer '%s' has useMonitor but AzureWebJobsStorage is not set: it runs unmonitored",
            timer.spec.name,
        )
    return monitor


class TimerRunner:
    """Runs one timer function until stopping is set; an invocation in progress is allowed to finish.

    `storage` gives a monitored timer its status table; `monitor` replaces that store and `clock` the wall clock
    (tests)."""

    def __init__(
        self,
        timer: TimerFunction,
        invoker: TimerInvoker,
        stopping: asyncio.Event,
        storage: StorageClients | None = None,
        *,
        monitor: ScheduleMonitor | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._timer = timer
        self._now = clock
        self._invoker = invoker
        self._stopping = stopping
        self._monitor = _monitor_for(timer, storage, monitor)
        self._status = ScheduleStatus(NEVER, NEVER, NEVER)

    async def run(self) -> None:
        """The timer loop: a past-due catch-up or run_on_startup first, then the schedule."""
        past_due = await self._start()
        if past_due:
            _log.info("Timer '%s' is past due: running it now", self._timer.spec.name)
            await self._fire(past_due=True, reason="timer (past due)", scheduled=False)
        elif self._timer.run_on_startup:
            await self._fire(past_due=False, reason="timer (run on startup)", scheduled=False)
        while not self._stopping.is_set():
            delay = (self._status.next - self._now()).total_seconds()
            if await wait_any(self._stopping, within=max(delay, 0.0)):
                return
            await self._fire(past_due=False, reason="timer", scheduled=True)

    async def _start(self) -> bool:
        """TimerListener.StartAsync: the status to start from, and whether an occurrence was missed."""
        now = self._now()
        self._status = ScheduleStatus(NEVER, self._timer.schedule.next_after(now), NEVER)
        if self._monitor is None:
            return False
        try:
            past_due, self._status = await check_past_due(
                self._monitor, self._timer.spec.name, now, self._timer.schedule
            )
        except AzureError as exc:
            _log.error("Timer '%s': reading its schedule status failed: %s", self._timer.spec.name, exc)
            return False
        return past_due

    async def _fire(self, *, past_due: bool, reason: str, scheduled: bool) -> None:
        started = self._now()
        details = {"schedule": self._timer.expression, "past_due": past_due}
        status = self._status.as_binding() if self._monitor is not None else None
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
        result = await self._invoker.invoke(self._timer.spec, request, reason=reason, details=details)
        retry = self._timer.spec.retry
        attempt = 0
        while not result.succeeded and retry is not None and attempt < retry.max_retry_count:
            attempt += 1
            if await wait_any(self._stopping, within=retry.delay_before(attempt)):
                break
            result = await self._retry(request, details, attempt)
        await self._record(started, scheduled)

    async def _record(self, started: datetime, scheduled: bool) -> None:
        """TimerListener.InvokeJobFunction's new status: from the run's start, or from the occurrence itself
        when a scheduled run fired early (so the same Next is never set twice)."""
        at = self._status.next if scheduled and self._status.next > started else started
        self._status = ScheduleStatus(at, self._timer.schedule.next_after(at), at)
        if self._monitor is None:
            return
        try:
            await self._monitor.update_status(self._timer.spec.name, self._status)
        except AzureError as exc:  # the host logs it and keeps the schedule (HandleTimerEvent)
            _log.error("Timer '%s': recording its schedule status failed: %s", self._timer.spec.name, exc)

    async def _retry(self, request: TimerRequest, details: dict[str, object], attempt: int) -> Invocation:
        _log.info("Retrying 'Functions.%s' (retry %d)", self._timer.spec.name, attempt)
        return await self._invoker.invoke(
            self._timer.spec,
            request,
            reason="timer (retry)",
            details={**details, "retry": attempt},
            retry_count=attempt,
        )
