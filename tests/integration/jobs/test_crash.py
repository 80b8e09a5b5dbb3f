"""A worker killed mid-job: its message comes back, the successor takes the claim over once the lease ends,
reconciles by natural key, and the job completes once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from devhost.environment import process_environment
from localworld.polling import wait_until
from localworld.ports import free_port, wait_for_port
from localworld.processes import stop_process
from sandbox import Sandbox
from tests.integration.jobs.conftest import JobsWorld

ROOT = Path(__file__).resolve().parents[3]


def start_worker(environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    port = free_port()
    command = [sys.executable, "-m", "devhost", "--port", str(port), "--app", "function_app:app"]
    with log.open("ab") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=sink, stderr=sink)
    wait_for_port("127.0.0.1", port, timeout=30)
    return process


def test_a_worker_killed_mid_job_is_replaced_and_the_job_completes_once(
    world: JobsWorld, jobs_env: dict[str, str], sandbox: Sandbox, tmp_path: Path
) -> None:
    """SIGKILL while BC holds the job's POST; after a restart the job succeeds with exactly one record."""
    environment = {
        **process_environment(),
        **jobs_env,
        "DEVHOST_MESSAGE_LEASE_SECONDS": "4",
        "BC_JOB_CLAIM_LEASE_SECONDS": "3",
    }
    sandbox.bc.latency(3000)
    first = start_worker(environment, tmp_path / "first.log")
    try:
        world.send(
            {
                "jobId": "crash-1",
                "operation": "create",
                "entitySet": "customers",
                "data": {"number": "CRASH-1", "displayName": "Crash Test Dummies"},
                "naturalKey": {"number": "CRASH-1"},
            }
        )
        wait_until(lambda: sum(sandbox.bc.stats().in_flight.values()) > 0, timeout=30, what="the POST at BC")
        first.kill()
        first.wait(timeout=10)
    finally:
        stop_process(first)
    sandbox.bc.latency(0)
    second = start_worker(environment, tmp_path / "second.log")
    try:
        report = world.wait_for("crash-1", timeout=60)
    finally:
        stop_process(second)
    assert report.state == "succeeded", report.error
    found = [row for row in sandbox.bc.records("customers") if row.get("number") == "CRASH-1"]
    assert len(found) == 1
    row = world.row("crash-1")
    assert row is not None
    assert row["Runs"] == 2
    assert row["Ambiguous"] is True
