"""More worker processes than BC slots: what slot-less processes cost (issue 18, point 6).

Flex Consumption caps instances per function group at 40 or more, while one identity has 5 BC slots, so under a
deep queue most `jobs_process` instances hold no slot. Two runs with N devhost instances serving the
`jobs_process` group (default 20):

- `deep`: the pipeline throughput run (`bench/pipeline.py::throughput`) through the counting proxies: BC's
  throughput ÷ its limit, the 429 share, storage calls per successful job (all / the product's / the host's) and,
  from the proxy's counts on `bc-jobs`, invocations per job (the host's deletes: one per invocation that returned)
  and jobs sent back to the queue per job (the product's sends: no-slot requeues and retries).
- `burst`: a burst of jobs (60 s of BC's rate) enqueued before the workers start, run to the end: job latency
  from the burst's start to each job's `FinishedAt` (p50, p95, the last) and the drain time — what holding costs
  at the tail, when the juniors hold the last jobs.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import TableClient

from bench.pipeline import Throughput, throughput
from bench.world import BenchWorld, ok_requests, requests_by_status, unique_prefix

BURST_SECONDS_OF_WORK = 60.0
# Each process serves the jobs_process function group only, as Flex scales it: on 2 cores, 20 whole apps (a worker
# process per group: the timers' too) would measure the machine, not the throttle.
JOBS_GROUP = ("jobs_process",)
BURST_DEADLINE_SECONDS = 600.0


def many_instances(world: BenchWorld, processes: int = 20, measure_seconds: float = 40.0) -> dict[str, Any]:
    """Both runs at `processes` worker processes."""
    spec = Throughput(
        processes=processes, measure_seconds=measure_seconds, proxied=True, functions=JOBS_GROUP
    )
    deep = throughput(world, spec)
    return {"processes": processes, "deep": deep, "burst": burst(world, processes)}


def burst(
    world: BenchWorld, processes: int, rate_limit: int = 400, window_seconds: float = 20.0
) -> dict[str, Any]:
    """Enqueue 60 s of work, start the workers, wait until every job succeeded; latency figures."""
    world.reset(rate_limit=rate_limit, window_seconds=window_seconds, latency_ms=20.0, jitter_ms=20.0)
    prefix = unique_prefix("b")
    jobs = int(rate_limit / window_seconds * BURST_SECONDS_OF_WORK)
    settings = world.app_settings(
        prefix,
        proxied=False,
        BC_RATE_LIMIT_REQUESTS=str(rate_limit),
        BC_RATE_LIMIT_WINDOW_SECONDS=str(window_seconds),
        BC_RATE_SAFETY_MARGIN="0.03",
    )
    world.enqueue(world.get_jobs(jobs, prefix))
    started_at = datetime.now(UTC)
    with world.instances(settings, processes, functions=JOBS_GROUP):
        deadline = time.monotonic() + BURST_DEADLINE_SECONDS
        while world.count_rows(f"{prefix}jobs", "succeeded") < jobs and time.monotonic() < deadline:
            time.sleep(1.0)
        finished = _finished_seconds(world, f"{prefix}jobs", started_at)
    stats = world.sandbox.stats()
    return {
        "jobs": jobs,
        "succeeded": len(finished),
        "ideal_drain_seconds": round(jobs / (rate_limit / window_seconds), 1),
        "latency_p50_seconds": _percentile(finished, 0.50),
        "latency_p95_seconds": _percentile(finished, 0.95),
        "drain_seconds": round(max(finished), 1) if finished else None,
        "bc_ok_requests": ok_requests(stats),
        "throttled": requests_by_status(stats)["429"],
    }


def _finished_seconds(world: BenchWorld, table_name: str, since: datetime) -> list[float]:
    with TableClient.from_connection_string(world.azurite.connection_string, table_name) as table:
        rows = table.query_entities("State eq 'succeeded'", select=["FinishedAt"])
        return sorted(
            (_as_datetime(row["FinishedAt"]) - since).total_seconds() for row in rows if row.get("FinishedAt")
        )


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(fraction * 100) - 1], 1)
