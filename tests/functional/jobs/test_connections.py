"""Jobs name their connection: each runs on its own connection's lane, and a connection that cannot serve a job
ends it `rejected` with the reason, never on another connection's token."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bcjobs import JobState
from shared.auth import ReauthorizationRequiredError
from shared.connections import Connection, ConnectionRegistry, MemoryRegistryStore
from shared.connections.registry import STALENESS_SECONDS
from shared.jobs import Delivery, Handled, JobProcessor
from shared.jobs.lanes import Lane
from testkit.lanes import TEST_CONNECTION
from tests.functional.jobs.conftest import REQUEST_TIMEOUT, Pipeline
from tests.functional.jobs.fakes import FakeTokens, ScriptedRunner, wire

CONTOSO = Connection(
    name="contoso",
    tenant_id="22222222-2222-2222-2222-222222222222",
    environment="production",
    client_id="33333333-3333-3333-3333-333333333333",
    custom_apis=("contoso/app/v1.0",),
)


def job(job_id: str, **changes: Any) -> str:
    body = {"jobId": job_id, "operation": "list", "entitySet": "customers", **changes}
    return wire(body)


@dataclass
class RegistryLanes:
    """Lanes over a real ConnectionRegistry, each connection with its own runner and tokens."""

    registry: ConnectionRegistry
    runners: dict[str, ScriptedRunner] = field(default_factory=dict)
    tokens: dict[str, FakeTokens] = field(default_factory=dict)

    @property
    def default(self) -> str:
        return self.registry.default.name

    async def lane(self, connection: str | None) -> Lane:
        found = await self.registry.resolve(connection)
        return Lane(found, self.runners[found.name], self.tokens[found.name])


@dataclass
class World:
    pipeline: Pipeline
    store: MemoryRegistryStore
    lanes: RegistryLanes

    def processor(self) -> JobProcessor:
        p = self.pipeline
        return JobProcessor(
            store=p.store,
            audit=p.audit,
            queues=p.queues,
            lanes=self.lanes,
            policy=p.policy,
            clock=p.clock,
            request_timeout=REQUEST_TIMEOUT,
        )

    async def deliver(self, text: str, message_id: str) -> Handled:
        return await self.processor().handle(Delivery(message_id, text))


def world() -> World:
    pipeline = Pipeline()
    store = MemoryRegistryStore(CONTOSO)
    registry = ConnectionRegistry(TEST_CONNECTION, store, pipeline.clock)
    lanes = RegistryLanes(registry)
    for name in ("default", "contoso"):
        lanes.runners[name] = ScriptedRunner()
        lanes.tokens[name] = FakeTokens(pipeline.clock)
    return World(pipeline, store, lanes)


async def test_each_job_runs_on_its_own_connections_lane() -> None:
    w = world()
    assert await w.deliver(job("j-default"), "m1") is Handled.SUCCEEDED
    assert await w.deliver(job("j-contoso", connection="contoso"), "m2") is Handled.SUCCEEDED
    assert [c.job.job_id for c in w.lanes.runners["default"].calls] == ["j-default"]
    assert [c.job.job_id for c in w.lanes.runners["contoso"].calls] == ["j-contoso"]
    assert len(w.lanes.tokens["contoso"].asked) == 1
    assert (w.pipeline.row("j-default").connection, w.pipeline.row("j-contoso").connection) == (
        "default",
        "contoso",
    )
    reports = {report.job_id: report.connection for report in w.pipeline.queues.published}
    assert reports == {"j-default": "default", "j-contoso": "contoso"}


async def test_a_job_naming_an_unknown_connection_is_rejected_with_the_next_step() -> None:
    w = world()
    assert await w.deliver(job("j-1", connection="fabrikam"), "m1") is Handled.REJECTED
    row = w.pipeline.row("j-1")
    assert (row.state, row.connection, row.attempts) == (JobState.REJECTED, "fabrikam", 0)
    assert row.error is not None
    assert row.error.code == "connection_unusable"
    assert "connection 'fabrikam' does not exist; register it" in row.error.message
    assert all(not runner.calls for runner in w.lanes.runners.values())
    assert [r.state for r in w.pipeline.queues.published] == [JobState.REJECTED]


async def test_a_parked_job_of_a_connection_disabled_meanwhile_ends_rejected_with_the_reason() -> None:
    """Disabled, not deleted: the job waiting for its admin ends in a recorded state when it comes up again."""
    w = world()
    w.lanes.tokens["contoso"].fail_with(ReauthorizationRequiredError("sign in", error_code="invalid_grant"))
    assert await w.deliver(job("j-1", connection="contoso"), "m1") is Handled.WAITING_FOR_AUTHORIZATION
    w.store.rows["contoso"] = CONTOSO.model_copy(update={"enabled": False, "disabled_reason": "offboarded"})
    w.pipeline.clock.advance(timedelta(seconds=STALENESS_SECONDS))
    copy = w.pipeline.queues.requeued[-1]
    w.pipeline.clock.advance(timedelta(seconds=copy.delay_seconds))
    assert await w.deliver(copy.text, "m2") is Handled.REJECTED
    row = w.pipeline.row("j-1")
    assert row.state is JobState.REJECTED
    assert row.error is not None
    assert "connection 'contoso' is disabled (offboarded)" in row.error.message
    assert not w.lanes.runners["contoso"].calls


async def test_a_custom_api_the_connection_may_not_call_is_rejected() -> None:
    w = world()
    other_api = {"publisher": "fabrikam", "group": "app", "version": "v1.0"}
    assert await w.deliver(job("j-1", connection="contoso", api=other_api), "m1") is Handled.REJECTED
    row = w.pipeline.row("j-1")
    assert row.error is not None
    assert "may not call the custom API fabrikam/app/v1.0" in row.error.message
    allowed = {"publisher": "contoso", "group": "app", "version": "v1.0"}
    assert await w.deliver(job("j-2", connection="contoso", api=allowed), "m2") is Handled.SUCCEEDED
