"""TransientGate: closed for a growing backoff after failures in a row, open again after a success."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.auth.errors import TokenRefreshFailedError
from shared.auth.transient_gate import TransientGate
from testkit.clock import ManualClock


def test_a_failure_closes_the_gate_and_tells_the_failure_when_to_retry() -> None:
    """After one failure check() raises until the backoff (about 5 s) ends; the failure carries that time."""
    clock = ManualClock()
    gate = TransientGate("c", clock)
    failure = TokenRefreshFailedError("Entra answered 503")

    reopens = gate.close_after(failure)

    assert failure.retry_after == reopens
    assert timedelta(seconds=4) <= reopens - clock.now() <= timedelta(seconds=6)
    with pytest.raises(TokenRefreshFailedError):
        gate.check()
    clock.move_to(reopens)
    gate.check()
    assert not gate.is_closed()


def test_failures_in_a_row_lengthen_the_backoff_and_a_success_resets_it() -> None:
    """Each failure in a row waits longer; open() forgets them."""
    clock = ManualClock()
    gate = TransientGate("c", clock)
    first = gate.close_after(TokenRefreshFailedError("1")) - clock.now()
    second = gate.close_after(TokenRefreshFailedError("2")) - clock.now()
    assert second > first
    assert gate.failures_in_a_row == 2

    gate.open()

    assert not gate.is_closed()
    assert gate.failures_in_a_row == 0
