"""Dependency faults, one at a time, counted: storage restarted under running jobs, Entra down, BC down.

Each test runs function_app.py under devhost (in this process) on the session's sandbox. The Azurite test uses
its own file-backed Azurite (`Azurite(location=...)`): an in-memory Azurite loses every queue message and row on
a restart, so "no job lost across a restart" can only mean something for storage that keeps its data — as Azure
Storage does.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

import function_app
from bcjobs import JOBS_QUEUE, POISON_QUEUE, RESULTS_QUEUE, JobState
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from localworld.azurite import Azurite
from localworld.polling import wait_until
from sandbox import Sandbox
from shared.settings import get_settings
from tests.integration.jobs.conftest import ROOT, JobsWorld

pytestmark = pytest.mark.timeout(300)


def environment(sandbox: Sandbox, connection_string: str, **overrides: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        **sandbox.env,
        "JobsStorage": connection_string,
        "BC_TABLE_PREFIX": f"r{suffix}",
        "BC_CONNECTION_NAME": f"r{suffix}",
        "BC_AUTH_MODE": "client_credentials",
        "BC_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *",
        "BC_JOB_BACKOFF_BASE_SECONDS": "0.5",
        "BC_JOB_BACKOFF_CAP_SECONDS": "2",
        "BC_JOB_AUTHORIZATION_RECHECK_SECONDS": "1",
        "BC_JOB_MAX_ATTEMPTS": "8",
        "DEVHOST_FUNCTION_KEY": secrets.token_urlsafe(16),
        "DEVHOST_MASTER_KEY": secrets.token_urlsafe(16),
        **overrides,
    }


@contextlib.contextmanager
def running(settings: dict[str, str]) -> Iterator[JobsWorld]:
    """function_app.py under devhost with these settings; the world's queues created first."""
    world = JobsWorld(
        settings["JobsStorage"],
        settings["BC_TABLE_PREFIX"],
        settings["DEVHOST_FUNCTION_KEY"],
        settings["BC_CONNECTION_NAME"],
    )
    for name in (JOBS_QUEUE, POISON_QUEUE, RESULTS_QUEUE):
        with world.queue(name) as queue, contextlib.suppress(ResourceExistsError):
            queue.create_queue()
    get_settings.cache_clear()
    host = DevHost(
        function_app.app,
        settings,
        host_config=load_host_config(ROOT / "host.json"),
        shutdown_grace=10,
    )
    host.start()
    world.base_url = host.base_url
    try:
        yield world
    finally:
        host.stop()
        get_settings.cache_clear()


def get_item(sandbox: Sandbox, job_id: str) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "operation": "get",
        "entitySet": "items",
        "id": sandbox.bc.records("items")[0]["id"],
    }


def run_gaps(world: JobsWorld, job_id: str) -> list[float]:
    """Seconds between the first BC request of each run of a job and the last request of the run before."""
    runs: dict[int, list[Any]] = {}
    for interaction in world.interactions(job_id):
        runs.setdefault(interaction.attempt, []).append(interaction.at)
    ordered = [sorted(times) for _, times in sorted(runs.items())]
    return [(later[0] - earlier[-1]).total_seconds() for earlier, later in itertools.pairwise(ordered)]


def states(world: JobsWorld, job_ids: list[str]) -> dict[str, str]:
    rows = {str(row["PartitionKey"]): str(row["State"]) for row in world.rows()}
    return {job_id: rows.get(job_id, "missing") for job_id in job_ids}


def all_terminal(world: JobsWorld, job_ids: list[str]) -> bool:
    return all(state not in ("missing", *_OPEN) for state in states(world, job_ids).values())


_OPEN = {state.value for state in JobState if not state.terminal}


# -- Azurite ---------------------------------------------------------------------------------------------------


@pytest.fixture
def file_backed_azurite(tmp_path: Path) -> Iterator[Azurite]:
    """An Azurite of this test's own whose data lives in tmp_path (kept across restarts)."""
    server = Azurite(location=tmp_path / "azurite")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_an_in_memory_azurite_comes_back_empty_and_a_file_backed_one_keeps_everything(tmp_path: Path) -> None:
    """What a restart means for each: the default (in memory) loses queues and rows; `location` keeps them."""
    for location, kept in ((None, False), (tmp_path / "data", True)):
        with contextlib.ExitStack() as stack:
            server = Azurite(location=location)
            endpoints = server.start()
            stack.callback(server.stop)
            with QueueClient.from_connection_string(endpoints.connection_string, "kept") as queue:
                queue.create_queue()
                queue.send_message("one")
            with TableClient.from_connection_string(endpoints.connection_string, "kept") as table:
                table.create_table()
                table.upsert_entity({"PartitionKey": "p", "RowKey": "r"})
            again = server.restart()
            assert again == endpoints
            with QueueClient.from_connection_string(endpoints.connection_string, "kept") as queue:
                try:
                    found = [message.content for message in queue.peek_messages()]
                except ResourceNotFoundError:  # the queue itself is gone
                    found = []
            with TableClient.from_connection_string(endpoints.connection_string, "kept") as table:
                try:
                    rows = list(table.list_entities())
                except ResourceNotFoundError:  # the table itself is gone
                    rows = []
            assert (found == ["one"], len(rows) == 1) == (kept, kept)


