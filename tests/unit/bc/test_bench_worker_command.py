"""The one command line that starts a benchmark worker (used by the benchmark and the two-process test)."""

from __future__ import annotations

import sys
from pathlib import Path

from testkit.worker import WorkerOptions, command, parse_args


def test_command_round_trips_through_the_workers_parser() -> None:
    """Every option put on the command line is read back unchanged by the worker."""
    options = WorkerOptions(
        env_file=Path("work/sandbox.env"),
        storage="UseDevelopmentStorage=true",
        table="tbench1",
        out=Path("work/out.json"),
        stop_at=1_700_000_123.456789,
        requests=60,
        window=3.0,
        margin=0.1,
        heartbeat=0.5,
        tasks=4,
    )
    argv = command(options)
    assert argv[:3] == [sys.executable, "-m", "testkit.worker"]
    parsed = parse_args(argv[3:])
    assert WorkerOptions(**vars(parsed)) == options
