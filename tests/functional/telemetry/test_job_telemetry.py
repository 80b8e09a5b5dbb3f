"""One job through the processor, the real BC client and the shared throttle, exported to in-memory OpenTelemetry:
the metrics with their attributes, the log record with the job's dimensions, and no token anywhere."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from bcjobs import JobState
from shared import telemetry
from shared.bc import RetryPolicy, SharedThrottle
from shared.bc.client import BusinessCentralClient
from shared.bc.factory import throttle_config_from_settings
from shared.bc.models import BcEndpoint
from shared.bc.sender import RequestSender
from shared.connections import Connection
from shared.jobs import DeadLetters, Delivery, Handled, JobProcessor
from shared.jobs.audit import JobRecorder
from shared.jobs.policy import JobPolicy
from shared.jobs.runner import JobRunner
from shared.settings import JobSettings, load_settings
from shared.tokens import DEFAULT_MIN_VALIDITY, AccessToken
from testkit.clock import VirtualClock
from testkit.lanes import TEST_CONNECTION, one_lane
from tests.fakes.coordination import MemoryCoordinationStore
from tests.fakes.jobs import MemoryAuditLog, MemoryJobQueues, MemoryJobStore
from tests.fakes.telemetry import capture
from tests.functional.jobs.fakes import wire
from tests.unit.bc.fakes import BASE, COMPANY, TENANT, bc_error, json_response

DEFAULT_POLICY = JobPolicy.from_settings(JobSettings())

# Shaped like a real access token, so the leak check would see it in any exported text.
ACCESS_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FwaS5idXNpbmVzc2NlbnRyYWwifQ.c2ln"
GUID = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
JOB = {
    "jobId": "crm-customer-C-1001",
    "operation": "create",
    "entitySet": "customers",
    "data": {"displayName": "Adatum"},
    "correlationId": "crm-run-77",
}


class JwtTokens:
    """A TokenProvider handing out one JWT-shaped token."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        return AccessToken(ACCESS_TOKEN, self._clock.now() + timedelta(hours=1))

    async def replacement_for(self, rejected: AccessToken) -> AccessToken:
        return await self.token()


class World:
    """A processor over memory stores whose BC client talks to `answers` through a SharedThrottle."""

    def __init__(
        self,
        *answers: httpx.Response,
        policy: RetryPolicy | None = None,
        connection: Connection = TEST_CONNECTION,
    ) -> None:
        self.clock = VirtualClock()
        self.answers = list(answers)
        self.store, self.audit, self.queues = MemoryJobStore(), MemoryAuditLog(), MemoryJobQueues()
        self.throttle = SharedThrottle(
            MemoryCoordinationStore(),
            "app-1",
            throttle_config_from_settings(load_settings({}), heartbeat_seconds=5),
            clock=self.clock,
        )
        tokens = JwtTokens(self.clock)
        sender = RequestSender(
            httpx.AsyncClient(transport=httpx.MockTransport(self._answer)),
            tokens,
            self.throttle,
            policy=policy or RetryPolicy(jitter=0.0),
            recorder=JobRecorder(),
            clock=self.clock,
        )
        client = BusinessCentralClient(sender, BcEndpoint(BASE, "production", TENANT, company_id=COMPANY))
        self.processor = JobProcessor(
            store=self.store,
            audit=self.audit,
            queues=self.queues,
            lanes=one_lane(JobRunner(client), tokens, connection=connection),
            policy=DEFAULT_POLICY,
            clock=self.clock,
            request_timeout=timedelta(seconds=60),
        )

    def _answer(self, request: httpx.Request) -> httpx.Response:
        return self.answers.pop(0)

    async def deliver(self, job: dict[str, Any], message_id: str = "m1") -> Handled:
        """Run one delivery to its end in virtual time."""
        run = asyncio.create_task(self.processor.handle(Delivery(message_id, wire(job))))
        while not run.done():
            await self.clock.advance(1)
        await self.throttle.close()
        return run.result()


def created() -> httpx.Response:
    return json_response(201, {"id": GUID, "number": "C-1001", "@odata.etag": 'W/"1"'})


def throttled() -> httpx.Response:
    return bc_error(429, "Application_TooManyRequests", "slow down", {"Retry-After": "2"})


