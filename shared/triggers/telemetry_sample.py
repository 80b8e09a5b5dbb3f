"""Timer (every minute, UTC): queue depth and oldest message age of bc-jobs and bc-jobs-poison, and the token's
remaining validity, into the gauges of shared.telemetry (exported only when Azure Monitor is configured)."""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
SCHEDULE = "0 * * * * *"  # NCRONTAB, seconds first: once a minute (the queue alerts evaluate every 5 minutes)


@bp.function_name("telemetry_sample")
@bp.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False, use_monitor=False)
async def telemetry_sample(timer: func.TimerRequest) -> None:
    """Read and record; never raises (a failed reading is logged and skipped)."""
    del timer
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.ops import sample_now
    from shared.settings import get_settings

    await sample_now(get_settings())
