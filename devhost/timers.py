"""Timer triggers: fire on the schedule (UTC), once at start when run_on_startup, retry per @app.retry.

Like the host, a timer never overlaps itself: the next occurrence is computed after an invocation ends, so
occurrences missed while it ran are skipped. past_due is true when an invocation starts more than a second
after its scheduled time. Schedule monitoring (useMonitor: occurrences persisted in host storage, past-due
catch-up after downtime) and the singleton lock across instances are not reproduced.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest

from devhost.catalog import TimerFunction
from devhost.invoker import Invocation, Invoker
from devhost.waiting import wait_any

_log = logging.getLogger("devhost.timer")
PAST_DUE_AFTER = timedelta(seconds=1)


def is_past_due(scheduled: datetime, started: datetime) -> bool:
    """Whether an invocation starting at `started` is late for the occurrence at `scheduled`."""
    return started - scheduled > PAST_DUE_AFTER


def timer_request(past_due: bool, last: datetime | None, scheduled: datetime | None) -> TimerRequest:
    """The TimerRequest the worker passes (schedule_status shaped like the host's Last/Next/LastUpdated)."""
    status = {
        "Last": (last or datetime.min.replace(tzinfo=UTC)).isoformat(),
        "Next": (scheduled or datetime.now(UTC)).isoformat(),
        "LastUpdated": datetime.now(UTC).isoformat(),
    }
    return TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})


class TimerRunner:
    """Runs one timer function until stopping is set; an invocation in progress is allowed to finish."""

    def __init__(self, timer: TimerFunction, invoker: Invoker, stopping: asyncio.Event) -> None:
        self._timer = timer
        self._invoker = invoker
        self._stopping = stopping
        self._last: datetime | None = None

    async def run(self) -> None:
        """The timer loop."""
        if self._timer.run_on_startup:
            await self._fire(None, past_due=False, reason="timer (run on startup)")
        after = datetime.now(UTC)
        while not self._stopping.is_set():
            scheduled = self._timer.schedule.next_after(after)
            delay = (scheduled - datetime.now(UTC)).total_seconds()
            if await wait_any(self._stopping, within=max(delay, 0.0)):
                return
            await self._fire(scheduled, past_due=is_past_due(scheduled, datetime.now(UTC)), reason="timer")
            after = max(scheduled, datetime.now(UTC))

    async def _fire(self, scheduled: datetime | None, *, past_due: bool, reason: str) -> None:
        details = {"schedule": self._timer.expression, "past_due": past_due}
        request = timer_request(past_due, self._last, scheduled)
        result = await self._invoker.invoke(self._timer.spec, request, reason=reason, details=details)
        retry = self._timer.spec.retry
        attempt = 0
        while not result.succeeded and retry is not None and attempt < retry.max_retry_count:
            attempt += 1
            if await wait_any(self._stopping, within=retry.delay_before(attempt)):
                break
            result = await self._retry(request, details, attempt)
        self._last = scheduled or datetime.now(UTC)

    async def _retry(self, request: TimerRequest, details: dict[str, object], attempt: int) -> Invocation:
        _log.info("Retrying 'Functions.%s' (retry %d)", self._timer.spec.name, attempt)
        return await self._invoker.invoke(
            self._timer.spec,
            request,
            reason="timer (retry)",
            details={**details, "retry": attempt},
            retry_count=attempt,
        )
