"""devhost's timer triggers: NCRONTAB schedules with seconds, run_on_startup."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devhost.host import DevHost
from tests.integration.devhost.sample_app import Recorder

pytestmark = pytest.mark.integration

StartHost = Callable[[dict[str, str]], DevHost]


def test_timer_fires_on_its_six_field_schedule(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """'*/1 * * * * *' (resolved from %SAMPLE_TIMER_SCHEDULE%) fires on consecutive seconds, not past due.

    The first tick waits for its worker process to start; the next occurrence is computed from that run's start
    (as TimerListener does), so when the start took over a second the second tick follows at once. From then on,
    the ticks are a second apart."""
    settings = {**sample_settings, "AzureWebJobs.tick.Disabled": "false"}
    start_devhost(settings)
    ticks = recorder.wait_for("tick", count=4, timeout=15)
    assert [tick.data["past_due"] for tick in ticks[:4]] == [False] * 4
    seconds = [int(float(str(tick.data["wall"]))) for tick in ticks[:4]]
    assert seconds[2] - seconds[1] in (1, 2)
    assert seconds[3] - seconds[2] in (1, 2)


def test_run_on_startup_fires_once_at_start(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """A yearly timer with run_on_startup=True runs right after the host starts."""
    start_devhost({**sample_settings, "AzureWebJobs.on_startup.Disabled": "false"})
    [startup] = recorder.wait_for("startup", timeout=5)
    assert startup.data["past_due"] is False


def test_disabled_timer_never_fires(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """AzureWebJobs.<name>.Disabled=true keeps the every-second timer from running."""
    host = start_devhost({**sample_settings, "AzureWebJobs.on_startup.Disabled": "false"})
    recorder.wait_for("startup", timeout=5)
    assert "tick" in host.catalog.disabled
    assert recorder.events("tick") == []


def test_timer_retry_policy_retries_a_failing_run(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """@app.retry(fixed_delay, max_retry_count=2) runs a failing timer again, with the retry count in context."""
    start_devhost({**sample_settings, "AzureWebJobs.flaky.Disabled": "false"})
    runs = recorder.wait_for("flaky", count=3, timeout=5)
    assert [run.data["retry_count"] for run in runs] == [0, 1, 2]
    assert {run.data["max_retry_count"] for run in runs} == {2}
    assert runs[1].at - runs[0].at >= 0.15
