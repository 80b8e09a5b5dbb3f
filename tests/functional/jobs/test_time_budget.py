"""A run's time budget: a long batch continues in new deliveries, every item sent to BC once; a run cut off at the
end of its budget ends in a recorded, explained state; continuations never loop forever.

The BC work is the real JobRunner and BC client over an in-memory BC (httpx.MockTransport) whose $batch requests
take time on the test's clock; nothing waits for real time."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import httpx

from bcjobs import ItemOutcome, Job, JobState, ResultSummary
from shared.bc.client import BusinessCentralClient
from shared.bc.models import BcEndpoint
from shared.bc.retry import RetryPolicy
from shared.bc.sender import RequestSender
from shared.jobs import Delivery, Handled, JobProcessor
from shared.jobs.audit import JobRecorder
from shared.jobs.policy import JobPolicy
from shared.jobs.records import JobRecord
from shared.jobs.runner import AnswerTrail, Budget, EarlierRuns, JobRunner
from shared.settings import JobSettings
from shared.tokens import DEFAULT_MIN_VALIDITY, AccessToken
from testkit.clock import ManualClock
from testkit.lanes import one_lane
from tests.fakes.jobs import MemoryAuditLog, MemoryJobQueues, MemoryJobStore
from tests.functional.jobs.conftest import Pipeline
from tests.functional.jobs.fakes import FakeTokens, ScriptedRunner, wire
from tests.unit.bc.fakes import BASE, COMPANY, TENANT, CountingTokens, RecordingThrottle

REQUEST_TIMEOUT = timedelta(
    seconds=60
)  # the budget's reserve: a $batch request starts only with this much left
SECONDS_PER_BATCH = (
    130.0  # each $batch request takes this long on the test's clock: 2 fit in the 300 s budget
)
COUNT = 450  # 5 $batch requests of at most 100


def batch_job(job_id: str, count: int = COUNT, **extra: Any) -> dict[str, Any]:
    operations = [
        {"operation": "create", "entitySet": "items", "data": {"displayName": f"item-{n}"}}
        for n in range(count)
    ]
    return {"jobId": job_id, "operation": "batch", "operations": operations, **extra}


def compact(job: dict[str, Any]) -> str:
    """The queue text of `job` as compact JSON (a large batch must fit in one message)."""
    return base64.b64encode(json.dumps(job, separators=(",", ":")).encode("utf-8")).decode("ascii")


@dataclass
class SlowBc:
    """BC answering $batch creates, each request taking `seconds` of the clock; remembers every name created."""

    clock: ManualClock
    seconds: float = SECONDS_PER_BATCH
    created: list[str] = field(default_factory=list)
    requests: int = 0
    # Request number (1-based) -> the status BC answers it with, without running it ("drop": no answer at all).
    failures: dict[int, int | str] = field(default_factory=dict)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/$batch"), request.url
        self.clock.advance(timedelta(seconds=self.seconds))
        self.requests += 1
        failure = self.failures.get(self.requests)
        if failure == "drop":
            raise httpx.ReadError("connection lost before the answer", request=request)
        if failure is not None:
            return httpx.Response(int(failure), headers={"Retry-After": "0"}, json={"error": {"code": "x"}})
        responses = []
        for entry in json.loads(request.content)["requests"]:
            name = entry["body"]["displayName"]
            self.created.append(name)
            body = {"id": str(uuid.uuid4()), "displayName": name, "@odata.etag": 'W/"1"'}
            responses.append({"id": entry["id"], "status": 201, "headers": {}, "body": body})
        return httpx.Response(200, json={"responses": responses})


class SlowTokens(FakeTokens):
    """A token provider that takes `seconds` of the clock for every token (a slow Entra or Key Vault)."""

    seconds: float = 0.0

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        """The token, after the delay."""
        assert isinstance(self.clock, ManualClock)
        self.clock.advance(timedelta(seconds=self.seconds))
        return await super().token(min_validity)


@dataclass
class World:
    """One processor over in-memory storage and SlowBc, as a worker runs it."""

    clock: ManualClock = field(default_factory=ManualClock)
    store: MemoryJobStore = field(default_factory=MemoryJobStore)
    audit: MemoryAuditLog = field(default_factory=MemoryAuditLog)
    queues: MemoryJobQueues = field(default_factory=MemoryJobQueues)
    policy: JobPolicy = field(default_factory=lambda: JobPolicy.from_settings(JobSettings()))
    bc: SlowBc = field(init=False)
    tokens: SlowTokens = field(init=False)

    def __post_init__(self) -> None:
        self.bc = SlowBc(self.clock)
        self.tokens = SlowTokens(self.clock)

    def processor(self) -> JobProcessor:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.bc))
        sender = RequestSender(
            http,
            CountingTokens(),
            RecordingThrottle(),
            policy=RetryPolicy(jitter=0.0),
            recorder=JobRecorder(),
            clock=self.clock,
        )
        client = BusinessCentralClient(sender, BcEndpoint(BASE, "production", TENANT, company_id=COMPANY))
        return JobProcessor(
            store=self.store,
            audit=self.audit,
            queues=self.queues,
            lanes=one_lane(JobRunner(client), self.tokens),
            policy=self.policy,
            clock=self.clock,
            request_timeout=REQUEST_TIMEOUT,
        )

    async def deliver(self, job: dict[str, Any]) -> list[Handled]:
        """The job's first delivery, then each copy it put back once its delay has passed, until none is left."""
        handled = [await self.processor().handle(Delivery("m0", compact(job)))]
        while len(self.queues.requeued) >= len(handled):
            copy = self.queues.requeued[len(handled) - 1]
            self.clock.advance(timedelta(seconds=copy.delay_seconds))
            handled.append(await self.processor().handle(Delivery(f"m{len(handled)}", copy.text)))
        return handled

    def row(self, job_id: str) -> JobRecord:
        record = self.store.peek(job_id)
        assert record is not None
        return record


