"""The job pipeline measured through the real queue trigger: devhost worker processes polling Azurite's `bc-jobs`.

- `throughput(world, Throughput(processes=N))`: a deep queue of single-GET jobs, N worker processes sharing the
  throttle, the sandbox's BC at a compressed window (400 requests per 20 s: BC's 20 requests/s). Over a steady
  interval after every worker was admitted (the throttle's join delay) it measures successful BC answers per
  second ÷ the allowed rate, the 429 share, storage calls per successful job (through the counting proxies),
  Key Vault reads, token-endpoint calls, the workers' CPU per job and peak RSS. The same function runs the naive
  baseline app (`bench/naive_app.py`) in the same way.
- `capacity(world)`: one worker process, storage straight to Azurite, BC unlimited with zero latency: how many
  jobs per second the product can run, and its CPU milliseconds per job.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bcjobs import JOBS_QUEUE
from bench.procstats import busy_share, cpu_seconds, machine_cpu, own_cpu_seconds, peak_rss_mib
from bench.world import JOIN_DELAY_SECONDS, BenchWorld, Sample, ok_requests, requests_by_status, unique_prefix
from localworld.proxy import background_calls, split_calls

PRODUCT_APP = "function_app:app"
CAPACITY_FUNCTIONS = ("jobs_process", "jobs_poison")
PROXY_ONLY = ("storage_calls", "invocations_per_job", "sent_back_per_job", "receives_per_job")


@dataclass(frozen=True, slots=True)
class Throughput:
    """One throughput run's knobs."""

    processes: int
    rate_limit: int = 400
    window_seconds: float = 20.0
    margin: float = 0.03
    latency_ms: float = 20.0
    jitter_ms: float = 20.0
    measure_seconds: float = 40.0
    app: str = PRODUCT_APP
    results_table: str = "jobs"  # the jobs table suffix the app writes (the naive app: "naive")
    extra_settings: tuple[tuple[str, str], ...] = ()
    functions: tuple[str, ...] = ()  # devhost --functions: () serves the whole app
    proxied: bool = (
        False  # storage through the counting proxies (storage calls per job; costs a little speed)
    )

    @property
    def allowed_rps(self) -> float:
        """BC's allowed rate (the margin not taken off)."""
        return self.rate_limit / self.window_seconds

    @property
    def warmup_seconds(self) -> float:
        """Start + admission: the join delay when several processes share the throttle."""
        if self.processes == 1 or self.app != PRODUCT_APP:
            return 6.0
        return JOIN_DELAY_SECONDS + 6.0


