"""A test-only Function app with one monitored timer (useMonitor left at the host's default, true): it records
each run's isPastDue and schedule status with sample_app.record. Import it as
`tests.integration.devhost.monitor_app:app`."""

from __future__ import annotations

import azure.functions as func

from tests.integration.devhost.sample_app import record

app = func.FunctionApp()


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *")  # yearly: it never fires during a test by itself
def yearly(timer: func.TimerRequest) -> None:
    """Record what the host passed."""
    record("yearly", past_due=timer.past_due, status=getattr(timer, "schedule_status", None))
