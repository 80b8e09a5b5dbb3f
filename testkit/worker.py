"""One benchmark worker process: drives BC requests through the real client and shared throttle until a deadline.

`python -m testkit.worker --env-file F --storage CONN --out OUT.json [...]`: loads the sandbox env as settings,
coordinates through Table Storage (Azurite), sends single-page GETs from several tasks, and writes what it saw
(completion times and statuses, storage transactions) to OUT.json. `command(...)` builds that command line for
the benchmark (bench/throttle.py) and the two-process integration test alike.

`--identities N` (issue 23): the connection's pool holds the sandbox's primary app and N-1 of its extra app
registrations (the sandbox started with `--seed S --extra-clients N-1`; the same seed derives the same apps here),
each with its own token, BC client and shared throttle (its budget key); every task runs "jobs" of
`--job-requests` GETs, each job on the identity the product's IdentityPool (shared/jobs/pool.py) chooses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from devhost.environment import read_env_file
from shared.bc import BusinessCentralClient, BusinessCentralError, EntitySet, Interaction, build_client
from shared.bc.factory import budget_key
from shared.bc.retry import RetryPolicy
from shared.bc.throttle import SharedThrottle, ThrottleConfig
from shared.bc.throttle.table_store import TableCoordinationStore, partition_key_for
from shared.redaction import install_redaction
from shared.settings import StorageSettings, load_settings
from testkit.sandbox_tokens import SandboxTokenProvider

ITEMS = EntitySet("items")
DEFAULT_TABLE = "benchthrottle"


@dataclass
class WorkerReport:
    """What one worker saw (written as JSON)."""

    member_id: str
    completions: list[float] = field(default_factory=list)  # epoch seconds of each BC answer
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    storage_transactions: int = 0
    fallback_seen: bool = False
    by_identity: Counter[str] = field(default_factory=Counter)  # answers per identity of the pool

    def to_json(self) -> dict[str, object]:
        """Plain JSON types (Counters as dicts)."""
        return {
            "member_id": self.member_id,
            "completions": self.completions,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "storage_transactions": self.storage_transactions,
            "fallback_seen": self.fallback_seen,
            "by_identity": dict(self.by_identity),
        }


class TimingRecorder:
    """A Recorder keeping the time and status of every answer."""

    def __init__(self, report: WorkerReport, identity: str = "primary") -> None:
        self._report = report
        self._identity = identity

    def record(self, interaction: Interaction) -> None:
        """Note when the answer came and its status ('none' for a dropped connection)."""
        self._report.completions.append(time.time())
        self._report.by_identity[self._identity] += 1
        self._report.statuses[str(interaction.status) if interaction.status is not None else "none"] += 1


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What one worker is told: where the sandbox and storage are, its deadline, and the throttle's limits."""

    env_file: Path
    storage: str = field(repr=False)  # a connection string (holds Azurite's well-known key)
    out: Path
    stop_at: float
    requests: int
    window: float
    margin: float = 0.03
    heartbeat: float = 5.0
    tasks: int = 8
    table: str = DEFAULT_TABLE
    identities: int = 1
    seed: int = 1
    job_requests: int = 1


def command(options: WorkerOptions) -> list[str]:
    """The argv that starts one worker process (run it with the repository root as working directory)."""
    return [
        sys.executable,
        "-m",
        "testkit.worker",
        "--env-file",
        str(options.env_file),
        "--storage",
        options.storage,
        "--table",
        options.table,
        "--out",
        str(options.out),
        "--stop-at",
        repr(options.stop_at),
        "--requests",
        str(options.requests),
        "--window",
        str(options.window),
        "--margin",
        str(options.margin),
        "--heartbeat",
        str(options.heartbeat),
        "--tasks",
        str(options.tasks),
        "--identities",
        str(options.identities),
        "--seed",
        str(options.seed),
        "--job-requests",
        str(options.job_requests),
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Worker options."""
    parser = argparse.ArgumentParser(prog="python -m testkit.worker")
    parser.add_argument("--env-file", type=Path, required=True)
    parser.add_argument("--storage", required=True, help="Table Storage connection string (Azurite)")
    parser.add_argument("--table", default=DEFAULT_TABLE)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stop-at", type=float, required=True, help="epoch seconds: stop sending then")
    parser.add_argument("--requests", type=int, required=True, help="BC limit: requests per window")
    parser.add_argument("--window", type=float, required=True, help="BC limit: window seconds")
    parser.add_argument("--margin", type=float, default=0.03)
    parser.add_argument("--heartbeat", type=float, default=5.0)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--identities", type=int, default=1, help="identities in the connection's pool")
    parser.add_argument("--seed", type=int, default=1, help="the sandbox's seed (derives its extra apps)")
    parser.add_argument("--job-requests", type=int, default=1, help="GETs per job (one identity per job)")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> WorkerReport:
    """Send requests from `args.tasks` tasks until the deadline; return the report."""
    settings = load_settings(read_env_file(args.env_file))
    storage = StorageSettings.model_validate({"JobsStorage": args.storage})
    store = TableCoordinationStore.from_settings(storage, table_name=args.table)
    config = ThrottleConfig(
        requests=args.requests,
        window_seconds=args.window,
        safety_margin=args.margin,
        max_in_flight=settings.bc.max_in_flight,
        heartbeat_seconds=args.heartbeat,
    )
    if args.identities > 1:
        # Imported here: the job pipeline's modules take a second to import, which the one-identity runs (and the
        # two-process test's 8 s) should not pay.
        from testkit.pooled_worker import run_pooled

        return await run_pooled(args, settings, store, config)
    throttle = SharedThrottle(store, partition_key_for(budget_key(settings)), config)
    report = WorkerReport(member_id=throttle.member_id)
    tokens = SandboxTokenProvider(settings)
    # One attempt: every 429 the sandbox sends is counted once (pauses still apply).
    client = build_client(
        settings, tokens, throttle, recorder=TimingRecorder(report), policy=RetryPolicy(max_tries=1)
    )
    try:
        await asyncio.gather(*(_drive(client, args.stop_at, report, throttle) for _ in range(args.tasks)))
    finally:
        await client.aclose()
        await throttle.close()
        report.storage_transactions = store.transactions
        await store.close()
    return report


async def _drive(
    client: BusinessCentralClient, stop_at: float, report: WorkerReport, throttle: SharedThrottle
) -> None:
    """Repeat a single-page GET until the deadline, counting errors by type."""
    while time.time() < stop_at:
        try:
            await client.list(ITEMS, limit=1)
        except BusinessCentralError as exc:
            report.errors[type(exc).__name__] += 1
        report.fallback_seen = report.fallback_seen or throttle.share().fallback


def main(argv: list[str] | None = None) -> int:
    """Run the worker and write its report."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    install_redaction()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    report = asyncio.run(run(args))
    args.out.write_text(json.dumps(report.to_json()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
