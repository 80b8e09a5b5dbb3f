"""Drawing BC faults: forced kinds and a rate for every kind."""

from __future__ import annotations

import random

import pytest

from sandbox.bc.faults import Fault, FaultRates, Latency, draw

NO_LATENCY = Latency()


@pytest.mark.parametrize("kind", [Fault.TOO_MANY_REQUESTS, Fault.REQUEST_TIMEOUT, Fault.BAD_GATEWAY])
def test_forced_error_kinds_are_planned_as_errors(kind: Fault) -> None:
    """A forced 429, 408 or 502 becomes the request's error fault, whatever the rates."""
    plan = draw(random.Random(1), FaultRates(), NO_LATENCY, kind, is_write=True)
    assert plan.error is kind
    assert not plan.ambiguous_write


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        (FaultRates(rate_408=1.0), Fault.REQUEST_TIMEOUT),
        (FaultRates(rate_502=1.0), Fault.BAD_GATEWAY),
        (FaultRates(rate_429=1.0, retry_after_seconds=None), Fault.TOO_MANY_REQUESTS),
    ],
)
def test_every_kind_can_be_drawn_by_rate(rates: FaultRates, expected: Fault) -> None:
    """A rate of 1 draws that fault on every request."""
    rng = random.Random(1)
    assert {draw(rng, rates, NO_LATENCY, None, is_write=False).error for _ in range(20)} == {expected}


def test_ambiguous_write_is_drawn_for_writes_only() -> None:
    """rate_ambiguous_write=1 marks every write and no read."""
    rates = FaultRates(rate_ambiguous_write=1.0)
    rng = random.Random(1)
    assert draw(rng, rates, NO_LATENCY, None, is_write=True).ambiguous_write
    assert not draw(rng, rates, NO_LATENCY, None, is_write=False).ambiguous_write
