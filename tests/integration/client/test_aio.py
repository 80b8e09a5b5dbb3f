"""The async client against Azurite: the same behaviour as the sync one, on the aio SDKs."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bcjobs import JOBS_QUEUE, RESULTS_QUEUE, JobReport, JobState, decode
from bcjobs.aio import AsyncJobsClient
from bcjobs.errors import WaitTimeoutError
from bcjobs.rows import AuditedInteraction
from tests.integration.client.conftest import Storage

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(storage: Storage) -> AsyncIterator[AsyncJobsClient]:
    async with AsyncJobsClient.from_connection_string(
        storage.connection_string, table_prefix=storage.prefix
    ) as built:
        yield built


async def test_enqueue_many_sends_concurrently_and_keeps_going_past_bad_jobs(
    client: AsyncJobsClient, storage: Storage
) -> None:
    """30 jobs through 5 workers, 2 bad: 28 on the queue, decoding to the jobs sent."""
    jobs: list[object] = [{"jobId": f"a-{i}", "operation": "list", "entitySet": "items"} for i in range(30)]
    jobs[3] = {"jobId": "a-3", "operation": "delete", "entitySet": "items"}
    jobs[17] = ["not", "a", "job"]
    result = await client.enqueue_many(jobs, max_concurrency=5)  # type: ignore[arg-type]
    assert [(f.index, f.job_id) for f in result.failures] == [(3, "a-3"), (17, None)]
    assert len(result.handles) == 28
    assert sorted(decode(t).job_id or "" for t in storage.drain(JOBS_QUEUE)) == sorted(
        f"a-{i}" for i in range(30) if i not in (3, 17)
    )


async def test_get_list_and_wait_read_the_product_rows(client: AsyncJobsClient, storage: Storage) -> None:
    """get with interactions, list by state, wait on a terminal row; a running one times out."""
    now = datetime.now(UTC)
    storage.put_job("b-1", JobState.SUCCEEDED, updated_at=now)
    storage.put_job("b-2", JobState.RUNNING, updated_at=now - timedelta(days=2))
    storage.put_interactions(
        "b-1", [AuditedInteraction(attempt=1, sequence=1, method="GET", path="/companies", status=200)]
    )
    details = await client.get("b-1", interactions=True)
    assert details is not None
    assert [i.path for i in details.interactions or []] == ["/companies"]
    assert [r.job_id async for r in client.list(JobState.RUNNING)] == ["b-2"]
    assert [r.job_id async for r in client.list(since=now - timedelta(days=1))] == ["b-1"]
    page = await client.list_page(page_size=1)
    assert [j.job_id for j in page.jobs] == ["b-1"]
    assert page.continuation_token
    assert (await client.wait("b-1", timeout=5, poll=0.05)).state is JobState.SUCCEEDED
    with pytest.raises(WaitTimeoutError):
        await client.wait("b-2", timeout=0.2, poll=0.05)


async def test_two_async_consumers_hand_out_every_result_exactly_once(storage: Storage) -> None:
    """Two clients on one loop share 40 reports; each is handed out once and the queue ends empty."""
    for i in range(40):
        storage.publish(JobReport(job_id=f"c-{i}", state=JobState.SUCCEEDED))
    taken: list[str] = []

    async def consume() -> None:
        jobs = AsyncJobsClient.from_connection_string(storage.connection_string)
        async with jobs, jobs.results(batch_size=3) as stream:
            async for item in stream:
                async with item as report:
                    taken.append(report.job_id)

    await asyncio.gather(consume(), consume())
    assert Counter(taken) == Counter(f"c-{i}" for i in range(40))
    assert storage.count(RESULTS_QUEUE) == 0