def test_no_job_is_lost_across_an_azurite_restart(file_backed_azurite: Azurite, sandbox: Sandbox) -> None:
    """40 jobs, storage stopped for 3 s while some run, some wait in the queue and some are done: every one
    ends terminal, reported on bc-results, with its record in BC exactly once."""
    settings = environment(
        sandbox,
        file_backed_azurite.endpoints.connection_string if file_backed_azurite.endpoints else "",
        DEVHOST_MESSAGE_LEASE_SECONDS="8",
        BC_JOB_CLAIM_LEASE_SECONDS="6",
    )
    sandbox.bc.latency(150, 100)
    job_ids: list[str] = []
    with running(settings) as world:
        for n in range(40):
            job_id = f"restart-{n}"
            name = f"Restart Ltd {n}"
            job = (
                {
                    "jobId": job_id,
                    "operation": "create",
                    "entitySet": "customers",
                    "data": {"displayName": name},
                    "naturalKey": {"displayName": name},
                }
                if n % 2 == 0
                else get_item(sandbox, job_id)
            )
            world.send(job)
            job_ids.append(job_id)
        wait_until(
            lambda: sum(s not in ("missing", *_OPEN) for s in states(world, job_ids).values()) >= 8,
            timeout=60,
            what="a few jobs to finish before the restart",
        )
        file_backed_azurite.restart(down_seconds=3)
        wait_until(
            lambda: all_terminal(world, job_ids), timeout=180, what="every job to finish after the restart"
        )
        final = states(world, job_ids)
        reported = {report.job_id for report in world.results(len(job_ids))}
    assert set(final.values()) == {JobState.SUCCEEDED.value}, final
    assert reported == set(job_ids)
    names = [str(row.get("displayName")) for row in sandbox.bc.records("customers")]
    for n in range(0, 40, 2):
        assert names.count(f"Restart Ltd {n}") == 1


# -- Entra -----------------------------------------------------------------------------------------------------


def test_entra_down_jobs_wait_without_a_token_then_complete_and_a_cached_token_keeps_serving(
    sandbox: Sandbox, azurite_connection_string: str
) -> None:
    """No token yet and Entra answering 503: jobs wait (retry_scheduled, token_unavailable, ≥ 4 s apart, a few
    Entra calls) and finish once Entra is back. Then Entra down again: with a cached token, jobs succeed and
    Entra is not called at all."""
    # Two timers ask Entra for tokens no job asked for: the telemetry sample (every minute at :00) reads each
    # connection's token status from Key Vault in a process of its own, whose vault credential needs a token, and
    # the hourly refresh. A minute boundary inside the cached phase below added 2-3 token requests (CI, stop 29).
    # This test counts the jobs' requests only, so both are off (devhost honours AzureWebJobs.<name>.Disabled).
    quiet = {f"AzureWebJobs.{name}.Disabled": "true" for name in ("telemetry_sample", "token_refresh")}
    settings = environment(sandbox, azurite_connection_string, **quiet)
    sandbox.entra.fail_next_token_calls(1_000_000, 503, retry_after=0)
    waiting = [f"entra-wait-{n}" for n in range(5)]
    with running(settings) as world:
        for job_id in waiting:
            world.send(get_item(sandbox, job_id))
        wait_until(
            lambda: all(int((world.row(j) or {}).get("Attempts") or 0) >= 2 for j in waiting),
            timeout=60,
            what="every job to have tried twice without a token",
        )
        gaps: list[float] = []
        for job_id in waiting:
            report = world.report(job_id)
            assert report is not None
            assert report.state.value in _OPEN
            assert report.error is not None
            assert report.error.code == "token_unavailable"
            scheduled = report.state.value == JobState.RETRY_SCHEDULED.value
            if scheduled and report.next_attempt_at is not None and report.updated_at is not None:
                gaps.append((report.next_attempt_at - report.updated_at).total_seconds())
        calls_while_down = sum(sandbox.entra.token_calls.values())
        attempts_while_down = sum(int((world.row(j) or {}).get("Attempts") or 0) for j in waiting)
        sandbox.entra.reset()  # Entra answers again
        for job_id in waiting:
            report = world.wait_for(job_id, timeout=90)
            assert report.state == "succeeded", report.error
            assert report.attempts <= 8

        sandbox.entra.fail_next_token_calls(1_000_000, 503, retry_after=0)
        before = sum(sandbox.entra.token_calls.values())
        cached = [f"entra-cached-{n}" for n in range(10)]
        for job_id in cached:
            world.send(get_item(sandbox, job_id))
        for job_id in cached:
            report = world.wait_for(job_id, timeout=60)
            assert (report.state, report.attempts) == ("succeeded", 1)
        assert sum(sandbox.entra.token_calls.values()) == before  # the cached token served every job
    # No tight loop while Entra was down: each attempt waits for the token layer's backoff (5 s), and costs a
    # bounded number of token requests (today about 3: Key Vault's credential and MSAL's own retry; not gated per
    # process like the BC token's refresh is; reported by issue 13).
    print(f"Entra down: {calls_while_down} token requests for {attempts_while_down} job attempts")
    assert gaps
    assert all(gap >= 4.0 for gap in gaps), gaps
    assert 1 <= calls_while_down <= 4 * attempts_while_down, (calls_while_down, attempts_while_down)