async def test_one_job_produces_the_listed_metrics_with_their_attributes() -> None:
    """BC throttles once, then creates: requests by status, the 429, latencies, throttle waits, the job's end."""
    world = World(throttled(), created())
    with capture(world.clock) as captured:
        assert await world.deliver(JOB) is Handled.SUCCEEDED
        assert captured.total("bc.requests", method="POST", status="429") == 1
        assert captured.total("bc.requests", method="POST", status="201", bc_code="none") == 1
        assert [
            p.attributes["bc_code"] for p in captured.points("bc.requests") if p.attributes["status"] == "429"
        ] == ["Application_TooManyRequests"]
        assert captured.total("bc.requests.throttled", method="POST") == 1
        assert sorted(p.count for p in captured.points("bc.request.duration")) == [1, 1]
        (wait,) = captured.points("bc.throttle.wait")
        assert wait.count == 2  # one permit per request sent
        assert captured.total("bc.jobs.finished", state="succeeded", operation="create") == 1
        (duration,) = captured.points("bc.job.duration")
        assert (duration.attributes, duration.count) == (
            {"state": "succeeded", "operation": "create", "connection": "default"},
            1,
        )
        assert captured.points("bc.jobs.retries") == []


async def test_a_request_held_back_by_the_throttle_records_how_long() -> None:
    """Another instance's Retry-After pause (shared through the row) is waited out and measured."""
    clock = VirtualClock()
    throttle = SharedThrottle(
        MemoryCoordinationStore(),
        "app-1",
        throttle_config_from_settings(load_settings({}), heartbeat_seconds=5),
        clock=clock,
    )

    async def request() -> None:
        async with throttle.permit():
            pass

    with capture(clock) as captured:
        await throttle.pause(3.0)
        sent = asyncio.create_task(request())
        while not sent.done():
            await clock.advance(0.5)
        await throttle.close()
        (wait,) = captured.points("bc.throttle.wait")
    assert wait.count == 1
    assert 3000 <= wait.value < 4000


async def test_the_jobs_log_records_carry_its_dimensions() -> None:
    """Every record of the run names the job; the finished record adds its state and BC's side."""
    telemetry.set_default_dimensions(connection="default")
    world = World(created())
    with capture(world.clock) as captured:
        await world.deliver(JOB)
        (finished,) = captured.events("jobs.finished")
    assert {key: finished[key] for key in ("job_id", "correlation_id", "attempt", "connection", "state")} == {
        "job_id": "crm-customer-C-1001",
        "correlation_id": "crm-run-77",
        "attempt": "1",
        "connection": "default",
        "state": "succeeded",
    }


async def test_a_jobs_records_and_metrics_name_its_own_connection_not_the_process_default() -> None:
    """A job sent to connection `contoso` is logged and counted under `contoso`, whatever the settings name."""
    telemetry.set_default_dimensions(connection="default")
    contoso = TEST_CONNECTION.model_copy(update={"name": "contoso", "from_settings": False})
    world = World(throttled(), created(), connection=contoso)
    with capture(world.clock) as captured:
        await world.deliver({**JOB, "connection": "contoso"})
        (finished,) = captured.events("jobs.finished")
        assert captured.total("bc.requests", status="201", connection="contoso") == 1
        assert captured.total("bc.requests.throttled", connection="contoso") == 1
        assert captured.total("bc.jobs.finished", state="succeeded", connection="contoso") == 1
        assert {p.attributes["connection"] for p in captured.points("bc.throttle.wait")} == {"contoso"}
    assert finished["connection"] == "contoso"


async def test_a_retry_is_counted_with_its_reason_and_logged_with_bcs_request_ids() -> None:
    """A 503 after the in-call retries: the job goes back on the queue; ops see why and which request."""
    unavailable = bc_error(503, "ServiceUnavailable", "try later", {"x-ms-correlation-x": "bc-corr-1"})
    world = World(unavailable, policy=RetryPolicy(max_tries=1, jitter=0.0))
    with capture(world.clock) as captured:
        assert await world.deliver(JOB) is Handled.RETRY_SCHEDULED
        (retry,) = captured.points("bc.jobs.retries")
        (logged,) = captured.events("jobs.retry_scheduled")
    assert retry.attributes["operation"] == "create"
    assert retry.attributes["reason"] == logged["error_code"]
    assert logged["job_id"] == "crm-customer-C-1001"
    assert logged["client_request_id"]
    assert logged["status"] == 503


async def test_no_token_reaches_any_exported_attribute_or_body() -> None:
    """The BC client sent the bearer token on every request; none of it is exported."""
    world = World(throttled(), created())
    with capture(world.clock) as captured:
        await world.deliver(JOB)
        text = captured.exported_text()
    assert ACCESS_TOKEN not in text
    assert "eyJ0eXAi" not in text


async def test_a_dead_lettered_job_counts_as_finished() -> None:
    """The poison handler's jobs reach the same counter, with their state."""
    clock = VirtualClock()
    store, queues = MemoryJobStore(), MemoryJobQueues()
    dead_letters = DeadLetters(store, telemetry.FinishedReports(queues), clock)
    with capture(clock) as captured:
        state = await dead_letters.record(Delivery("p1", wire(JOB), 1))
        assert state is JobState.DEAD_LETTERED
        assert captured.total("bc.jobs.finished", state="dead_lettered") == 1
    assert len(queues.published) == 1
