"""A connection with several identities: a job runs on the identity its pool chooses and keeps it for the run; one
refused on its identity moves to another without using an attempt; with every identity out it parks as before."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from bcjobs import JobState
from shared.auth import ConnectionStatus, CredentialsRejectedError, Health
from shared.bc import AuthenticationError
from shared.jobs import Delivery, Handled, JobProcessor
from shared.jobs.lanes import Lane
from shared.jobs.pool import IdentityPool, PoolMember
from shared.tokens import AuthMode
from testkit.lanes import TEST_CONNECTION
from tests.functional.jobs.conftest import REQUEST_TIMEOUT, Pipeline
from tests.functional.jobs.fakes import FakeTokens, ScriptedRunner, wire

NAMES = ("primary", "second")


class IdleHeadroom:
    """Every identity equally free: the pool takes turns."""

    def spare(self) -> tuple[int, float]:
        return 5, 0.0


async def healthy() -> ConnectionStatus:
    return ConnectionStatus(
        "default", AuthMode.CLIENT_CREDENTIALS, Health.OK, True, None, None, None, 1, None, None, None, None,
        None, None,
    )  # fmt: skip


@dataclass
class PoolLanes:
    """Lanes of one connection with two identities, each with its own runner and tokens."""

    pipeline: Pipeline
    runners: dict[str, ScriptedRunner] = field(default_factory=dict)
    tokens: dict[str, FakeTokens] = field(default_factory=dict)
    pool: IdentityPool = field(init=False)

    def __post_init__(self) -> None:
        members = []
        for name in NAMES:
            self.runners[name] = ScriptedRunner()
            self.tokens[name] = FakeTokens(self.pipeline.clock)
            lane = Lane(TEST_CONNECTION, self.runners[name], self.tokens[name], identity=name)
            members.append(PoolMember(lane, IdleHeadroom(), healthy))
        self.pool = IdentityPool(members, self.pipeline.clock)

    @property
    def default(self) -> str:
        return TEST_CONNECTION.name

    async def lane(self, connection: str | None) -> Lane:
        del connection
        return await self.pool.choose()

    async def deliver(self, text: str, message_id: str) -> Handled:
        p = self.pipeline
        processor = JobProcessor(
            store=p.store,
            audit=p.audit,
            queues=p.queues,
            lanes=self,
            policy=p.policy,
            clock=p.clock,
            request_timeout=REQUEST_TIMEOUT,
        )
        return await processor.handle(Delivery(message_id, text))

    async def deliver_copy(self, message_id: str) -> Handled:
        """Deliver the last requeued copy once its delay has passed."""
        copy = self.pipeline.queues.requeued[-1]
        self.pipeline.clock.advance(timedelta(seconds=copy.delay_seconds))
        return await self.deliver(copy.text, message_id)


def job(job_id: str) -> str:
    return wire({"jobId": job_id, "operation": "list", "entitySet": "customers"})


async def test_jobs_take_turns_over_the_identities() -> None:
    lanes = PoolLanes(Pipeline())
    for n in range(4):
        assert await lanes.deliver(job(f"j-{n}"), f"m{n}") is Handled.SUCCEEDED
    assert [c.job.job_id for c in lanes.runners["primary"].calls] == ["j-0", "j-2"]
    assert [c.job.job_id for c in lanes.runners["second"].calls] == ["j-1", "j-3"]
    assert [lanes.pipeline.row(f"j-{n}").identity for n in range(4)] == ["primary", "second"] * 2


async def test_a_job_refused_on_its_identity_moves_to_another_without_an_attempt() -> None:
    pipeline = Pipeline()
    lanes = PoolLanes(pipeline)
    lanes.tokens["primary"].fail_with(CredentialsRejectedError("secret expired", error_code="AADSTS7000222"))
    assert await lanes.deliver(job("j-1"), "m1") is Handled.RETRY_SCHEDULED
    row = pipeline.row("j-1")
    assert (row.state, row.attempts) == (JobState.RETRY_SCHEDULED, 0)
    assert row.error is not None
    assert "identity 'primary' was refused" in row.error.message
    assert lanes.pool.is_out("primary")
    assert await lanes.deliver_copy("m2") is Handled.SUCCEEDED
    assert [c.job.job_id for c in lanes.runners["second"].calls] == ["j-1"]
    assert lanes.runners["primary"].calls == []
    finished = pipeline.row("j-1")
    assert (finished.state, finished.attempts, finished.identity) == (JobState.SUCCEEDED, 1, "second")


async def test_bc_refusing_an_identitys_fresh_token_moves_the_job_too() -> None:
    pipeline = Pipeline()
    lanes = PoolLanes(pipeline)
    lanes.runners["primary"].script(AuthenticationError("401 after a fresh token", status=401))
    assert await lanes.deliver(job("j-1"), "m1") is Handled.RETRY_SCHEDULED
    assert await lanes.deliver_copy("m2") is Handled.SUCCEEDED
    assert [c.job.job_id for c in lanes.runners["second"].calls] == ["j-1"]


async def test_with_every_identity_refused_the_job_parks() -> None:
    pipeline = Pipeline()
    lanes = PoolLanes(pipeline)
    for name in NAMES:
        lanes.tokens[name].fail_with(CredentialsRejectedError("consent revoked", error_code="AADSTS65001"))
    assert await lanes.deliver(job("j-1"), "m1") is Handled.RETRY_SCHEDULED
    assert await lanes.deliver_copy("m2") is Handled.WAITING_FOR_AUTHORIZATION
    assert pipeline.row("j-1").state is JobState.WAITING_FOR_AUTHORIZATION
