"""Backoff numbers: growth, cap and jitter bounds."""

from __future__ import annotations

import random
from datetime import timedelta

from shared.auth.timing import ADMIN_NEEDED_BACKOFF, TRANSIENT_BACKOFF, Backoff


def test_backoff_doubles_and_stops_at_the_cap() -> None:
    """Without jitter: first, 2x, 4x ... capped."""
    backoff = Backoff(first=timedelta(seconds=5), cap=timedelta(seconds=30), jitter=0.0)
    assert [backoff.delay(n).total_seconds() for n in range(1, 6)] == [5, 10, 20, 30, 30]


def test_jitter_stays_within_its_band_and_under_the_cap() -> None:
    """Jittered delays stay within +-10 % of nominal and never exceed the cap."""
    rng = random.Random(7)
    for attempt in range(1, 12):
        delay = TRANSIENT_BACKOFF.delay(attempt, rng).total_seconds()
        nominal = min(300.0, 5.0 * 2 ** (attempt - 1))
        assert nominal * 0.9 <= delay <= min(300.0, nominal * 1.1)


def test_transient_gate_outlasts_msal_replay_window_and_admin_probes_are_hourly_to_daily() -> None:
    """First transient delay >= MSAL's 5 s replay; admin-needed probes go 1 h, 2 h, ... up to 24 h."""
    assert TRANSIENT_BACKOFF.delay(1, random.Random(1)) >= timedelta(seconds=4.5)
    assert ADMIN_NEEDED_BACKOFF.delay(1) == timedelta(hours=1)
    assert ADMIN_NEEDED_BACKOFF.delay(10) == timedelta(hours=24)
