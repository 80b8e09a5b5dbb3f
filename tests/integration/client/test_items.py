"""A large batch's item outcomes through the clients and the CLI against Azurite: the job row keeps counts and the
first failing items (`itemsTruncated`); `items()` and `--all-items` read every one from `{prefix}jobitems`, as the
product's writers (shared.jobs.audit, shared.jobs.records) leave them."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from azure.data.tables.aio import TableServiceClient
from azure.storage.queue.aio import QueueServiceClient
from typer.testing import CliRunner, Result

from bcjobs import JOBS_QUEUE, RESULTS_QUEUE, ErrorInfo, ItemOutcome, JobState
from bcjobs.aio import AsyncJobsClient
from bcjobs.cli import ExitCode, app
from bcjobs.client import JobsClient
from bcjobs.common import audit_table_name, jobs_table_name
from bcjobs.errors import BcJobsError, JobsStorageError
from tests.integration.client.conftest import Storage

pytestmark = pytest.mark.integration

COUNT = 690  # the most one-field creates a queue message carries


def outcomes(count: int = COUNT) -> list[ItemOutcome]:
    """`count` created records, every 10th refused by BC with a long message (so not all failing ones fit)."""
    return [
        ItemOutcome(
            index=index,
            status=400,
            error=ErrorInfo(
                code="bc_validation", message=f"item {index}: " + "refused " * 80, bc_code="BadRequest"
            ),
        )
        if index % 10 == 3
        else ItemOutcome(
            index=index, status=201, id=f"00000000-0000-4000-8000-{index:012d}", etag=f'W/"{index}"'
        )
        for index in range(count)
    ]


def run_cli(storage: Storage) -> Callable[..., Result]:
    env = {"JobsStorage": storage.connection_string, "BC_TABLE_PREFIX": storage.prefix, "COLUMNS": "200"}
    return lambda *args: CliRunner().invoke(app, list(args), env=env)


def test_the_sync_client_reads_every_item_of_a_truncated_batch(storage: Storage) -> None:
    """get() has the bounded row; items(job_id) and items(report) give all 690 outcomes, in order, as kept."""
    items = outcomes()
    kept = storage.put_batch("big-1", items, JobState.FAILED)
    assert kept.items_truncated
    assert (kept.items_succeeded, kept.items_failed) == (621, 69)
    assert kept.items is not None
    assert 0 < len(kept.items) < 69
    with JobsClient.from_connection_string(storage.connection_string, table_prefix=storage.prefix) as client:
        report = client.get("big-1")
        assert report is not None
        assert report.result == kept
        assert client.items("big-1") == items
        assert client.items(report) == items
        assert client.items(client.wait("big-1", timeout=5)) == items


def test_a_batch_that_fits_its_row_is_answered_from_the_row_alone(storage: Storage) -> None:
    """A small batch's row holds every item (nothing in the items table); an unknown job has none."""
    items = outcomes(20)
    kept = storage.put_batch("small-1", items)
    assert not kept.items_truncated
    with JobsClient.from_connection_string(storage.connection_string, table_prefix=storage.prefix) as client:
        assert client.items("small-1") == items
        assert client.items("nobody") == []
        assert client.items("not an id!") == []


def test_a_truncated_row_without_its_items_table_is_a_storage_error(storage: Storage) -> None:
    """A wrong table prefix for the items (or a missing role) is reported, never read as 'no items'."""
    storage.put_batch("big-2", outcomes())
    with JobsClient.from_connection_string(storage.connection_string, table_prefix=storage.prefix) as client:
        report = client.get("big-2")
    assert report is not None
    with (
        JobsClient.from_connection_string(storage.connection_string, table_prefix="nosuch") as other,
        pytest.raises(JobsStorageError, match="item outcomes of job big-2") as caught,
    ):
        other.items(report)
    assert caught.value.status == 404


async def test_the_async_client_reads_every_item_of_a_truncated_batch(storage: Storage) -> None:
    """The same through AsyncJobsClient; from_clients without items_table says what is missing."""
    items = outcomes()
    storage.put_batch("big-3", items)
    async with AsyncJobsClient.from_connection_string(
        storage.connection_string, table_prefix=storage.prefix
    ) as client:
        report = await client.get("big-3")
        assert report is not None
        assert report.result is not None
        assert report.result.items_truncated
        assert await client.items("big-3") == items
        assert await client.items(report) == items
    async with (
        QueueServiceClient.from_connection_string(storage.connection_string) as queues,
        TableServiceClient.from_connection_string(storage.connection_string) as tables,
    ):
        bare = AsyncJobsClient.from_clients(
            jobs_queue=queues.get_queue_client(JOBS_QUEUE),
            results_queue=queues.get_queue_client(RESULTS_QUEUE),
            jobs_table=tables.get_table_client(jobs_table_name(storage.prefix)),
            audit_table=tables.get_table_client(audit_table_name(storage.prefix)),
        )
        with pytest.raises(BcJobsError, match="items_table"):
            await bare.items(report)


def test_show_says_the_list_is_truncated_and_all_items_shows_every_one(storage: Storage) -> None:
    """Human `show` names the counts and the flag; `--all-items --json` answers as GET /api/jobs/{id} does."""
    items = outcomes()
    kept = storage.put_batch("big-4", items, JobState.FAILED)
    run = run_cli(storage)
    shown = run("show", "big-4")
    assert shown.exit_code == ExitCode.OK, shown.output
    assert kept.items is not None
    assert f"items truncated: {len(kept.items)} of 690 shown (621 succeeded, 69 failed)" in shown.stdout
    assert "bcjobs show big-4 --all-items" in shown.stdout
    bounded = json.loads(run("show", "big-4", "--json").stdout)
    assert bounded["result"]["itemsTruncated"] is True
    assert len(bounded["result"]["items"]) == len(kept.items)
    full = json.loads(run("show", "big-4", "--all-items", "--json").stdout)
    assert full["result"]["itemsTruncated"] is False
    assert full["result"]["items"] == [
        item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in items
    ]
    everything = run("show", "big-4", "--all-items")
    assert "items truncated" not in everything.stdout
    assert "│ 689 " in everything.stdout


def test_wait_with_all_items_prints_every_item_and_keeps_its_exit_code(storage: Storage) -> None:
    """`wait --all-items` on a failed batch: every item, exit 1; without the flag the note, not the items."""
    storage.put_batch("big-5", outcomes(), JobState.FAILED)
    run = run_cli(storage)
    waited = run("wait", "big-5", "--timeout", "5", "--all-items", "--json")
    assert waited.exit_code == ExitCode.INCOMPLETE, waited.output
    assert [item["index"] for item in json.loads(waited.stdout)["result"]["items"]] == list(range(COUNT))
    plain = run("wait", "big-5", "--timeout", "5")
    assert plain.exit_code == ExitCode.INCOMPLETE
    assert "--all-items" in plain.stdout
    assert "│ 689 " not in plain.stdout