def throughput(
    world: BenchWorld, spec: Throughput, prepare: Callable[[BenchWorld], None] | None = None
) -> dict[str, Any]:
    """Run `spec` (after `prepare(world)`, once the sandbox was reset) and return its figures."""
    world.reset(
        rate_limit=spec.rate_limit,
        window_seconds=spec.window_seconds,
        latency_ms=spec.latency_ms,
        jitter_ms=spec.jitter_ms,
    )
    if prepare is not None:
        prepare(world)
    prefix = unique_prefix("t")
    settings = world.app_settings(
        prefix,
        proxied=spec.proxied,
        BC_RATE_LIMIT_REQUESTS=str(spec.rate_limit),
        BC_RATE_LIMIT_WINDOW_SECONDS=str(spec.window_seconds),
        BC_RATE_SAFETY_MARGIN=str(spec.margin),
        **dict(spec.extra_settings),
    )
    jobs = math.ceil(spec.allowed_rps * (spec.warmup_seconds + spec.measure_seconds + 15) * 1.2)
    enqueue_seconds = world.enqueue(world.get_jobs(jobs, prefix))
    with world.instances(settings, spec.processes, spec.app, spec.functions) as pool:
        started = time.monotonic()
        time.sleep(spec.warmup_seconds)
        cpu_before = {pid: cpu_seconds(pid) for pid in pool.pids}
        machine_before = machine_cpu()
        first = world.sample()
        time.sleep(spec.measure_seconds)
        last = world.sample()
        machine_after = machine_cpu()
        cpu_after = {pid: cpu_seconds(pid) for pid in pool.pids}
        rss = [peak_rss_mib(pid) for pid in pool.pids]
        run_seconds = time.monotonic() - started
    end = world.sandbox.stats()
    done = ok_requests(last.stats) - ok_requests(first.stats)
    figures = _rates(spec, first, last, done)
    if not spec.proxied:
        figures = {k: v for k, v in figures.items() if not k.startswith(PROXY_ONLY)}
    statuses = requests_by_status(end)
    all_requests = sum(statuses.values())
    figures |= {
        "processes": spec.processes,
        "app": "naive" if spec.app != PRODUCT_APP else "product",
        "proxied_storage": spec.proxied,
        "throttled_share": round(statuses["429"] / all_requests, 5) if all_requests else 0.0,
        "bc_requests": all_requests,
        "statuses": dict(sorted(statuses.items())),
        "succeeded_jobs": world.count_rows(f"{prefix}{spec.results_table}", "succeeded"),
        "failed_jobs": world.count_rows(f"{prefix}{spec.results_table}", "failed"),
        "key_vault_reads": int(end["vault"]["reads"]),
        "key_vault_reads_per_process": round(int(end["vault"]["reads"]) / spec.processes, 2),
        "token_endpoint_calls": dict(end["entra"]["token_calls"]),
        "peak_in_flight": max(end["bc"]["peak_in_flight"].values(), default=0),
        "peak_queued": max(end["bc"]["peak_queued"].values(), default=0),
        "peak_window_usage": max(end["bc"]["peak_window_usage"].values(), default=0),
        "worker_cpu_ms_per_job": round(1000 * sum(cpu_after[p] - cpu_before[p] for p in pool.pids) / done, 2)
        if done
        else None,
        "worker_peak_rss_mib": rss,
        "machine_cpu_busy_share": busy_share(machine_before, machine_after),
        "jobs_enqueued": jobs,
        "enqueue_seconds": round(enqueue_seconds, 1),
        "run_seconds": round(run_seconds, 1),
        "rate_limit": spec.rate_limit,
        "window_seconds": spec.window_seconds,
        "safety_margin": spec.margin,
        "latency_ms": f"{spec.latency_ms:g} ± {spec.jitter_ms:g}",
    }
    return figures


def _rates(spec: Throughput, first: Sample, last: Sample, done: int) -> dict[str, Any]:
    seconds = last.at - first.at
    achieved = done / seconds
    window = requests_by_status(last.stats) - requests_by_status(first.stats)
    sent = sum(window.values())
    calls = split_calls(last.queue_calls - first.queue_calls, last.table_calls - first.table_calls)

    def per_job(calls: int) -> float | None:
        return round(calls / done, 2) if done else None

    return {
        "allowed_rps": round(spec.allowed_rps, 2),
        "achieved_rps": round(achieved, 2),
        "throughput_ratio": round(achieved / spec.allowed_rps, 4),
        "budget_ratio": round(achieved / (spec.allowed_rps * (1 - spec.margin)), 4),
        "throttled_share_measured": round(window["429"] / sent, 5) if sent else 0.0,
        "measured_seconds": round(seconds, 1),
        "storage_calls_per_job": per_job(calls.total),
        "storage_calls_per_job_product": per_job(calls.product),
        "storage_calls_per_job_host": per_job(calls.host),
        "storage_calls_per_job_throttle": per_job(calls.throttle),
        # Of product + host, the calls made per unit of time rather than per job (timers, idle queue polls, start-up):
        # at the bench's 20 jobs/s they add a few hundredths, depending on which timers fall in the window.
        "storage_calls_per_job_background": per_job(background_calls(calls.by_kind)),
        "storage_calls_per_job_without_background": per_job(
            calls.product + calls.host - background_calls(calls.by_kind)
        ),
        "storage_calls_measured": dict(sorted((k, v) for k, v in calls.by_kind.items() if v)),
        **queue_figures(calls.by_kind, done),
    }