# -- BC --------------------------------------------------------------------------------------------------------


def test_bc_down_jobs_wait_and_complete_without_a_tight_retry_loop(
    sandbox: Sandbox, azurite_connection_string: str
) -> None:
    """Every BC request answered 503 (Retry-After 1): each job's retries are ≥ 1 s apart and few BC requests are
    made per attempt; once BC is back every job succeeds, within the attempt limit."""
    settings = environment(
        sandbox, azurite_connection_string, BC_JOB_BACKOFF_BASE_SECONDS="1", BC_JOB_BACKOFF_CAP_SECONDS="4"
    )
    with running(settings) as world:
        world.send(get_item(sandbox, "bc-warm"))  # a token first: the outage is BC's alone
        assert world.wait_for("bc-warm").state == "succeeded"
        sandbox.bc.faults(rate_503=1.0, retry_after_seconds=1)
        before = sandbox.bc.stats().count()
        job_ids = [f"bc-down-{n}" for n in range(8)]
        for job_id in job_ids:
            world.send(get_item(sandbox, job_id))
        wait_until(
            lambda: all(int((world.row(j) or {}).get("Attempts") or 0) >= 2 for j in job_ids),
            timeout=90,
            what="every job to have been retried while BC is down",
        )
        during = sandbox.bc.stats().count() - before
        attempts = sum(int((world.row(j) or {}).get("Attempts") or 0) for j in job_ids)
        gaps = [gap for job_id in job_ids for gap in run_gaps(world, job_id)]
        sandbox.bc.faults(rate_503=0.0)
        for job_id in job_ids:
            report = world.wait_for(job_id, timeout=90)
            assert report.state == "succeeded", report.error
            assert report.attempts <= 8
    print(f"BC down: {during} BC requests for {attempts} job attempts")
    assert gaps
    assert all(gap >= 0.95 for gap in gaps), gaps  # BC's Retry-After (1 s) honoured by every re-enqueue
    # The client tries a request at most 3 times in-call; anything more would be a loop. A row counts an attempt
    # when it ends, so each job may also have one attempt in flight at the snapshot, with up to 3 requests sent.
    assert during <= 3 * (attempts + len(job_ids)), (during, attempts)


# -- Key Vault -------------------------------------------------------------------------------------------------


def token_due(world: JobsWorld) -> bool:
    """True once the connection's token has less than the 5 minutes a job asks for (GET /api/auth/status)."""
    status = world.get("/api/auth/status").json()
    expires = datetime.fromisoformat(str(status["expires_on"]))
    return expires - datetime.now(UTC) < timedelta(minutes=5)


def test_a_key_vault_outage_costs_a_few_key_vault_calls_not_one_per_job(
    sandbox: Sandbox, azurite_connection_string: str
) -> None:
    """Key Vault down while the cached token is inside its last 5 minutes (due for a refresh, still valid): jobs
    keep succeeding on the cached token, and the process does not try Key Vault again for every job."""
    sandbox.entra.token_lifetime_seconds = 302  # due for a refresh two seconds after it is issued
    settings = environment(sandbox, azurite_connection_string)
    with running(settings) as world:
        world.send(get_item(sandbox, "kv-warm"))
        assert world.wait_for("kv-warm").state == "succeeded"
        wait_until(lambda: token_due(world), timeout=30, what="the cached token to be due for a refresh")
        sandbox.vault.outage = True
        before = sum(sandbox.vault.responses.values())
        started = time.monotonic()
        job_ids = [f"kv-down-{n}" for n in range(20)]
        for job_id in job_ids:
            world.send(get_item(sandbox, job_id))
        for job_id in job_ids:
            report = world.wait_for(job_id, timeout=120)
            assert report.state == "succeeded", report.error
        calls = sum(sandbox.vault.responses.values()) - before
        took = time.monotonic() - started
        sandbox.vault.outage = False
    print(f"Key Vault down: {calls} Key Vault requests for {len(job_ids)} jobs in {took:.1f} s")
    assert calls <= 10, f"{calls} Key Vault requests for {len(job_ids)} jobs"
