"""`python -m bench identities`: throughput scales with a connection's identity pool (issue 23, point 3).

1, 2 and 3 identities of ONE connection on ONE BC environment (the sandbox's primary app and its extra app
registrations), at 1 and 3 worker processes (testkit/worker.py `--identities`): every task runs jobs of
`job_requests` GETs, each job on the identity the product's IdentityPool chooses (shared/jobs/pool.py), each
identity with its own token, BC client and shared throttle. BC's limits are per identity and environment
(learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/operational-limits-online; the sandbox
keys its limiter by the token's object id in each environment, sandbox/bc/app.py `_admitted`), so the allowed rate
is N x the per-identity limit. Target: throughput_ratio >= 0.95 of that, no 429, peak_in_flight <= 5 and
peak_queued 0 for every identity.

A scaled window (bench `throttle`'s way): 400 requests per 20 s per identity is BC's real rate (20/s; 6,000 per
5 minutes) in a window 15 times shorter; the six runs take about five minutes on one Azurite.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.throttle import ThrottleBench, run
from localworld.azurite import Azurite

IDENTITIES_RESULTS = Path(__file__).resolve().parent / "results" / "identities.json"


@dataclass(frozen=True, slots=True)
class IdentitiesBench:
    """The runs' knobs (per identity: BC's rate, scaled window)."""

    identity_counts: tuple[int, ...] = (1, 2, 3)
    process_counts: tuple[int, ...] = (1, 3)
    # BC's real rate, 20/s, in a window 15 times shorter than its 5 minutes (400 per 20 s, as `make bench`): no
    # shorter, or the throttle's 3 % margin (12 requests) no longer covers its members' bursts (3 processes x 2):
    # at 200 per 10 s the windows filled to 200 of 200 and a few requests got 429.
    rate_limit: int = 400
    window_seconds: float = 20.0
    heartbeat_seconds: float = 2.0
    measure_windows: float = 1.5
    latency_ms: float = 20.0
    tasks_per_identity: int = 6  # per process: more than an identity's 5 slots, so none idles
    job_requests: int = 3

    def run_of(self, identities: int, processes: int) -> ThrottleBench:
        """One run's ThrottleBench."""
        return ThrottleBench(
            processes=processes,
            rate_limit=self.rate_limit,
            window_seconds=self.window_seconds,
            heartbeat_seconds=self.heartbeat_seconds,
            measure_windows=self.measure_windows,
            latency_ms=self.latency_ms,
            tasks_per_process=self.tasks_per_identity * identities,
            identities=identities,
            job_requests=self.job_requests,
        )


def identities(spec: IdentitiesBench | None = None) -> dict[str, Any]:
    """Every (identities, processes) run on one Azurite; the figures per run and a summary against the target."""
    spec = spec or IdentitiesBench()
    started = time.time()
    with Azurite() as azurite:
        runs = [
            run(spec.run_of(count, processes), azurite.connection_string)
            for processes in spec.process_counts
            for count in spec.identity_counts
        ]
    return {
        "spec": asdict(spec),
        "runs": runs,
        "summary": [_summary(figures) for figures in runs],
        "target": "throughput_ratio >= 0.95 of N x the per-identity limit, no 429, <= 5 in flight per identity",
        "duration_seconds": round(time.time() - started, 1),
    }


def _summary(figures: dict[str, Any]) -> dict[str, Any]:
    throttled = int(figures["statuses"].get("429", 0))
    return {
        "identities": figures["identities"],
        "processes": figures["processes"],
        "throughput_ratio": figures["throughput_ratio"],
        "achieved_rps": figures["achieved_rps"],
        "allowed_rps": figures["allowed_rps"],
        "per_identity_ok": figures["per_identity_ok"],
        "throttled": throttled,
        "peak_in_flight": figures["peak_in_flight"],
        "peak_queued": figures["peak_queued"],
        "met": figures["throughput_ratio"] >= 0.95
        and throttled == 0
        and figures["peak_in_flight"] <= 5
        and figures["peak_queued"] == 0,
    }


def write(figures: dict[str, Any]) -> None:
    """Keep the figures in bench/results/identities.json."""
    IDENTITIES_RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
