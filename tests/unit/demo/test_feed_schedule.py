"""The demo's subscription timer burst: every 2 s just after the workers start, then not for the demo's lifetime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from demo.feed import SUBSCRIBE_WINDOW_SECONDS, burst_schedule
from devhost.schedule import parse_schedule


def test_burst_schedule_fires_soon_after_the_start_and_not_again_within_the_hour() -> None:
    start = datetime(2026, 12, 6, 23, 59, 50, tzinfo=UTC)  # the window crosses a minute, an hour and a day
    schedule = parse_schedule(burst_schedule(start))
    fires, moment = [], start
    while (moment := schedule.next_after(moment)) < start + timedelta(minutes=55):
        fires.append(moment)
    assert fires[0] == start + timedelta(seconds=4)
    assert all(f <= start + timedelta(minutes=2) for f in fires)
    assert start + timedelta(seconds=SUBSCRIBE_WINDOW_SECONDS - 2) in fires
