"""The status page's and the timer's sources against Azurite and the sandbox: queue depth and age, job rows by
UpdatedAt, the token's expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableClient

from bcjobs import JOBS_QUEUE, POISON_QUEUE
from shared.auth import auth_services, close_auth_services
from shared.ops import sample_now
from shared.ops.sources import AzureSources
from shared.settings import load_settings
from tests.fakes.telemetry import capture
from tests.integration.jobs.conftest import JobsWorld

pytestmark = pytest.mark.integration


async def test_the_timer_reads_both_job_queues_and_the_tokens_expiry(
    world: JobsWorld, jobs_env: dict[str, str]
) -> None:
    """Two waiting jobs and one poison message become depth and age gauges; a token gives the expiry gauge."""
    world.send({"operation": "get", "entitySet": "customers", "id": "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"})
    world.send({"operation": "list", "entitySet": "customers"})
    with world.queue(POISON_QUEUE) as poison:
        poison.send_message("not a job")
    settings = load_settings(jobs_env)
    try:
        with capture() as captured:
            await (await auth_services(settings)).manager.token()
            sample = await sample_now(settings)
            depth = {p.attributes["queue"]: p.value for p in captured.points("bc.queue.depth")}
            ages = {p.attributes["queue"]: p.value for p in captured.points("bc.queue.oldest_age")}
            expiry = [p.value for p in captured.points("bc.token.expiry")]
    finally:
        await close_auth_services()
    assert {queue: depth.get(queue) for queue in (JOBS_QUEUE, POISON_QUEUE)} == {
        JOBS_QUEUE: 2.0,
        POISON_QUEUE: 1.0,
    }
    assert set(depth) <= {JOBS_QUEUE, POISON_QUEUE, "bc-notifications", "bc-notifications-poison"}
    assert all(0 <= age < 120 for age in ages.values())
    assert len(expiry) == 1
    assert 0 < expiry[0] <= 2 * 3600
    assert sample.token_expires_on is not None


async def test_job_rows_are_read_by_their_update_time(world: JobsWorld, jobs_env: dict[str, str]) -> None:
    """Only rows updated within the last day, with the page's columns; a missing table reads as no jobs."""
    settings = load_settings(jobs_env)
    sources = AzureSources(settings)
    now = datetime.now(UTC)
    try:
        assert await sources.sources.jobs.updated_since(now - timedelta(days=1), 10) == ([], False)
        with TableClient.from_connection_string(world.connection_string, f"{world.prefix}jobs") as table:
            table.create_table()
            for n, age in enumerate((timedelta(minutes=5), timedelta(hours=3), timedelta(days=2))):
                at = now - age
                table.create_entity(
                    {
                        "PartitionKey": f"job-{n}",
                        "RowKey": "job",
                        "State": "succeeded",
                        "CreatedAt": at,
                        "UpdatedAt": at,
                        "Deadline": at,
                        "Result": '{"id": "x"}',
                    }
                )
        rows, more = await sources.sources.jobs.updated_since(now - timedelta(days=1), 10)
        assert (sorted(row["PartitionKey"] for row in rows), more) == (["job-0", "job-1"], False)
        assert "Result" not in rows[0]
        rows, more = await sources.sources.jobs.updated_since(now - timedelta(days=1), 1)
        assert (len(rows), more) == (1, True)
    finally:
        await sources.aclose()
