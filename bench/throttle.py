"""`python -m bench throttle --processes N`: how close N processes sharing one throttle get to BC's limit.

Starts Azurite (coordination rows) and the sandbox as a subprocess with a compressed window, runs N worker
processes (testkit/worker.py) against it until a common deadline, then prints one JSON object:

- throughput_ratio: successful answers per second, over the interval in which every worker was admitted,
  divided by BC's allowed rate (identities x rate_limit / window_seconds; the safety margin is *not* taken off).
- throttled_share: 429s / all requests the sandbox received (whole run).
- peak_in_flight / peak_queued: the sandbox's peaks (BC processes 5 at once and queues the rest, so
  "never more than 5 in flight" means peak_queued == 0); peak_window_usage vs rate_limit.
- storage_tx_per_request: coordination transactions of all workers / requests the sandbox received.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devhost.environment import read_env_file
from localworld.azurite import Azurite
from localworld.polling import wait_until
from localworld.processes import stop_process
from testkit.worker import WorkerOptions, command

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class ThrottleBench:
    """The benchmark's knobs."""

    processes: int
    rate_limit: int = 1000
    window_seconds: float = 20.0
    safety_margin: float = 0.03
    heartbeat_seconds: float = 5.0
    measure_windows: float = 3.0
    latency_ms: float = 5.0
    tasks_per_process: int = 8
    # Identity pools (issue 23, bench `identities`): the connection's identities, all on one environment (the
    # sandbox's primary app and its extra ones), and the GETs of one "job" (it keeps its identity throughout).
    identities: int = 1
    job_requests: int = 1
    seed: int = 1

    @property
    def join_allowance_seconds(self) -> float:
        """Time for every worker to start and be admitted (process start + join delay 1.5 heartbeats + 1 s)."""
        return 5.0 + 1.5 * self.heartbeat_seconds + 1.0


def run(bench: ThrottleBench, storage: str | None = None) -> dict[str, Any]:
    """Run the benchmark and return its figures (on the Azurite of `storage` when given, else on its own)."""
    if storage is not None:
        return _run_on(bench, storage)
    with Azurite() as azurite:
        return _run_on(bench, azurite.connection_string)


def _run_on(bench: ThrottleBench, storage: str) -> dict[str, Any]:
    """A fresh sandbox (its counters are the figures) and the workers, with a coordination table of their own."""
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-throttle-") as work:
        work_dir = Path(work)
        sandbox = _start_sandbox(bench, work_dir)
        try:
            env_file = work_dir / "sandbox.env"
            env = read_env_file(env_file)
            stop_at = (
                time.time() + bench.join_allowance_seconds + bench.measure_windows * bench.window_seconds
            )
            reports = _run_workers(bench, env_file, storage, stop_at, work_dir)
            stats = _sandbox_stats(env)
        finally:
            _stop(sandbox)
    return _figures(bench, reports, stats, stop_at, time.time() - started)


# The sandbox launch-and-wait and _stop below look like localworld/instances.py's, but that start_sandbox is a
# demo step bound to its DemoContext (no rate/window/latency flags) and its _stop is private: nothing reusable.
def _start_sandbox(bench: ThrottleBench, work_dir: Path) -> subprocess.Popen[bytes]:
    env_file = work_dir / "sandbox.env"
    command = [
        sys.executable,
        "-m",
        "sandbox",
        "--write-env",
        str(env_file),
        "--bc-rate-limit",
        str(bench.rate_limit),
        "--bc-window-seconds",
        str(bench.window_seconds),
        "--bc-latency-ms",
        str(bench.latency_ms),
        "--work-dir",
        str(work_dir / "sandbox"),
        "--seed",
        str(bench.seed),
        "--extra-clients",
        str(bench.identities - 1),
    ]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
    with contextlib.suppress(TimeoutError):  # reported below with the sandbox's stderr
        wait_until(lambda: env_file.exists() or process.poll() is not None, timeout=60, what="the sandbox")
    if not env_file.exists():
        stop_process(process)  # exited (or stopped now), so reading its stderr to the end cannot block
        error = process.stderr.read().decode(errors="replace") if process.stderr else ""
        _stop(process)
        raise RuntimeError(f"the sandbox did not start: {error[-2000:]}")
    return process


