"""Fairness on one queue (issue 21, point 6): a connection that floods its budget must not delay another's jobs.

Two connections with budgets of their own in the sandbox's one environment: A is the settings' connection (the
primary app registration), B a registered one (`{prefix}connections`) with the sandbox's extra app registration
and `credential: key_vault_secret` (its secret written to the sandbox's Key Vault), so its BC identity, and thus
its budget and its throttle, differs from A's (docs/architecture.md, budget key). Two runs on N devhost
instances serving the `jobs_process` group:

- `trickle_alone`: B's jobs alone, one every `trickle_interval` seconds (after an unmeasured warm-up);
- `beside_flood`: the same with A's `flood_jobs` single-GET jobs queued first (far more than the run serves):
  `from_start`, B's jobs while the workers still go through A's flood queued ahead of them (each of A's surplus
  jobs is received and sent back once); then, once every one of A's queued jobs was received at least once
  (`flood_seen_once_after_seconds`), `after_flood_seen_once`: another trickle of B while A still runs at its limit
  from the jobs it sent back.

B's latency is from the moment the bench sent a job to the job row's `FinishedAt` (one machine, one clock). A's
throughput is its identity's successful BC answers per second over B's trickle, ÷ BC's allowed rate.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import TableClient
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure.storage.queue import QueueClient

from bcjobs import JOBS_QUEUE
from bench.instances import JOBS_GROUP
from bench.world import JOIN_DELAY_SECONDS, BenchWorld, b64, requests_by_status, unique_prefix
from sandbox.config import SandboxConfig
from sandbox.entra.directory import AppRegistration, build_directory
from shared.connections import Connection, Credential

TRICKLE = "bench-b"  # connection B's name
SANDBOX_SEED = 1
SANDBOX_FLAGS = ("--seed", str(SANDBOX_SEED), "--extra-clients", "1")
_SECRET_NAME = "bench-b-client-secret"
_FINISH_DEADLINE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Fairness:
    """One fairness run's knobs (defaults: a run of about 5 minutes on 2 cores)."""

    # One worker process: with several, a process whose throttle left the row on idle rejoins after the join
    # delay (16 s), which lands on B's latency alone as much as beside A (bench/README.md, fairness).
    processes: int = 1
    flood_jobs: int = 3000
    trickle_jobs: int = 100
    trickle_interval: float = 1.0
    # BC's per-identity limit, compressed: 200 per 20 s = 10/s, half BC's real 6,000 per 5 min, so that on a
    # loaded 2-core box the workers' CPU is not what limits A (bench `capacity`: ~15 jobs/s per process).
    rate_limit: int = 200
    window_seconds: float = 20.0
    margin: float = 0.03
    latency_ms: float = 20.0
    jitter_ms: float = 20.0

    @property
    def allowed_rps(self) -> float:
        """BC's allowed rate per identity (the margin not taken off)."""
        return self.rate_limit / self.window_seconds

    @property
    def warmup_seconds(self) -> float:
        """Until every process was admitted to both throttles (the join delay), plus the start."""
        return (JOIN_DELAY_SECONDS if self.processes > 1 else 0.0) + 6.0


def fairness(world: BenchWorld, spec: Fairness | None = None) -> dict[str, Any]:
    """B alone, then B beside A's flood; the issue's three figures in `summary`."""
    spec = spec or Fairness()
    extra = _extra_app(world)
    alone = _run(world, spec, extra, flood=False)
    beside = _run(world, spec, extra, flood=True)
    p95_alone = alone["from_start"]["latency_p95_seconds"]
    from_start, steady = beside["from_start"], beside.get("after_flood_seen_once", {})
    return {
        "spec": asdict(spec),
        "trickle_alone": alone,
        "beside_flood": beside,
        "summary": {
            "b_p95_alone_seconds": p95_alone,
            "b_p95_beside_flood_seconds": from_start["latency_p95_seconds"],
            "b_p95_ratio": _ratio(from_start["latency_p95_seconds"], p95_alone),
            "a_throughput_ratio": from_start["a_throughput_ratio"],
            "flood_seen_once_after_seconds": beside.get("flood_seen_once_after_seconds"),
            "b_p95_after_flood_seen_once_seconds": steady.get("latency_p95_seconds"),
            "b_p95_ratio_after_flood_seen_once": _ratio(steady.get("latency_p95_seconds"), p95_alone),
            "a_throughput_ratio_after_flood_seen_once": steady.get("a_throughput_ratio"),
            "throttled": alone["throttled"] + beside["throttled"],
            "target": "B's p95 beside A <= 2 x alone, A >= 0.95 of its limit, no 429",
        },
    }


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value and base else None


