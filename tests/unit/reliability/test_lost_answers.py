"""Found by the soak: a DELETE whose answer was lost after BC ran it (408, or the connection dropped after the
commit) is repeated in-call by the BC client (DELETE is idempotent), and the repeat answers 404. The job must
report the delete done (its own first request did it), not `failed` with bc_not_found."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Mapping
from datetime import timedelta

import httpx
import pytest

from bcjobs import JobState
from shared.bc.client import BusinessCentralClient
from shared.bc.models import BcEndpoint
from shared.bc.retry import RetryPolicy
from shared.bc.sender import RequestSender
from shared.jobs import Delivery, JobProcessor
from shared.jobs.audit import JobRecorder
from shared.jobs.policy import JobPolicy
from shared.jobs.runner import JobRunner
from shared.settings import JobSettings
from shared.tokens import AccessToken, TokenProviderError
from testkit.clock import ManualClock
from testkit.lanes import one_lane
from tests.fakes.jobs import MemoryAuditLog, MemoryJobQueues, MemoryJobStore
from tests.unit.bc.fakes import (
    BASE,
    COMPANY,
    TENANT,
    CountingTokens,
    RecordingThrottle,
    bc_error,
    json_response,
)

DEFAULT_POLICY = JobPolicy.from_settings(JobSettings())

VENDOR = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"


def lost_after_running(how: str) -> Callable[[httpx.Request], httpx.Response]:
    """BC that has the vendor, deletes it on the first DELETE but loses that answer; later DELETEs find nothing."""
    deleted = False

    def bc(request: httpx.Request) -> httpx.Response:
        nonlocal deleted
        if request.method == "GET":
            if deleted:
                return bc_error(404, "Internal_RecordNotFound", "The Vendor does not exist.")
            return json_response(200, {"id": VENDOR, "@odata.etag": 'W/"1"'})
        if deleted:
            return bc_error(404, "Internal_RecordNotFound", "The Vendor does not exist.")
        deleted = True
        if how == "408":
            return bc_error(408, "RequestTimeout", "The operation exceeded the time limit.")
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    return bc


def client(
    handler: Callable[[httpx.Request], httpx.Response], tokens: CountingTokens | None = None
) -> BusinessCentralClient:
    """The real client as the app builds it: its interactions go to the running job's audit (JobRecorder)."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    sender = RequestSender(
        http,
        tokens or CountingTokens(),
        RecordingThrottle(),
        policy=RetryPolicy(jitter=0.0),
        recorder=JobRecorder(),
        clock=ManualClock(),
    )
    return BusinessCentralClient(sender, BcEndpoint(BASE, "production", TENANT, company_id=COMPANY))


async def run_delete(
    handler: Callable[[httpx.Request], httpx.Response], job: Mapping[str, object]
) -> MemoryJobStore:
    store = MemoryJobStore()
    processor = JobProcessor(
        store=store,
        audit=MemoryAuditLog(),
        queues=MemoryJobQueues(),
        lanes=one_lane(JobRunner(client(handler)), CountingTokens()),
        policy=DEFAULT_POLICY,
        clock=ManualClock(),
        request_timeout=DEFAULT_POLICY.claim_lease / 20,
    )
    await processor.handle(Delivery("m-1", base64.b64encode(json.dumps(job).encode()).decode()))
    return store


@pytest.mark.parametrize("how", ["408", "dropped"])
@pytest.mark.parametrize("etag", [None, 'W/"1"'])
def test_a_delete_whose_lost_answer_was_retried_into_a_404_is_done(how: str, etag: str | None) -> None:
    """With or without the job's own ETag: succeeded (reconciled), one attempt."""
    job: dict[str, object] = {"jobId": "del-1", "operation": "delete", "entitySet": "vendors", "id": VENDOR}
    if etag:
        job["etag"] = etag
    store = asyncio.run(run_delete(lost_after_running(how), job))
    row = store.peek("del-1")
    assert row is not None
    assert (row.state, row.attempts) == (JobState.SUCCEEDED, 1), row.error
    assert row.result is not None
    assert row.result.reconciled


