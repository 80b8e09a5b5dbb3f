"""A JobProcessor wired to in-memory fakes behind shared.jobs' Protocols, on a clock the test moves."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from bcjobs import JobState
from shared.jobs import SELF_LOGGED, DeadLetters, Delivery, Handled, JobProcessor
from shared.jobs.fairness import NO_BACKLOG, Backlog
from shared.jobs.policy import JobPolicy
from shared.jobs.records import JobRecord
from shared.settings import JobSettings
from testkit.clock import ManualClock
from testkit.lanes import one_lane
from tests.fakes.jobs import MemoryAuditLog, MemoryJobQueues, MemoryJobStore
from tests.functional.jobs.fakes import FakeTokens, ScriptedRunner

REQUEST_TIMEOUT = timedelta(seconds=100)


class _Events(logging.Handler):
    """The events shared.jobs logged at INFO or above."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(str(getattr(record, "event", record.getMessage())))


@dataclass
class Pipeline:
    """Everything one test's processors share: the store, the queues, the runner, the tokens and the clock."""

    clock: ManualClock = field(default_factory=ManualClock)
    audit: MemoryAuditLog = field(default_factory=MemoryAuditLog)
    store: MemoryJobStore = field(init=False)  # writes a run's audit rows with its row, into `audit`
    queues: MemoryJobQueues = field(default_factory=MemoryJobQueues)
    runner: ScriptedRunner = field(default_factory=ScriptedRunner)
    policy: JobPolicy = field(default_factory=lambda: JobPolicy.from_settings(JobSettings()))
    has_slot: bool = True
    slot_waits: list[float] = field(default_factory=list)  # how long each delivery would hold for a slot
    backlog: Backlog = NO_BACKLOG  # the one connection's budget backlog (shared/jobs/fairness.py)
    tokens: FakeTokens = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = FakeTokens(self.clock)
        self.store = MemoryJobStore(self.audit)

    def processor(self, process_id: str = "worker-a") -> JobProcessor:
        """A processor (one per process) over the shared fakes."""
        return JobProcessor(
            store=self.store,
            audit=self.audit,
            queues=self.queues,
            lanes=one_lane(self.runner, self.tokens, self._await_slot, backlog=self.backlog),
            policy=self.policy,
            clock=self.clock,
            request_timeout=REQUEST_TIMEOUT,
            process_id=process_id,
        )

    async def _await_slot(self, within: float) -> bool:
        self.slot_waits.append(within)
        return self.has_slot

    async def deliver(
        self, text: str, message_id: str = "m1", *, process_id: str = "worker-a", dequeue_count: int = 1
    ) -> Handled:
        """What the trigger does with one message; a delivery the trigger logs at DEBUG must have logged itself."""
        logged = _Events()
        source = logging.getLogger("shared.jobs")
        level = source.level
        source.addHandler(logged)
        source.setLevel(min(logging.INFO, source.getEffectiveLevel()))
        try:
            handled = await self.processor(process_id).handle(Delivery(message_id, text, dequeue_count))
        finally:
            source.setLevel(level)
            source.removeHandler(logged)
        assert handled not in SELF_LOGGED or logged.events, f"{handled} left no INFO record of its own"
        return handled

    async def deliver_copy(self, message_id: str, *, index: int = -1) -> Handled:
        """Deliver a requeued copy once its delay has passed."""
        copy = self.queues.requeued[index]
        self.clock.advance(timedelta(seconds=copy.delay_seconds))
        return await self.deliver(copy.text, message_id)

    def dead_letters(self) -> DeadLetters:
        """The poison handler over the same store and queues."""
        return DeadLetters(self.store, self.queues, self.clock)

    def row(self, job_id: str) -> JobRecord:
        """The job's row (it must exist)."""
        record = self.store.peek(job_id)
        assert record is not None, f"no row for {job_id}"
        return record

    def states(self) -> dict[str, JobState]:
        """Every row's state."""
        return {job_id: self.row(job_id).state for job_id in self.store.job_ids}


@pytest.fixture
def pipeline() -> Pipeline:
    """A fresh pipeline with the default policy."""
    return Pipeline()