def _run(world: BenchWorld, spec: Fairness, extra: AppRegistration, *, flood: bool) -> dict[str, Any]:
    world.reset(
        rate_limit=spec.rate_limit,
        window_seconds=spec.window_seconds,
        latency_ms=spec.latency_ms,
        jitter_ms=spec.jitter_ms,
    )
    prefix = unique_prefix("f")
    settings = world.app_settings(
        prefix,
        proxied=True,  # the app's sends to bc-jobs: jobs sent back (deferrals, no-slot, retries)
        BC_RATE_LIMIT_REQUESTS=str(spec.rate_limit),
        BC_RATE_LIMIT_WINDOW_SECONDS=str(spec.window_seconds),
        BC_RATE_SAFETY_MARGIN=str(spec.margin),
    )
    _register_trickle(world, prefix, extra)
    if flood:
        world.enqueue(world.get_jobs(spec.flood_jobs, f"{prefix}a"))
    with world.instances(settings, spec.processes, functions=JOBS_GROUP):
        started = time.monotonic()
        _trickle(world, spec, "w", int(spec.warmup_seconds / spec.trickle_interval))
        figures = {"flood": flood, "from_start": _phase(world, spec, prefix, "b", extra)}
        if flood:
            figures["flood_seen_once_after_seconds"] = _flood_seen_once(world, spec, extra, started)
            figures["after_flood_seen_once"] = _phase(world, spec, prefix, "c", extra)
    figures["throttled"] = requests_by_status(world.sandbox.stats())["429"]
    figures["statuses"] = dict(sorted(requests_by_status(world.sandbox.stats()).items()))
    return figures


def _phase(
    world: BenchWorld, spec: Fairness, prefix: str, tag: str, extra: AppRegistration
) -> dict[str, Any]:
    """B's trickle (job ids `{tag}-n`), then until each of its jobs finished: B's latencies, A's throughput."""
    first, sends_before = world.sandbox.stats(), _sent_back(world)
    sent = _trickle(world, spec, tag, spec.trickle_jobs)
    last, sends_after = world.sandbox.stats(), _sent_back(world)
    measured = sent["seconds"]
    latencies = sorted(_finished(world, f"{prefix}jobs", tag, sent["at"]).values())
    a_done = _ok_except(last, extra.service_principal_oid) - _ok_except(first, extra.service_principal_oid)
    return {
        "b_jobs": spec.trickle_jobs,
        "b_finished": len(latencies),
        "latency_p50_seconds": _percentile(latencies, 0.50),
        "latency_p95_seconds": _percentile(latencies, 0.95),
        "latency_max_seconds": round(latencies[-1], 2) if latencies else None,
        "sent_back": sends_after - sends_before,
        "measured_seconds": round(measured, 1),
        "a_ok_requests": a_done,
        "a_throughput_ratio": round(a_done / measured / spec.allowed_rps, 4),
    }


def _flood_seen_once(
    world: BenchWorld, spec: Fairness, extra: AppRegistration, started: float
) -> float | None:
    """Wait until every one of A's queued jobs was received at least once (run, or sent back); seconds since the
    workers started (None: not within the deadline). Jobs sent back by then are A's only ones in the queue."""
    deadline = time.monotonic() + _FINISH_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if (
            _sent_back(world) + _ok_except(world.sandbox.stats(), extra.service_principal_oid)
            >= spec.flood_jobs
        ):
            return round(time.monotonic() - started, 1)
        time.sleep(1.0)
    return None


def _sent_back(world: BenchWorld) -> int:
    """The app's sends to bc-jobs so far (through the counting proxy; the bench sends straight to Azurite)."""
    return int(world.proxies[0].snapshot().get(f"POST {JOBS_QUEUE}/messages", 0))