def test_a_delete_of_a_record_that_is_not_there_still_fails_with_not_found() -> None:
    """Nothing lost on the way: BC's 404 is the job's answer."""

    def bc(request: httpx.Request) -> httpx.Response:
        return bc_error(404, "Internal_RecordNotFound", "The Vendor does not exist.")

    job = {"jobId": "del-2", "operation": "delete", "entitySet": "vendors", "id": VENDOR, "etag": 'W/"1"'}
    store = asyncio.run(run_delete(bc, job))
    row = store.peek("del-2")
    assert row is not None
    assert row.state is JobState.FAILED
    assert row.error is not None
    assert row.error.code == "bc_not_found"


def test_a_delete_that_never_reached_bc_and_then_found_nothing_fails_with_not_found() -> None:
    """A connection that never opened is no lost answer: the 404 of the repeat is BC's answer to the job."""
    tries = 0

    def bc(request: httpx.Request) -> httpx.Response:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return bc_error(404, "Internal_RecordNotFound", "The Vendor does not exist.")

    job = {"jobId": "del-3", "operation": "delete", "entitySet": "vendors", "id": VENDOR, "etag": 'W/"1"'}
    store = asyncio.run(run_delete(bc, job))
    row = store.peek("del-3")
    assert row is not None
    assert row.state is JobState.FAILED
    assert tries == 2


def customer_bc() -> Callable[[httpx.Request], httpx.Response]:
    """BC with one customer whose first PATCH is applied, then answered 408; ETags change with every write."""
    record: dict[str, object] = {"id": VENDOR, "displayName": "Old"}
    version = 1
    patches = 0

    def etag() -> str:
        return f'W/"{version}"'

    def bc(request: httpx.Request) -> httpx.Response:
        nonlocal patches, version
        if request.method == "GET":
            return json_response(200, {**record, "@odata.etag": etag()})
        if request.headers.get("if-match") not in ("*", etag()):
            return bc_error(412, "Internal_EntityChanged", "Another user has already changed the record.")
        record.update(json.loads(request.content))
        version += 1
        patches += 1
        if patches == 1:
            return bc_error(408, "RequestTimeout", "The operation exceeded the time limit.")
        return json_response(200, {**record, "@odata.etag": etag()})

    return bc


@pytest.mark.parametrize("etag", [None, 'W/"1"'])
def test_an_update_whose_answer_was_lost_is_retried_and_reconciled_not_failed(etag: str | None) -> None:
    """Found by the soak (14 of 5,000 jobs): the README promises that an update whose answer was lost compares
    the fields on its next run; it was failed `ambiguous_write` at once instead. Now: retried, and the rerun finds
    the fields in place (with the job's ETag: after BC's 412) and succeeds."""
    job: dict[str, object] = {
        "jobId": "upd-1",
        "operation": "update",
        "entitySet": "customers",
        "id": VENDOR,
        "data": {"displayName": "New"},
    }
    if etag:
        job["etag"] = etag

    async def twice() -> MemoryJobStore:
        store, queues, clock = MemoryJobStore(), MemoryJobQueues(), ManualClock()
        processor = JobProcessor(
            store=store,
            audit=MemoryAuditLog(),
            queues=queues,
            lanes=one_lane(JobRunner(client(customer_bc())), CountingTokens()),
            policy=DEFAULT_POLICY,
            clock=clock,
            request_timeout=DEFAULT_POLICY.claim_lease / 20,
        )
        await processor.handle(Delivery("m-1", base64.b64encode(json.dumps(job).encode()).decode()))
        assert len(queues.requeued) == 1, store.peek("upd-1")
        copy = queues.requeued[0]
        clock.advance(timedelta(seconds=copy.delay_seconds))
        await processor.handle(Delivery("m-2", copy.text))
        return store

    row = asyncio.run(twice()).peek("upd-1")
    assert row is not None
    assert (row.state, row.attempts) == (JobState.SUCCEEDED, 2), row.error


