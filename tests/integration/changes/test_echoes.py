"""Echoes on Azurite: a version a job of ours wrote is published marked with that job; other versions are not;
a job on an entity set nobody watches costs no storage call; a change a job's ambiguous write (answer lost) may
have made is held until the job's retry recorded its version, then published once, marked."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
from azure.data.tables.aio import TableClient
from azure.storage.queue.aio import QueueClient

from localworld.polling import wait_until
from sandbox import Sandbox
from shared.changes.echoes import MemoryWatches, TableEchoJournal
from shared.changes.log import TableChangeFeed
from shared.changes.watch import Watch
from shared.clock import SystemClock
from shared.jobs import Delivery, Handled, job_services
from shared.jobs.journal import AmbiguousWrite, Written
from shared.settings import get_settings
from testkit.changes import change_event
from testkit.clock import ShiftedClock
from tests.fakes.change_contract import conforming
from tests.fakes.counting import Counting
from tests.fakes.jobs import MemoryJobQueues
from tests.functional.jobs.fakes import wire
from tests.integration.auth.conftest import Audit
from tests.integration.auth.test_change_feed_over_devhost import FeedHost, feed_host  # noqa: F401 - fixture
from tests.integration.changes.test_acceptance import COLD, WARM, arrival, logged, watch_and_subscribe

pytestmark = pytest.mark.integration
ID = "c0a8e2b1-0000-0000-0000-000000000001"


@pytest.fixture
async def parts(
    azurite_connection_string: str, unique_name: str
) -> AsyncIterator[tuple[TableEchoJournal, TableChangeFeed, QueueClient, TableClient]]:
    echoes = TableClient.from_connection_string(azurite_connection_string, unique_name + "echoes")
    log = TableClient.from_connection_string(azurite_connection_string, unique_name + "changes")
    queue = QueueClient.from_connection_string(azurite_connection_string, unique_name)
    watches = MemoryWatches({"contoso": [Watch(connection="contoso", name="crm", entity_set="customers")]})
    journal = TableEchoJournal(echoes, watches, SystemClock())
    feed = TableChangeFeed(log, queue, SystemClock(), journal, settle=timedelta(0))
    await journal.ensure()
    await feed.ensure()
    yield journal, feed, queue, echoes
    for table in (echoes, log):
        await table.delete_table()
        await table.close()
    await queue.delete_queue()
    await queue.close()


async def test_the_version_a_job_wrote_is_published_as_that_jobs_echo(
    parts: tuple[TableEchoJournal, TableChangeFeed, QueueClient, TableClient],
) -> None:
    """The job's ETag → bcecho names the job, in the log and on the queue; a later version by a user → no mark."""
    journal, feed, queue, _ = parts
    await journal.record([Written("contoso", "customers", ID, 'W/"JzE7Jw=="', "job-7")])
    ours = change_event(ID, 'W/"JzE7Jw=="')
    theirs = change_event(ID, 'W/"JzI7Jw=="')
    await feed.publish([ours, theirs])
    sent = [conforming(base64.b64decode(m.content)) async for m in queue.receive_messages(max_messages=32)]
    assert [(m["id"], m.get("bcecho")) for m in sent] == [(ours.id, "job-7"), (theirs.id, None)]
    logged = await feed.read("contoso", "customers", None, 10)
    assert [e.bcecho for e in logged.changes] == ["job-7", None]
    assert json.loads(logged.changes[0].to_json())["bcecho"] == "job-7"


async def test_a_write_to_an_entity_set_nobody_watches_is_not_journaled(
    parts: tuple[TableEchoJournal, TableChangeFeed, QueueClient, TableClient],
) -> None:
    """items has no watch on contoso: no row is written (the watches are cached: no storage call either)."""
    journal, _, _, echoes = parts
    await journal.record([Written("contoso", "items", ID, 'W/"1"', "job-8")])
    assert [row async for row in echoes.list_entities()] == []


async def test_a_batch_jobs_writes_are_journaled_a_hundred_per_call(
    parts: tuple[TableEchoJournal, TableChangeFeed, QueueClient, TableClient],
) -> None:
    """150 writes of one batch job (and one repeated): 150 rows, each naming the job."""
    journal, _, _, echoes = parts
    writes = [
        Written("contoso", "customers", f"c0a8e2b1-0000-0000-0000-{n:012d}", 'W/"1"', "job-9")
        for n in range(150)
    ]
    await journal.record([*writes, writes[0]])
    rows = [row async for row in echoes.list_entities()]
    assert len(rows) == 150
    assert {row["JobId"] for row in rows} == {"job-9"}


async def test_a_change_an_ambiguous_write_may_have_made_is_held_then_published_once_as_its_echo(
    parts: tuple[TableEchoJournal, TableChangeFeed, QueueClient, TableClient],
) -> None:
    """job-7's update lost its answer: its entity's change is held (no log row, no message), another entity's
    goes out; once the retry recorded the version and cleared the mark, the change goes out once, marked."""
    journal, feed, queue, echoes = parts
    until = SystemClock().now() + timedelta(hours=1)
    await journal.mark_ambiguous(AmbiguousWrite("contoso", "customers", ID, "job-7", until))
    ours, theirs = change_event(ID, 'W/"JzE7Jw=="'), change_event(ID.replace("1", "2"))
    first = await feed.publish([ours, theirs])
    assert (first.new, first.seen, first.held) == (1, 0, (ours.id,))
    await journal.record([Written("contoso", "customers", ID, 'W/"JzE7Jw=="', "job-7")])
    await journal.clear_ambiguous(AmbiguousWrite("contoso", "customers", ID, "job-7", until))
    again = await feed.publish([ours, theirs])
    assert (again.new, again.seen, again.held) == (1, 1, ())
    sent = [conforming(base64.b64decode(m.content)) async for m in queue.receive_messages(max_messages=32)]
    assert [(m["id"], m.get("bcecho")) for m in sent] == [(theirs.id, None), (ours.id, "job-7")]
    logged = await feed.read("contoso", "customers", None, 10)
    assert [(e.id, e.bcecho) for e in logged.changes] == [(theirs.id, None), (ours.id, "job-7")]
    assert not [row async for row in echoes.list_entities() if str(row["RowKey"]).startswith("~")]