def _extra_app(world: BenchWorld) -> AppRegistration:
    """The sandbox's extra app registration: its directory derives every id and secret from the seed, so the
    same seed gives the same apps here as in the sandbox process (checked against the primary app's id)."""
    config = SandboxConfig(seed=SANDBOX_SEED, extra_clients=1)
    directory = build_directory(config, random.Random(SANDBOX_SEED), b"")
    if directory.primary.client_id != world.sandbox.env["BC_CLIENT_ID"]:
        raise RuntimeError(
            "the sandbox's directory is not the seeded one: start it with bench.fairness.SANDBOX_FLAGS"
        )
    return directory.apps[1]


def _register_trickle(world: BenchWorld, prefix: str, extra: AppRegistration) -> None:
    """Connection B in the app's registry table, its client secret in the sandbox's Key Vault (emptied by reset)."""
    env = world.sandbox.env
    connection = Connection(
        name=TRICKLE,
        tenant_id=env["BC_TENANT_ID"],
        environment=env["BC_ENVIRONMENT"],
        client_id=extra.client_id,
        company_id=uuid.UUID(env["BC_COMPANY_ID"]),
        credential=Credential.KEY_VAULT_SECRET,
        secret_name=_SECRET_NAME,
    )
    spec = connection.model_dump_json(by_alias=True, exclude={"from_settings"})
    entity = {"PartitionKey": "connection", "RowKey": TRICKLE, "spec": spec}
    with TableClient.from_connection_string(world.azurite.connection_string, f"{prefix}connections") as table:
        table.create_table()
        table.upsert_entity(entity)
    ca = env["LOCAL_CA_BUNDLE"]
    credential = ClientSecretCredential(
        env["BC_TENANT_ID"],
        env["BC_CLIENT_ID"],
        env["BC_CLIENT_SECRET"],
        authority=env["BC_AUTHORITY_HOST"],
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    with (
        credential,
        SecretClient(
            env["KEY_VAULT_URL"], credential, verify_challenge_resource=False, connection_verify=ca
        ) as secrets,
    ):
        if extra.client_secret is None:  # SandboxConfig.secretless_apps: not what this bench starts
            raise RuntimeError(
                "the extra app holds no client secret: start the sandbox without secretless_apps"
            )
        secrets.set_secret(_SECRET_NAME, extra.client_secret)


def _trickle(world: BenchWorld, spec: Fairness, tag: str, count: int) -> dict[str, Any]:
    """`count` jobs of connection B, one every `trickle_interval` s; each job id's send time."""
    sent: dict[str, datetime] = {}
    started = time.monotonic()
    with QueueClient.from_connection_string(world.azurite.connection_string, JOBS_QUEUE) as queue:
        for n in range(count):
            time.sleep(max(0.0, started + n * spec.trickle_interval - time.monotonic()))
            job_id = f"{tag}-{n}"
            job = {"jobId": job_id, "connection": TRICKLE, "operation": "get", "entitySet": "items"}
            job["id"] = world.items[n % len(world.items)]
            sent[job_id] = datetime.now(UTC)
            queue.send_message(b64(job))
    return {"at": sent, "seconds": time.monotonic() - started}


def _finished(world: BenchWorld, table_name: str, tag: str, sent: dict[str, datetime]) -> dict[str, float]:
    """Seconds from each job's send to its `FinishedAt`, once every one finished (or the deadline passed)."""
    deadline = time.monotonic() + _FINISH_DEADLINE_SECONDS
    while True:
        with TableClient.from_connection_string(world.azurite.connection_string, table_name) as table:
            rows = {
                str(row["PartitionKey"]): row
                for row in table.query_entities(
                    "PartitionKey ge @low and PartitionKey lt @high",
                    parameters={"low": f"{tag}-", "high": f"{tag}."},
                )
                if row.get("FinishedAt")
            }
        if len(rows) >= len(sent) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return {
        job_id: (_as_datetime(rows[job_id]["FinishedAt"]) - at).total_seconds()
        for job_id, at in sent.items()
        if job_id in rows
    }


def _ok_except(stats: dict[str, Any], identity: str) -> int:
    """Successful BC answers of every identity but `identity`."""
    return sum(
        int(n)
        for who, by_status in stats["bc"]["requests"].items()
        if who != identity
        for status, n in by_status.items()
        if 200 <= int(status) < 300
    )


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(fraction * 100) - 1], 2)