async def test_a_batch_longer_than_its_budget_continues_in_new_deliveries_and_sends_each_item_once() -> None:
    """2 $batch requests fit a run: 450 creates take 3 deliveries, one attempt, and BC sees each name once."""
    world = World()
    handled = await world.deliver(batch_job("long-1"))
    assert handled == [Handled.CONTINUED, Handled.CONTINUED, Handled.SUCCEEDED]
    assert sorted(world.bc.created) == sorted(f"item-{n}" for n in range(COUNT))
    row = world.row("long-1")
    assert (row.state, row.attempts, row.runs) == (JobState.SUCCEEDED, 1, 3)
    assert row.result is not None
    assert (row.result.items_succeeded, row.result.items_failed) == (COUNT, 0)
    assert [copy.delay_seconds for copy in world.queues.requeued] == [
        world.policy.continuation_delay_seconds
    ] * 2


async def test_a_continued_batch_row_says_what_is_done_and_what_happens_next() -> None:
    """After the first run: retry_scheduled, 200 items on record, no attempt used, the next step in the error."""
    world = World()
    assert await world.processor().handle(Delivery("m0", compact(batch_job("long-2")))) is Handled.CONTINUED
    row = world.row("long-2")
    assert (row.state, row.attempts, row.ambiguous) == (JobState.RETRY_SCHEDULED, 0, False)
    assert row.error is not None
    assert row.error.code == "time_budget_spent"
    assert row.error.message.startswith("the run's time budget ran out with 200 of 450 operations done")
    assert "continues in a new delivery" in row.error.message
    assert "uses no attempt" in row.error.message
    assert row.result is not None
    assert sorted(item.index for item in row.result.items or []) == list(range(200))
    assert world.queues.published == []


async def test_a_run_that_finishes_nothing_within_its_budget_uses_an_attempt_and_gives_up_at_the_limit() -> (
    None
):
    """Every token takes 250 s: no $batch request fits, so no continuation; attempts run out, the job fails."""
    world = World(policy=replace(JobPolicy.from_settings(JobSettings()), max_attempts=3))
    world.tokens.seconds = 250.0
    handled = await world.deliver(batch_job("stuck-1", count=150))
    assert handled == [Handled.RETRY_SCHEDULED, Handled.RETRY_SCHEDULED, Handled.FAILED]
    assert world.bc.created == []
    row = world.row("stuck-1")
    assert (row.state, row.attempts) == (JobState.FAILED, 3)
    assert row.error is not None
    assert row.error.code == "time_budget_spent"
    assert row.error.message.startswith(
        "gave up after 3 attempts: the run's time budget ran out with 0 of 150"
    )


async def test_a_continuation_is_never_scheduled_past_the_job_deadline() -> None:
    """With a deadline 6 minutes out, the second run's continuation would start too late: expired, items kept."""
    world = World()
    deadline = (world.clock.now() + timedelta(minutes=6)).isoformat()
    handled = await world.deliver(batch_job("late-1", deadline=deadline))
    assert handled == [Handled.CONTINUED, Handled.EXPIRED]
    row = world.row("late-1")
    assert row.state is JobState.EXPIRED
    assert row.error is not None
    assert row.error.message.startswith(f"the job's deadline {row.deadline.isoformat()} passed")
    assert "time budget ran out with 400 of 450" in row.error.message
    assert len(world.bc.created) == 400


