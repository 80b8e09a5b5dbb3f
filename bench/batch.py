"""`$batch` speed-up through the pipeline: the same updates of the same records, once as one job per operation
(one BC request each) and once as one `batch` job (BC `$batch` requests of up to 100 operations).

One worker process, BC at its real rate (20 requests/s, window compressed) with 20 ± 20 ms latency. Each side's
time runs from the first message sent to the last job succeeded, as an application would see it.
"""

from __future__ import annotations

import time
from typing import Any

from bcjobs import JobState
from bench.world import BenchWorld, b64, unique_prefix
from localworld.instances import InstancePool


def _wait_final(world: BenchWorld, table: str, count: int, timeout: float = 300) -> dict[str, int]:
    """Until `count` rows are final; the rows by state."""
    deadline = time.monotonic() + timeout
    while True:
        states = world.states(table)
        if sum(n for state, n in states.items() if JobState(state).terminal) >= count:
            return states
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} jobs did not finish in {timeout:.0f}s: {states}")
        time.sleep(0.1)


def _updates(world: BenchWorld, operations: int, tag: str) -> list[dict[str, Any]]:
    customers = world.customers
    return [
        {
            "operation": "update",
            "entitySet": "customers",
            "id": customers[n % len(customers)],
            "data": {"phoneNumber": f"+1 425 {tag} {n:04d}"},
            "etag": "*",
        }
        for n in range(operations)
    ]


def batch_speedup(world: BenchWorld, operations: int = 200) -> dict[str, Any]:
    """Operations per second as single-operation jobs and as one batch job; the ratio."""
    rate_limit, window = 400, 20.0
    world.reset(rate_limit=rate_limit, window_seconds=window, latency_ms=20, jitter_ms=20)
    prefix = unique_prefix("b")
    settings = world.app_settings(
        prefix,
        proxied=False,
        BC_RATE_LIMIT_REQUESTS=str(rate_limit),
        BC_RATE_LIMIT_WINDOW_SECONDS=str(window),
        BC_RATE_SAFETY_MARGIN="0.03",
    )
    table = f"{prefix}jobs"
    with world.instances(settings, 1) as pool:
        _warm_up(world, pool, table)
        singles = [{"jobId": f"single-{n}", **op} for n, op in enumerate(_updates(world, operations, "555"))]
        started = time.monotonic()
        world.enqueue([b64(job) for job in singles])
        single_states = _wait_final(world, table, 1 + operations)
        single_seconds = time.monotonic() - started
        requests_before = sum(
            int(n) for v in world.sandbox.stats()["bc"]["requests"].values() for n in v.values()
        )
        batch = {"jobId": "batch-1", "operation": "batch", "operations": _updates(world, operations, "556")}
        started = time.monotonic()
        world.enqueue([b64(batch)])
        _wait_final(world, table, 2 + operations)
        batch_seconds = time.monotonic() - started
        stats = world.sandbox.stats()
        batch_report = world.report(table, "batch-1")
    batch_requests = (
        sum(int(n) for v in stats["bc"]["requests"].values() for n in v.values()) - requests_before
    )
    single_rate, batch_rate = operations / single_seconds, operations / batch_seconds
    return {
        "operations": operations,
        "records": min(operations, len(world.customers)),
        "single_ops_per_second": round(single_rate, 1),
        "batch_ops_per_second": round(batch_rate, 1),
        "speedup": round(batch_rate / single_rate, 1),
        "single_seconds": round(single_seconds, 2),
        "batch_seconds": round(batch_seconds, 2),
        "batch_bc_requests": batch_requests,
        "single_job_states": single_states,
        "batch_job_state": batch_report.state.value if batch_report else None,
        "batch_job_error": batch_report.error.message if batch_report and batch_report.error else None,
        "allowed_rps": rate_limit / window,
        "note": "the sandbox counts one $batch request as one request against the window "
        "(bc_batch_counts_operations=False, UNCONFIRMED for real BC)",
    }


def _warm_up(world: BenchWorld, pool: InstancePool, table: str) -> None:
    """One job first: tables created, token fetched, throttle joined."""
    del pool
    world.enqueue(
        [b64({"jobId": "warm-up", "operation": "get", "entitySet": "customers", "id": world.customers[0]})]
    )
    _wait_final(world, table, 1, timeout=60)
