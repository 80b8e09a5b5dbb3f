"""Injected faults and latency for BC: rates drawn from the seeded generator, or a queue of forced faults."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    """What can go wrong with one request."""

    TOO_MANY_REQUESTS = "429"  # refused before running; Retry-After unless switched off (see FaultRates)
    REQUEST_TIMEOUT = "408"  # the operation runs (a write commits), then BC answers 408: the 8-minute timeout
    BAD_GATEWAY = "502"  # refused before running, with Retry-After
    UNAVAILABLE = "503"  # refused before running, with Retry-After
    GATEWAY_TIMEOUT = "504"
    DROP = "drop"  # the connection closes before any response; nothing was applied
    SPIKE = "spike"  # the response is late by spike_ms
    AMBIGUOUS_WRITE = "ambiguous_write"  # the change is committed, then the connection drops


# Faults answered after the operation ran: the client cannot tell whether its write was applied (it was).
AFTER_RUNNING = frozenset({Fault.REQUEST_TIMEOUT})


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Per-request probabilities (0..1) of each fault, and their parameters."""

    rate_429: float = 0.0
    rate_408: float = 0.0
    rate_502: float = 0.0
    rate_503: float = 0.0
    rate_504: float = 0.0
    rate_drop: float = 0.0
    rate_spike: float = 0.0
    rate_ambiguous_write: float = 0.0  # of write requests
    spike_ms: float = 2000.0
    # Retry-After on injected 429/502/503. None: a 429 comes without one (BC documents none on 429), while 502/503,
    # documented to carry one, fall back to SandboxConfig.bc_retry_after_seconds_503. A 429 also loses it when
    # the limits say retry_after_on_429=False.
    retry_after_seconds: int | None = 1


@dataclass(frozen=True, slots=True)
class Latency:
    """Service time added to every request: base + uniform jitter."""

    base_ms: float = 0.0
    jitter_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What happens to one request: an error fault (or none), extra delay, and whether a write gets lost."""

    error: Fault | None
    delay_ms: float
    ambiguous_write: bool


def draw(
    rng: random.Random, rates: FaultRates, latency: Latency, forced: Fault | None, is_write: bool
) -> FaultPlan:
    """Decide the fate of one request."""
    delay = latency.base_ms + (rng.uniform(0, latency.jitter_ms) if latency.jitter_ms else 0.0)
    if forced is not None:
        if forced is Fault.SPIKE:
            return FaultPlan(None, delay + rates.spike_ms, False)
        if forced is Fault.AMBIGUOUS_WRITE:
            return FaultPlan(None, delay, True)
        return FaultPlan(forced, delay, False)
    if rates.rate_spike and rng.random() < rates.rate_spike:
        delay += rates.spike_ms
    roll = rng.random()
    for fault, rate in (
        (Fault.TOO_MANY_REQUESTS, rates.rate_429),
        (Fault.UNAVAILABLE, rates.rate_503),
        (Fault.GATEWAY_TIMEOUT, rates.rate_504),
        (Fault.DROP, rates.rate_drop),
        (Fault.REQUEST_TIMEOUT, rates.rate_408),
        (Fault.BAD_GATEWAY, rates.rate_502),
    ):
        if roll < rate:
            return FaultPlan(fault, delay, False)
        roll -= rate
    ambiguous = is_write and bool(rates.rate_ambiguous_write) and rng.random() < rates.rate_ambiguous_write
    return FaultPlan(None, delay, ambiguous)