def test_a_delete_retried_in_call_after_a_lost_answer_and_then_throttled_is_reconciled_on_its_next_run() -> (
    None
):
    """Found by the 60-second soak: the first DELETE ran but its answer was lost (408), the client's in-call repeat
    was refused with a long Retry-After (429, nothing ran), so the run ended as a plain retry. The next run must
    still know that a DELETE may have landed: its 404 is the job done, not `failed` bc_not_found."""
    deleted = False
    deletes = 0

    def bc(request: httpx.Request) -> httpx.Response:
        nonlocal deleted, deletes
        if request.method == "GET":
            if deleted:
                return bc_error(404, "Internal_RecordNotFound", "The Vendor does not exist.")
            return json_response(200, {"id": VENDOR, "@odata.etag": 'W/"1"'})
        deletes += 1
        if deletes == 1:
            deleted = True
            return bc_error(408, "RequestTimeout", "The operation exceeded the time limit.")
        if deletes == 2:
            return bc_error(429, "Application_TooManyRequests", "Too many requests.", {"Retry-After": "10"})
        return bc_error(404, "Internal_RecordNotFound", "The Vendor does not exist.")

    job = {"jobId": "del-4", "operation": "delete", "entitySet": "vendors", "id": VENDOR}

    async def twice() -> MemoryJobStore:
        store, queues, clock = MemoryJobStore(), MemoryJobQueues(), ManualClock()
        processor = JobProcessor(
            store=store,
            audit=MemoryAuditLog(),
            queues=queues,
            lanes=one_lane(JobRunner(client(bc)), CountingTokens()),
            policy=DEFAULT_POLICY,
            clock=clock,
            request_timeout=DEFAULT_POLICY.claim_lease / 20,
        )
        await processor.handle(Delivery("m-1", base64.b64encode(json.dumps(job).encode()).decode()))
        assert len(queues.requeued) == 1, store.peek("del-4")
        copy = queues.requeued[0]
        clock.advance(timedelta(seconds=copy.delay_seconds))
        await processor.handle(Delivery("m-2", copy.text))
        return store

    row = asyncio.run(twice()).peek("del-4")
    assert row is not None
    assert (row.state, row.attempts) == (JobState.SUCCEEDED, 2), row.error
    assert row.result is not None
    assert row.result.reconciled


class TokensFailingOnce(CountingTokens):
    """Hands out tokens; the first refresh after BC's 401 fails as a transient provider error."""

    async def replacement_for(self, rejected: AccessToken) -> AccessToken:
        if self.replacement_calls == 0:
            self.replacement_calls += 1
            raise _StoreDownError("Key Vault unavailable")
        return await super().replacement_for(rejected)


class _StoreDownError(TokenProviderError):
    transient = True


def test_a_write_refused_with_401_whose_token_refresh_failed_is_not_ambiguous() -> None:
    """Found by the full soak after the fix above: BC's 401 and the failed refresh that followed are recorded as
    interactions too (the second without a status); neither means BC ran the write. The next run creates the record
    once instead of failing `ambiguous_write`."""
    posts = 0

    def bc(request: httpx.Request) -> httpx.Response:
        nonlocal posts
        posts += 1
        if posts == 1:
            return bc_error(401, "Authentication_InvalidCredentials", "The token is expired.")
        return json_response(201, {"id": VENDOR, "displayName": "Once", "@odata.etag": 'W/"1"'})

    job = {"jobId": "c-1", "operation": "create", "entitySet": "customers", "data": {"displayName": "Once"}}

    async def twice() -> MemoryJobStore:
        store, queues, clock = MemoryJobStore(), MemoryJobQueues(), ManualClock()
        tokens = TokensFailingOnce()
        processor = JobProcessor(
            store=store,
            audit=MemoryAuditLog(),
            queues=queues,
            lanes=one_lane(JobRunner(client(bc, tokens)), tokens),
            policy=DEFAULT_POLICY,
            clock=clock,
            request_timeout=DEFAULT_POLICY.claim_lease / 20,
        )
        await processor.handle(Delivery("m-1", base64.b64encode(json.dumps(job).encode()).decode()))
        assert len(queues.requeued) == 1, store.peek("c-1")
        copy = queues.requeued[0]
        clock.advance(timedelta(seconds=copy.delay_seconds))
        await processor.handle(Delivery("m-2", copy.text))
        return store

    row = asyncio.run(twice()).peek("c-1")
    assert row is not None
    assert (row.state, row.attempts, row.ambiguous) == (JobState.SUCCEEDED, 2, False), row.error
    assert posts == 2