def _run_workers(
    bench: ThrottleBench, env_file: Path, storage: str, stop_at: float, work_dir: Path
) -> list[dict[str, Any]]:
    outputs = [work_dir / f"worker-{n}.json" for n in range(bench.processes)]
    table = f"benchthrottle{uuid.uuid4().hex[:8]}"  # the run's workers share it; no member of an earlier run
    workers = [
        subprocess.Popen(  # noqa: S603 -- argv built by testkit.worker.command
            command(
                WorkerOptions(
                    env_file=env_file,
                    storage=storage,
                    out=out,
                    stop_at=stop_at,
                    requests=bench.rate_limit,
                    window=bench.window_seconds,
                    margin=bench.safety_margin,
                    heartbeat=bench.heartbeat_seconds,
                    tasks=bench.tasks_per_process,
                    table=table,
                    identities=bench.identities,
                    seed=bench.seed,
                    job_requests=bench.job_requests,
                )
            ),
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        for out in outputs
    ]
    for worker in workers:
        if worker.wait(timeout=stop_at - time.time() + 60) != 0:
            raise RuntimeError(f"a worker failed with exit code {worker.returncode}")
    return [json.loads(out.read_text()) for out in outputs]


def _sandbox_stats(env: dict[str, str]) -> dict[str, Any]:
    verify = ssl.create_default_context(cafile=env["LOCAL_CA_BUNDLE"])
    response = httpx.get(f"{env['SANDBOX_ADMIN_URL'].rstrip('/')}/stats", verify=verify, timeout=30)
    response.raise_for_status()
    stats: dict[str, Any] = response.json()["bc"]
    return stats


def _stop(process: subprocess.Popen[bytes]) -> None:
    stop_process(process)
    if process.stderr is not None:
        process.stderr.close()


def _figures(
    bench: ThrottleBench,
    reports: list[dict[str, Any]],
    stats: dict[str, Any],
    stop_at: float,
    duration: float,
) -> dict[str, Any]:
    identities = [who for who in stats["requests"] if who != "anonymous"]
    by_status: dict[str, int] = {}
    for who in identities:
        for status, count in stats["requests"][who].items():
            by_status[status] = by_status.get(status, 0) + count
    requests = sum(by_status.values())
    admitted_at = max(min(report["completions"]) for report in reports)
    measured = [t for report in reports for t in report["completions"] if admitted_at <= t < stop_at]
    measured_seconds = stop_at - admitted_at
    allowed_rate = bench.identities * bench.rate_limit / bench.window_seconds  # BC's limit is per identity
    achieved_rate = len(measured) / measured_seconds
    storage_tx = sum(report["storage_transactions"] for report in reports)

    def peak(key: str) -> int:
        return max((int(stats[key].get(who, 0)) for who in identities), default=0)

    return {
        "processes": bench.processes,
        "identities": bench.identities,
        "per_identity_ok": sorted(
            sum(n for status, n in stats["requests"][who].items() if 200 <= int(status) < 300)
            for who in identities
        ),
        "requests": requests,
        "throughput_ratio": round(achieved_rate / allowed_rate, 4),
        "throttled_share": round(by_status.get("429", 0) / requests, 5) if requests else 0.0,
        "peak_in_flight": peak("peak_in_flight"),
        "peak_queued": peak("peak_queued"),
        "storage_tx_per_request": round(storage_tx / requests, 4) if requests else 0.0,
        "peak_window_usage": peak("peak_window_usage"),
        "rate_limit": bench.rate_limit,
        "window_seconds": bench.window_seconds,
        "safety_margin": bench.safety_margin,
        "budget_ratio": round(achieved_rate / (allowed_rate * (1 - bench.safety_margin)), 4),
        "achieved_rps": round(achieved_rate, 2),
        "allowed_rps": round(allowed_rate, 2),
        "measured_seconds": round(measured_seconds, 1),
        "duration_seconds": round(duration, 1),
        "heartbeat_seconds": bench.heartbeat_seconds,
        "latency_ms": bench.latency_ms,
        "statuses": by_status,
        "storage_transactions": storage_tx,
        "per_process_answers": [len(report["completions"]) for report in reports],
        "client_errors": _merged(report["errors"] for report in reports),
        "fallback_seen": any(report["fallback_seen"] for report in reports),
    }


def _merged(counters: Any) -> dict[str, int]:
    merged: dict[str, int] = {}
    for counter in counters:
        for key, value in counter.items():
            merged[key] = merged.get(key, 0) + value
    return merged