async def test_with_the_echo_journal_a_change_costs_one_query_per_publish_and_fourteen(
    azurite_connection_string: str, unique_name: str
) -> None:
    """One new event: 5 storage calls (the journal's echoes and ambiguous marks in one query); 280 of a collection:
    about 1.3 each (an echo query is shared by 14); 280 seen again: under 0.1 each (no journal query at all)."""
    counts: Counter[str] = Counter()
    echoes = TableClient.from_connection_string(azurite_connection_string, unique_name + "echoes")
    log = TableClient.from_connection_string(azurite_connection_string, unique_name + "changes")
    queue = QueueClient.from_connection_string(azurite_connection_string, unique_name)
    watches = MemoryWatches({"contoso": [Watch(connection="contoso", name="crm", entity_set="customers")]})
    journal = TableEchoJournal(Counting(echoes, counts), watches, SystemClock())  # type: ignore[arg-type]
    feed = TableChangeFeed(Counting(log, counts), Counting(queue, counts), SystemClock(), journal)  # type: ignore[arg-type]
    try:
        await journal.ensure()
        await feed.ensure()
        await feed.publish([change_event("c0a8e2b1-0000-0000-0000-00000000ffff")])
        single = sum(counts.values())
        counts.clear()
        many = [change_event(f"c0a8e2b1-0000-0000-0000-{n:012d}") for n in range(280)]
        await feed.publish(many)
        collection = sum(counts.values()) / 280
        counts.clear()
        assert (await feed.publish(many)).seen == 280
        seen = sum(counts.values()) / 280
    finally:
        for client in (echoes, log):
            await client.delete_table()
            await client.close()
        await queue.delete_queue()
        await queue.close()
    print(
        f"storage calls per change with echoes: single {single}, collection {collection:.2f}, seen {seen:.2f}"
    )
    assert single == 5  # the log's 4 and one journal query (echoes and ambiguous marks together)
    assert collection < 1.35
    assert seen < 0.1


@pytest.fixture
def auth_env(auth_env: dict[str, str]) -> dict[str, str]:
    """The app's settings, with a held notification expanded again after 1 s (default 30 s)."""
    return {**auth_env, "BC_CHANGES_HELD_RECHECK_SECONDS": "1"}


async def test_a_notification_of_a_write_whose_answer_was_lost_waits_for_the_jobs_retry_and_is_its_echo(
    feed_host: FeedHost,  # noqa: F811
    sandbox: Sandbox,
    azurite_connection_string: str,
    audit: Audit,
) -> None:
    """BC applies the job's update and the answer is lost (the sandbox's `ambiguous_write`): the job retries; BC's
    notification comes first and devhost's expansion holds it (queued again); the job's retry records its version
    and clears the mark; the change then arrives once, marked with the job's id. The job runs in this process
    (the product's own processor and journal on the same storage), so that its retry comes only after the hold
    was seen; its retry copy is kept here, not queued for devhost."""
    await watch_and_subscribe(feed_host, {"customers": "customers"})
    customer = str(sandbox.bc.records("customers")[0]["id"])
    job_id = f"lost-{uuid.uuid4().hex[:8]}"
    job: dict[str, object] = {
        "jobId": job_id,
        "operation": "update",
        "entitySet": "customers",
        "id": customer,
    }
    job["data"] = {"phoneNumber": "555-0199"}
    queues = MemoryJobQueues()
    processor = replace((await job_services(get_settings())).processor, queues=queues)

    sandbox.bc.fail_next(1, "ambiguous_write")
    assert await processor.handle(Delivery("lost-1", wire(job))) is Handled.RETRY_SCHEDULED
    debounce = sandbox.bc.webhooks.current_settings().delay_seconds
    await asyncio.to_thread(  # the event loop stays free for this process's lanes meanwhile
        wait_until,
        lambda: any(r.__dict__.get("event") == "changes.notification_held" for r in audit.records),
        timeout=debounce + COLD,
        what="the expansion to hold the change",
    )
    assert not [
        e for e in await logged(feed_host, azurite_connection_string, "customers") if e.subject == customer
    ]

    later = replace(processor, clock=ShiftedClock(timedelta(seconds=queues.requeued[-1].delay_seconds + 1)))
    assert await later.handle(Delivery("lost-2", queues.requeued[-1].text)) is Handled.SUCCEEDED
    event, _ = await arrival(
        feed_host, azurite_connection_string, "customers", lambda e: e.subject == customer, WARM
    )
    assert (event.bcchange.value, event.bcecho) == ("updated", job_id)
    logged_now = await logged(feed_host, azurite_connection_string, "customers")
    assert [e.bcecho for e in logged_now if e.subject == customer] == [job_id]