class HangsAfter(ScriptedRunner):
    """A runner whose BC never answers after `done` items of a batch were finished (a run past its budget)."""

    def __init__(self, done: int = 0) -> None:
        super().__init__()
        self.done = done

    async def run(self, job: Job, earlier: EarlierRuns, budget: Budget, trail: AnswerTrail) -> ResultSummary:
        """Finish `done` items, then wait for an answer that never comes."""
        budget.items.update({n: ItemOutcome(index=n, status=201) for n in range(self.done)})
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def cut_off_pipeline(runner: ScriptedRunner) -> Pipeline:
    """A pipeline whose runs are cut off as soon as they wait for BC: their budget is zero."""
    return Pipeline(
        runner=runner, policy=replace(JobPolicy.from_settings(JobSettings()), time_budget=timedelta(0))
    )


def hanging() -> ScriptedRunner:
    """A scripted runner whose runs wait for BC until the test lets them finish (`hold.set()`)."""
    runner = ScriptedRunner()
    runner.hold = asyncio.Event()
    return runner


async def test_a_read_cut_off_by_its_budget_is_retried_like_a_bc_timeout() -> None:
    """A get whose answer does not come within the budget: retry_scheduled, one attempt, the budget named."""
    pipeline = cut_off_pipeline(hanging())
    job = {"jobId": "read-1", "operation": "get", "entitySet": "items", "id": str(COMPANY)}
    assert await pipeline.deliver(wire(job)) is Handled.RETRY_SCHEDULED
    row = pipeline.row("read-1")
    assert (row.state, row.attempts, row.ambiguous) == (JobState.RETRY_SCHEDULED, 1, False)
    assert row.error is not None
    assert (row.error.code, row.error.retriable) == ("time_budget_spent", True)
    assert row.error.message == "the run's time budget of 0 s ran out before BC answered"


async def test_a_keyed_create_cut_off_by_its_budget_is_reconciled_by_the_next_run() -> None:
    """The write may have landed: the row is ambiguous, and the next run is told to look its natural key up."""
    pipeline = cut_off_pipeline(hanging())
    job = {
        "jobId": "keyed-1",
        "operation": "create",
        "entitySet": "customers",
        "naturalKey": {"number": "C1"},
        "data": {"displayName": "C1"},
    }
    assert await pipeline.deliver(wire(job)) is Handled.RETRY_SCHEDULED
    row = pipeline.row("keyed-1")
    assert (row.ambiguous, row.attempts) == (True, 1)
    pipeline.policy = JobPolicy.from_settings(JobSettings())
    assert pipeline.runner.hold is not None
    pipeline.runner.hold.set()
    pipeline.runner.script(ResultSummary(id="c1", reconciled=True))
    assert await pipeline.deliver_copy("m2") is Handled.SUCCEEDED
    assert [call.earlier.ambiguous for call in pipeline.runner.calls] == [False, True]


async def test_a_batch_cut_off_mid_request_fails_as_an_ambiguous_write_with_the_items_done_before() -> None:
    """A $batch whose answer the budget cut off may have applied: failed ambiguous_write, earlier items kept."""
    pipeline = cut_off_pipeline(HangsAfter(done=100))
    assert await pipeline.deliver(wire(batch_job("cut-1", count=250))) is Handled.FAILED
    row = pipeline.row("cut-1")
    assert row.error is not None
    assert row.error.code == "ambiguous_write"
    assert "(time_budget_spent)" in row.error.message
    assert row.result is not None
    assert row.result.count == 250
    assert [item.index for item in row.result.items or []] == list(range(100))


async def test_a_batch_whose_later_request_is_refused_keeps_the_items_before_and_retries_only_the_rest() -> (
    None
):
    """503s on the second $batch request beyond the client's own tries (BC ran none of it): retry, and the next
    run sends only what is left."""
    world = World()
    world.bc.seconds = 1.0
    world.bc.failures = {2: 503, 3: 503, 4: 503}
    handled = await world.deliver(batch_job("refused-1", count=250))
    assert handled == [Handled.RETRY_SCHEDULED, Handled.SUCCEEDED]
    assert sorted(world.bc.created) == sorted(f"item-{n}" for n in range(250))
    assert (world.row("refused-1").state, world.row("refused-1").attempts) == (JobState.SUCCEEDED, 2)


async def test_a_batch_whose_later_request_lost_its_answer_fails_ambiguous_with_the_items_before() -> None:
    """No answer to the second $batch request (it may have applied): failed ambiguous_write, first 100 kept."""
    world = World()
    world.bc.seconds = 1.0
    world.bc.failures = {2: "drop"}
    assert await world.deliver(batch_job("lost-1", count=250)) == [Handled.FAILED]
    row = world.row("lost-1")
    assert row.error is not None
    assert row.error.code == "ambiguous_write"
    assert row.result is not None
    assert [item.index for item in row.result.items or []] == list(range(100))
