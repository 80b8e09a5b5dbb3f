"""Two OS processes sharing one throttle through Table Storage never exceed the sandbox's compressed limits."""

from __future__ import annotations

import json
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from localworld.azurite import AzuriteEndpoints
from sandbox import Sandbox
from testkit.worker import WorkerOptions, command

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
RATE_LIMIT = 60
WINDOW_SECONDS = 3.0


def start_worker(
    env_file: Path, storage: str, table: str, out: Path, stop_at: float, logs: ExitStack
) -> subprocess.Popen[bytes]:
    """A bench worker process: the real client, SharedThrottle and TableCoordinationStore, busy until stop_at.

    Its stdout and stderr go to files next to `out` (opened on `logs`): a pipe nobody reads can fill and block it.
    """
    options = WorkerOptions(
        env_file=env_file,
        storage=storage,
        table=table,
        out=out,
        stop_at=stop_at,
        requests=RATE_LIMIT,
        window=WINDOW_SECONDS,
        margin=0.1,
        heartbeat=0.5,
        tasks=8,
    )
    stdout = logs.enter_context(out.with_suffix(".stdout").open("wb"))
    stderr = logs.enter_context(out.with_suffix(".stderr").open("wb"))
    return subprocess.Popen(command(options), cwd=REPO_ROOT, stdout=stdout, stderr=stderr)


def test_two_processes_stay_within_window_and_concurrency(
    sandbox: Sandbox, azurite: AzuriteEndpoints, unique_name: str, tmp_path: Path
) -> None:
    """60 requests per 3 s and 5 in flight: two busy processes get no 429, never queue at BC, and both send."""
    sandbox.bc.limits(rate_limit=RATE_LIMIT, window_seconds=WINDOW_SECONDS)
    sandbox.bc.latency(30.0, 20.0)
    env_file = tmp_path / "sandbox.env"
    sandbox.write_env_file(env_file)
    # Both must send before stop_at: a process's start (imports, first heartbeat, the 1.75 s join delay) took over
    # 8 s on a loaded 2-core machine under 4 test workers, so the run lasts long enough for a late starter.
    stop_at = time.time() + 14.0
    outputs = [tmp_path / "a.json", tmp_path / "b.json"]
    with ExitStack() as logs:
        workers = [
            start_worker(env_file, azurite.connection_string, unique_name, out, stop_at, logs)
            for out in outputs
        ]
        try:
            for worker in workers:
                worker.wait(timeout=60)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
    for worker, out in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, out.with_suffix(".stderr").read_text(errors="replace")[-2000:]
    reports = [json.loads(out.read_text()) for out in outputs]
    stats = sandbox.bc.stats()
    (identity,) = [who for who in stats.requests if who != "anonymous"]
    assert stats.count(429) == 0
    assert stats.peak_queued[identity] == 0  # never more than 5 in flight
    assert stats.peak_in_flight[identity] <= 5
    assert stats.peak_window_usage[identity] <= RATE_LIMIT
    assert all(report["statuses"].get("200", 0) > 0 for report in reports)
    assert sum(report["statuses"].get("200", 0) for report in reports) == stats.count(200)
    # The pair still used most of the budget once both were in (about 5 s of steady state at 18 req/s).
    assert stats.count(200) >= 0.7 * (RATE_LIMIT * 0.9 / WINDOW_SECONDS) * 5
