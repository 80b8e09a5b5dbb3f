"""`python -m bench all | throttle --processes N [...] | instances [--processes N] | fairness [...] | tokens |
connections [--count N] | feed-priority | identities | capacity | transport`: run benchmarks, print figures as
one JSON object."""

from __future__ import annotations

import argparse
import json
import sys

from bench import feed_priority, identities, suite, token_rates
from bench.connections import CONNECTIONS_RESULTS, connection_scale
from bench.fairness import SANDBOX_FLAGS, Fairness, fairness
from bench.instances import many_instances
from bench.pipeline import capacity
from bench.throttle import ThrottleBench, run
from bench.transport import transport_cost
from bench.world import BenchWorld


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Benchmark name and knobs (defaults keep one run under ~2 minutes)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    benches = parser.add_subparsers(dest="bench", required=True)
    throttle = benches.add_parser("throttle", help="N processes sharing one BC throttle against the sandbox")
    defaults = ThrottleBench(processes=1)
    throttle.add_argument("--processes", type=int, default=1)
    throttle.add_argument(
        "--rate-limit", type=int, default=defaults.rate_limit, help="BC requests per window"
    )
    throttle.add_argument(
        "--window", type=float, default=defaults.window_seconds, help="compressed window (s)"
    )
    throttle.add_argument(
        "--margin", type=float, default=defaults.safety_margin, help="throttle safety margin"
    )
    throttle.add_argument("--heartbeat", type=float, default=defaults.heartbeat_seconds)
    throttle.add_argument("--measure-windows", type=float, default=defaults.measure_windows)
    throttle.add_argument(
        "--latency-ms", type=float, default=defaults.latency_ms, help="sandbox service time"
    )
    throttle.add_argument("--tasks", type=int, default=defaults.tasks_per_process, help="tasks per process")
    instances = benches.add_parser(
        "instances", help="more worker processes than BC slots (deep queue, burst)"
    )
    instances.add_argument("--processes", type=int, default=20)
    fair = benches.add_parser("fairness", help="a flooding connection beside another one's trickle of jobs")
    plain = Fairness()
    fair.add_argument("--processes", type=int, default=plain.processes)
    fair.add_argument("--flood-jobs", type=int, default=plain.flood_jobs, help="connection A's queued jobs")
    fair.add_argument("--trickle-jobs", type=int, default=plain.trickle_jobs, help="connection B's jobs")
    fair.add_argument("--rate-limit", type=int, default=plain.rate_limit, help="BC requests per window")
    fair.add_argument("--window", type=float, default=plain.window_seconds, help="compressed window (s)")
    benches.add_parser(
        "feed-priority", help="jobs' BC throughput while the change feed expands 1,500 changes (simulated)"
    )
    benches.add_parser(
        "identities", help="1, 2 and 3 identities of one connection at 1 and 3 processes (identity pools)"
    )
    benches.add_parser("tokens", help="Key Vault and token-endpoint calls per hour per instance (simulated)")
    connections = benches.add_parser(
        "connections", help="N registered connections: timer refresh, status page, registry lookups"
    )
    connections.add_argument("--count", type=int, default=100)
    benches.add_parser("capacity", help="one worker, BC unlimited: jobs/s and worker CPU ms per job alone")
    benches.add_parser(
        "transport", help="CPU per BC request: httpx's own transport beside the product's aiohttp one"
    )
    benches.add_parser(
        "all", help="every figure of the report (make bench); writes bench/results/latest.json"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmark; print one JSON object on stdout."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.bench == "feed-priority":
        print(json.dumps(feed_priority.run()))
        return 0
    if args.bench == "identities":
        figures = identities.identities()
        identities.write(figures)
        print(json.dumps(figures["summary"]))
        return 0
    if args.bench == "tokens":
        print(json.dumps(token_rates.run()))
        return 0
    if args.bench == "capacity":
        with BenchWorld.started() as world:
            print(json.dumps(capacity(world)))
        return 0
    if args.bench == "transport":
        with BenchWorld.started() as world:
            print(json.dumps(transport_cost(world)))
        return 0
    if args.bench == "instances":
        with BenchWorld.started() as world:
            print(json.dumps(many_instances(world, args.processes)))
        return 0
    if args.bench == "connections":
        with BenchWorld.started() as world:
            figures = connection_scale(world, args.count)
        CONNECTIONS_RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(figures))
        return 0
    if args.bench == "fairness":
        spec = Fairness(
            processes=args.processes,
            flood_jobs=args.flood_jobs,
            trickle_jobs=args.trickle_jobs,
            rate_limit=args.rate_limit,
            window_seconds=args.window,
        )
        with BenchWorld.started(sandbox_flags=SANDBOX_FLAGS) as world:
            print(json.dumps(fairness(world, spec)))
        return 0
    if args.bench == "all":
        suite.main()
        return 0
    bench = ThrottleBench(
        processes=args.processes,
        rate_limit=args.rate_limit,
        window_seconds=args.window,
        safety_margin=args.margin,
        heartbeat_seconds=args.heartbeat,
        measure_windows=args.measure_windows,
        latency_ms=args.latency_ms,
        tasks_per_process=args.tasks,
    )
    print(json.dumps(run(bench)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
