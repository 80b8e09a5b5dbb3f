"""A flooded connection does not hold the worker's invocations another connection's job needs (issue 21, point 6).

A host stand-in delivers one FIFO queue with a fixed number of invocations at once (host.json's concurrency, in
small): connection A's jobs first, then one of connection B's. A's BC work never finishes during the test (its
budget is saturated), B's does at once. Each connection's backlog is the real BudgetBacklog at a fixed share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from bcjobs import JobState
from shared.bc.throttle import Share
from shared.connections import Connection
from shared.jobs import Delivery, Handled, JobProcessor, JobStoreError
from shared.jobs.fairness import BudgetBacklog
from shared.jobs.lanes import Lane
from shared.jobs.policy import JobPolicy
from shared.settings import JobSettings
from testkit.clock import ManualClock
from testkit.lanes import TEST_CONNECTION
from tests.fakes.jobs import MemoryAuditLog, MemoryJobQueues, MemoryJobStore
from tests.functional.jobs.conftest import REQUEST_TIMEOUT, Pipeline
from tests.functional.jobs.fakes import FakeTokens, ScriptedRunner, wire

INVOCATIONS = 4  # the host's invocations at once
DEADLINE_SECONDS = 5.0  # wall time: everything here is in memory
B = Connection(
    name="customer-b",
    tenant_id="00000000-0000-0000-0000-0000000000b0",
    environment="production",
    client_id="00000000-0000-0000-0000-0000000000b1",
)


@dataclass
class TwoConnections:
    """Lanes for A (the settings' connection, its runs held) and B (runs finish at once)."""

    contended: bool = True
    clock: ManualClock = field(default_factory=ManualClock)
    flood: ScriptedRunner = field(default_factory=ScriptedRunner)
    trickle: ScriptedRunner = field(default_factory=ScriptedRunner)
    lanes: dict[str, Lane] = field(default_factory=dict)
    budget_freed: asyncio.Event = field(default_factory=asyncio.Event)  # set: A's held runs finish

    def __post_init__(self) -> None:
        self.flood.hold = self.budget_freed
        tokens = FakeTokens(self.clock)
        for connection, runner in ((TEST_CONNECTION, self.flood), (B, self.trickle)):
            # 2 slots at 2/s: the backlog holds max(2, 2/s x 1 s) = 2 deliveries.
            backlog = BudgetBacklog(lambda: Share(rate=2.0, slots=2, members=1), self._contended, self.clock)
            self.lanes[connection.name] = Lane(connection, runner, tokens, backlog=backlog)

    @property
    def default(self) -> str:
        return TEST_CONNECTION.name

    async def lane(self, connection: str | None) -> Lane:
        return self.lanes[connection or self.default]

    async def _contended(self) -> bool:
        return self.contended


def processor_for(lanes: TwoConnections, store: MemoryJobStore, queues: MemoryJobQueues) -> JobProcessor:
    return JobProcessor(
        store=store,
        audit=MemoryAuditLog(),
        queues=queues,
        lanes=lanes,
        policy=JobPolicy.from_settings(JobSettings()),
        clock=lanes.clock,
        request_timeout=REQUEST_TIMEOUT,
    )


def queue(flood: int) -> list[tuple[str, str]]:
    """`flood` of A's jobs, then one of B's (message id, text)."""
    get = {"operation": "get", "entitySet": "items", "id": "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"}
    jobs = [{"jobId": f"a-{n}", **get} for n in range(flood)]
    jobs.append({"jobId": "b-0", "connection": B.name, **get})
    return [(f"m{n}", wire(job)) for n, job in enumerate(jobs)]


async def host(
    handle: Callable[[Delivery], Coroutine[None, None, Handled]], messages: list[tuple[str, str]]
) -> None:
    """Deliver the messages in order, INVOCATIONS at once (a new one starts when one ends)."""
    invocations = asyncio.Semaphore(INVOCATIONS)
    running: set[asyncio.Task[Handled]] = set()

    def ended(task: asyncio.Task[Handled]) -> None:
        running.discard(task)
        invocations.release()

    for message_id, text in messages:
        await invocations.acquire()
        task = asyncio.create_task(handle(Delivery(message_id, text)))
        running.add(task)
        task.add_done_callback(ended)


def state(store: MemoryJobStore, job_id: str) -> JobState | None:
    record = store.peek(job_id)
    return None if record is None else record.state


async def until(condition: Callable[[], bool]) -> bool:
    """Poll (yielding to the loop) until the condition holds or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.001)
    return True


async def test_a_flooded_connection_sends_its_surplus_back_and_the_other_connections_job_runs() -> None:
    lanes, store, queues = TwoConnections(), MemoryJobStore(), MemoryJobQueues()
    processor = processor_for(lanes, store, queues)
    delivering = asyncio.create_task(host(processor.handle, queue(flood=30)))

    assert await until(lambda: state(store, "b-0") is JobState.SUCCEEDED)
    assert len(lanes.flood.calls) == 2  # A's backlog: its room, still waiting for A's budget
    sent_back = [str(copy.job.job_id) for copy in queues.requeued]
    assert sent_back == [f"a-{n}" for n in range(2, 30)]  # the rest went back, in order, unrecorded
    assert all(store.peek(job_id) is None for job_id in sent_back)
    delays = [copy.delay_seconds for copy in queues.requeued]
    assert delays[-1] > delays[0]  # later ones are due later: they come back as A's budget can take them
    lanes.budget_freed.set()
    await delivering
    assert await until(lambda: state(store, "a-1") is JobState.SUCCEEDED)


async def test_with_one_budget_in_the_registry_the_flood_keeps_every_invocation() -> None:
    """Before fairness (and still with a single budget): A's deliveries fill the invocations, B is not reached."""
    lanes, store, queues = TwoConnections(contended=False), MemoryJobStore(), MemoryJobQueues()
    processor = processor_for(lanes, store, queues)
    delivering = asyncio.create_task(host(processor.handle, queue(flood=30)))

    assert await until(lambda: len(lanes.flood.calls) == INVOCATIONS)
    for _ in range(100):
        await asyncio.sleep(0)
    assert store.peek("b-0") is None
    assert queues.requeued == []
    lanes.budget_freed.set()
    await delivering
    assert await until(lambda: state(store, "b-0") is JobState.SUCCEEDED)


@dataclass
class FullBacklog:
    """A budget backlog that is full until `full` is cleared: every delivery is sent back for 30 s."""

    full: bool = True
    ran: int = 0

    async def deferral(self) -> float | None:
        return 30.0 if self.full else None

    @contextmanager
    def running(self) -> Iterator[None]:
        self.ran += 1
        yield


GET = {
    "jobId": "get-1",
    "operation": "get",
    "entitySet": "items",
    "id": "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f",
}
KEYED_CREATE = {
    "jobId": "create-1",
    "operation": "create",
    "entitySet": "customers",
    "data": {"displayName": "Adatum"},
    "naturalKey": {"number": "C-100"},
}


async def test_a_job_sent_back_by_a_full_backlog_uses_no_attempt_and_runs_from_its_copy() -> None:
    backlog = FullBacklog()
    pipeline = Pipeline(backlog=backlog)
    assert await pipeline.deliver(wire(GET), "m1") is Handled.DEFERRED
    [copy] = pipeline.queues.requeued
    assert (copy.job.job_id, copy.delay_seconds) == ("get-1", 30.0)
    assert pipeline.store.job_ids == []  # no row: nothing was claimed, no attempt counted
    backlog.full = False
    assert await pipeline.deliver_copy("m2") is Handled.SUCCEEDED
    assert (pipeline.row("get-1").attempts, backlog.ran) == (1, 1)


async def test_a_finished_jobs_redelivery_is_never_sent_back() -> None:
    backlog = FullBacklog(full=False)
    pipeline = Pipeline(backlog=backlog)
    assert await pipeline.deliver(wire(GET), "m1") is Handled.SUCCEEDED
    backlog.full = True
    assert await pipeline.deliver(wire(GET), "m1", dequeue_count=2) is Handled.ALREADY_FINISHED
    assert pipeline.queues.requeued == []


async def test_a_crashed_runs_redelivery_takes_over_instead_of_going_back_to_the_queue() -> None:
    """The redelivered message is the job's only one: a copy would find the dead run's lease live and be dropped."""
    backlog = FullBacklog(full=False)
    pipeline = Pipeline(backlog=backlog)
    pipeline.store.fail("replace")  # the run's outcome is never written: its invocation fails
    with pytest.raises(JobStoreError):
        await pipeline.deliver(wire(KEYED_CREATE), "m1", process_id="worker-a")
    backlog.full = True
    handled = await pipeline.deliver(wire(KEYED_CREATE), "m1", process_id="worker-b", dequeue_count=2)
    assert handled is Handled.SUCCEEDED
    assert pipeline.queues.requeued == []
