"""A hostile or broken BC answer: an `@odata.nextLink` to anywhere but the configured BC host is never followed
(the bearer token would go with it), whatever its disguise, and the job that got it fails once, never retried."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcjobs import JobState
from shared.bc import BusinessCentralError, UnsafeNextLinkError
from shared.bc.models import EntitySet
from shared.jobs import Delivery, JobProcessor
from shared.jobs.policy import JobPolicy
from shared.jobs.runner import JobRunner
from shared.settings import JobSettings
from testkit.clock import ManualClock
from testkit.lanes import one_lane
from tests.fakes.jobs import MemoryAuditLog, MemoryJobQueues, MemoryJobStore
from tests.unit.bc.fakes import COMPANY, json_response, make_client

DEFAULT_POLICY = JobPolicy.from_settings(JobSettings())

DISGUISES = [
    "https://evil.test/v2.0/steal?$skiptoken=1",
    "http://bc.test/v2.0/x",  # plain HTTP to the right host
    "https://bc.test:8443/v2.0/x",
    "https://bc.test.evil.test/v2.0/x",
    "https://bc.test@evil.test/v2.0/x",
    "https://bc.test:443@evil.test/x",
    "//evil.test/v2.0/x",  # scheme-relative
    "https://evil.test#@bc.test/x",
    "https://b\u0441.test/x",  # a Cyrillic letter es for the c
    "https://127.0.0.1/x",
    "https://[::1]/x",
    "ftp://bc.test/x",
    "file:///etc/passwd",
    "https://evil.test/" + "a" * 5000,
]
hosts = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){1,2}", fullmatch=True).filter(
    lambda h: h != "bc.test"
)
links = st.one_of(
    st.sampled_from(DISGUISES),
    st.builds(lambda host, path: f"https://{host}/{path}", hosts, st.text(max_size=30)),
    st.builds(lambda port: f"https://bc.test:{port}/x", st.integers(1, 65535).filter(lambda p: p != 443)),
    st.builds(lambda host: f"https://{host}:443/x", hosts),
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(links)
def test_a_next_link_off_the_bc_host_is_never_followed(link: str) -> None:
    """Only bc.test is ever asked; the list ends in UnsafeNextLinkError (a BC error the job layer decides on)."""

    def bc(request: httpx.Request) -> httpx.Response:
        return json_response(200, {"value": [{"id": str(COMPANY)}], "@odata.nextLink": link})

    harness = make_client(bc)

    async def listing() -> BaseException | None:
        try:
            await harness.client.list(EntitySet("customers"))
        except BusinessCentralError as error:
            return error
        return None

    outcome = asyncio.run(listing())
    assert isinstance(outcome, UnsafeNextLinkError), outcome
    assert {(request.url.scheme, request.url.host, request.url.port) for request in harness.requests} == {
        ("https", "bc.test", None)
    }


def test_a_list_job_given_a_foreign_next_link_fails_once_and_is_not_retried() -> None:
    """The job layer's side: failed on the first attempt with the reason; no retry copy; one report."""

    def bc(request: httpx.Request) -> httpx.Response:
        return json_response(200, {"value": [], "@odata.nextLink": "https://evil.test/x?$skiptoken=1"})

    harness = make_client(bc)
    store, queues = MemoryJobStore(), MemoryJobQueues()
    processor = JobProcessor(
        store=store,
        audit=MemoryAuditLog(),
        queues=queues,
        lanes=one_lane(JobRunner(harness.client), harness.tokens),
        policy=DEFAULT_POLICY,
        clock=ManualClock(),
        request_timeout=DEFAULT_POLICY.claim_lease / 20,
    )
    job = {"jobId": "foreign-1", "operation": "list", "entitySet": "customers"}
    text = base64.b64encode(json.dumps(job).encode()).decode()
    asyncio.run(processor.handle(Delivery("m-1", text)))
    row = store.peek("foreign-1")
    assert row is not None
    assert (row.state, row.attempts) == (JobState.FAILED, 1)
    assert row.error is not None
    assert "nextLink" in row.error.message
    assert queues.requeued == []
    assert [report.job_id for report in queues.published] == ["foreign-1"]
    assert {request.url.host for request in harness.requests} == {"bc.test"}
