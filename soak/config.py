"""What one soak run does: load, mix, faults, timeline and patience, as frozen data with two presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Faults:
    """BC's background fault rates (per request; ambiguous writes per write) for the whole run."""

    rate_429: float = 0.02
    rate_408: float = 0.004
    rate_502: float = 0.005
    rate_503: float = 0.01
    rate_504: float = 0.005
    rate_drop: float = 0.01
    rate_ambiguous_write: float = 0.01
    retry_after_seconds: int = 1

    def knobs(self) -> dict[str, float | int]:
        """The keyword arguments of `sandbox.bc.faults`."""
        return {
            "rate_429": self.rate_429,
            "rate_408": self.rate_408,
            "rate_502": self.rate_502,
            "rate_503": self.rate_503,
            "rate_504": self.rate_504,
            "rate_drop": self.rate_drop,
            "rate_ambiguous_write": self.rate_ambiguous_write,
            "retry_after_seconds": self.retry_after_seconds,
        }


@dataclass(frozen=True, slots=True)
class Timeline:
    """When each disruption starts, as a share of the load phase, and how long the outages last (seconds)."""

    vault_outage_at: float = 0.10
    vault_outage_seconds: float = 20.0
    entra_outage_at: float = 0.25
    entra_outage_seconds: float = 30.0
    worker_kill_at: float = 0.40
    worker_down_seconds: float = 3.0
    azurite_restart_at: float = 0.55
    azurite_down_seconds: float = 10.0
    bc_outage_at: float = 0.70
    bc_outage_seconds: float = 20.0
    # The sandbox clock jumps one token lifetime: BC and Key Vault refuse every token the workers hold.
    tokens_die_at: float = 0.85


@dataclass(frozen=True, slots=True)
class SoakConfig:
    """One run. `full()` is `make soak`; `short()` is the 60-second version `make test` runs."""

    jobs: int = 5000  # distinct jobs sent (duplicates come on top)
    workers: int = 3
    load_seconds: float = 300.0  # the jobs are sent evenly over this long; the timeline is relative to it
    drain_seconds: float = 600.0  # after the load: how long every job may take to reach a terminal state
    seed: int = 13
    duplicate_share: float = 0.05  # of the valid jobs sent to the queue: sent a second time
    front_door_share: float = 0.10  # of the valid jobs: sent through POST /api/jobs instead of the queue
    malformed_share: float = 0.02  # messages that break the contract (rejected)
    expired_share: float = 0.005  # jobs whose deadline has passed when they arrive (expired)
    token_lifetime_seconds: float = 330.0  # > the 5 min a job's token must last: each token serves ~30 s
    max_attempts: int = 8
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 20.0
    claim_lease_seconds: float = 20.0
    message_lease_seconds: int = 30  # devhost's invisibility per delivery (a killed worker's messages return)
    bc_rate_limit: int = 60000  # per 5-minute window: the soak measures faults, not BC's budget
    # BC's service time: slow enough that the throttle's 5 in flight are used, not only allowed.
    bc_latency_ms: float = 60.0
    bc_latency_jitter_ms: float = 120.0
    faults: Faults = field(default_factory=Faults)
    timeline: Timeline = field(default_factory=Timeline)
    work_dir: Path | None = None  # None: a temporary folder (removed unless keep_work_dir)
    keep_work_dir: bool = False

    @classmethod
    def full(cls, **changes: object) -> SoakConfig:
        """`make soak`: 5,000 jobs over 5 minutes, 3 workers."""
        return cls(**changes)  # type: ignore[arg-type]

    @classmethod
    def short(cls, **changes: object) -> SoakConfig:
        """`make test`: 60 seconds of load, shorter outages, the same disruptions."""
        base: dict[str, object] = {
            "jobs": 600,
            "workers": 2,
            "load_seconds": 60.0,
            "drain_seconds": 240.0,
            "timeline": Timeline(
                vault_outage_seconds=6.0,
                entra_outage_seconds=8.0,
                worker_down_seconds=2.0,
                azurite_down_seconds=5.0,
                bc_outage_seconds=6.0,
            ),
        }
        return cls(**{**base, **changes})  # type: ignore[arg-type]