def queue_figures(calls: dict[str, int], done: int) -> dict[str, Any]:
    """Invocations and send-backs per job from the proxy's counts by kind (`DELETE bc-jobs/messages`, ...)."""
    if not done:
        return {}
    return {
        "invocations_per_job": round(calls.get(f"DELETE {JOBS_QUEUE}/messages", 0) / done, 3),
        "sent_back_per_job": round(calls.get(f"POST {JOBS_QUEUE}/messages", 0) / done, 3),
        "receives_per_job": round(calls.get(f"GET {JOBS_QUEUE}/messages", 0) / done, 3),
    }


def _cpu(world: BenchWorld, pid: int) -> dict[str, float]:
    """CPU seconds so far of devhost's own process (`host`), of its function workers (`workers`, the processes that
    run the product's code: its descendants), of the sandbox and of each Azurite service."""
    host, tree = own_cpu_seconds(pid), cpu_seconds(pid)
    found = {"host": host, "workers": tree - host, "sandbox": cpu_seconds(world.sandbox.pid)}
    return found | {name: cpu_seconds(p) for name, p in world.azurite_pids.items()}


def capacity(world: BenchWorld, jobs: int = 5000, measure_seconds: float = 20.0) -> dict[str, Any]:
    """One worker process, BC unlimited and instant, storage direct: jobs/s and CPU ms per job.

    devhost serves the jobs' functions only (CAPACITY_FUNCTIONS): a timer's first run starts a worker process of its
    own (its import is about 0.4 CPU s), which landing in the window or not swung the figure by a millisecond per
    job. The function workers' CPU is split from devhost's own, the part the .NET Functions host does in Azure;
    `worker_cpu_ms_per_job` keeps the earlier reports' meaning (both)."""
    world.reset(rate_limit=1_000_000_000, window_seconds=300, latency_ms=0.0, max_in_flight=5)
    prefix = unique_prefix("c")
    settings = world.app_settings(prefix, proxied=False, BC_RATE_LIMIT_REQUESTS="1000000000")
    if profile_dir := os.environ.get(
        "BENCH_PROFILE_DIR", ""
    ):  # the worker dumps a cProfile (devhost/worker.py)
        settings["BENCH_PROFILE_DIR"] = os.path.abspath(profile_dir)
    world.enqueue(world.get_jobs(jobs, prefix))
    with world.instances(settings, 1, functions=CAPACITY_FUNCTIONS) as pool:
        pid = pool.pids[0]
        deadline = time.monotonic() + 60
        while ok_requests(world.sandbox.stats()) < 100 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # past the first batches
        before, machine_before, first = _cpu(world, pid), machine_cpu(), world.sample()
        time.sleep(measure_seconds)
        last, machine_after, after = world.sample(), machine_cpu(), _cpu(world, pid)
        rss = peak_rss_mib(pid)
    done = ok_requests(last.stats) - ok_requests(first.stats)
    seconds = last.at - first.at
    used = {name: after[name] - before[name] for name in after}
    per_job = {name: round(1000 * value / done, 2) if done else None for name, value in used.items()}
    both = used["host"] + used["workers"]
    return {
        "jobs_per_second": round(done / seconds, 1),
        "worker_cpu_ms_per_job": round(1000 * both / done, 2) if done else None,
        "workers_cpu_ms_per_job": per_job["workers"],
        "host_cpu_ms_per_job": per_job["host"],
        "worker_cpu_share": round(both / seconds, 2),
        "sandbox_cpu_ms_per_job": per_job["sandbox"],
        "azurite_cpu_ms_per_job": {name: per_job[name] for name in world.azurite_pids} if done else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "jobs_per_cpu_second": round(done / both, 1) if both > 0 else None,
        "queue_drained": ok_requests(last.stats) >= jobs - 50,
        "measured_jobs": done,
        "measured_seconds": round(seconds, 1),
        "worker_peak_rss_mib": rss,
        "machine_cpu_busy_share": busy_share(machine_before, machine_after),
    }
