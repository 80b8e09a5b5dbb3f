"""The BC client against the sandbox over TLS: paging, filters, ETags, $batch, 401 refresh, Retry-After, faults."""

from __future__ import annotations

import asyncio
import math
import time
from uuid import UUID

import pytest

from sandbox import Sandbox
from shared.bc import (
    AtomicBatchFailedError,
    AuthenticationError,
    BatchOperation,
    BusinessCentralClient,
    EntityChangedError,
    EntitySet,
    MemoryRecorder,
    Method,
    ODataQuery,
    RequestTimeoutError,
    RequestValidationError,
    ServiceUnavailableError,
    SharedThrottle,
    ThrottledError,
    build_client,
    odata_field,
)
from shared.bc.factory import budget_key, endpoint_from_settings, throttle_config_from_settings
from shared.bc.models import BcEndpoint
from shared.bc.throttle.table_store import partition_key_for
from shared.settings import Settings
from testkit.sandbox_tokens import SandboxTokenProvider
from tests.fakes.coordination import MemoryCoordinationStore
from tests.integration.bc.conftest import HEARTBEAT_SECONDS

pytestmark = pytest.mark.integration

CUSTOMERS = EntitySet("customers")
ITEMS = EntitySet("items")


async def test_list_pages_through_to_the_end(
    bc: BusinessCentralClient, sandbox: Sandbox, recorder: MemoryRecorder
) -> None:
    """With 7 per page, every seeded customer arrives once, in ceil(n/7) requests."""
    expected = {row["id"] for row in sandbox.bc.records("customers")}
    found = await bc.list(CUSTOMERS, page_size=7)
    assert [str(entity.id) for entity in found] == list(dict.fromkeys(str(entity.id) for entity in found))
    assert {str(entity.id) for entity in found} == expected
    pages = [i for i in recorder.interactions if i.path.endswith("/customers")]
    assert len(pages) == math.ceil(len(expected) / 7)


async def test_list_stops_at_a_limit(bc: BusinessCentralClient, recorder: MemoryRecorder) -> None:
    """A limit of 10 reads exactly one page of 10."""
    found = await bc.list(CUSTOMERS, limit=10)
    assert len(found) == 10
    assert len([i for i in recorder.interactions if i.path.endswith("/customers")]) == 1


async def test_company_is_found_by_name(
    bc_settings: Settings, tokens: SandboxTokenProvider, throttle: SharedThrottle, sandbox: Sandbox
) -> None:
    """With only BC_COMPANY_NAME configured, the company id is looked up in BC."""
    settings = bc_settings.model_copy(update={"bc": bc_settings.bc.model_copy(update={"company_id": None})})
    client = build_client(settings, tokens, throttle)
    try:
        company = await client.company()
    finally:
        await client.aclose()
    assert company.id == UUID(sandbox.bc.company_id)
    assert company.name == bc_settings.bc.company_name


async def test_hostile_text_in_a_filter_matches_only_itself(bc: BusinessCentralClient) -> None:
    """A name full of quotes and OData keywords finds exactly the one record that has it."""
    hostile = "O'Brien' or displayName ne '' or '1' eq '1"
    created = await bc.create(CUSTOMERS, {"displayName": hostile})
    found = await bc.list(CUSTOMERS, ODataQuery(filter=odata_field("displayName").eq(hostile)))
    assert [entity.id for entity in found] == [created.id]
    assert (
        len(await bc.list(CUSTOMERS, ODataQuery(filter=odata_field("displayName").contains("Brien' or"))))
        == 1
    )


async def test_stale_etag_is_a_conflict(bc: BusinessCentralClient) -> None:
    """Updating with an ETag someone already superseded fails with EntityChangedError (409 Request_EntityChanged)."""
    original = (await bc.list(CUSTOMERS, limit=1))[0]
    assert original.id is not None
    assert original.etag is not None
    key = CUSTOMERS.key(original.id)
    updated = await bc.update(key, {"phoneNumber": "555-0100"}, etag=original.etag)
    assert updated.etag != original.etag
    with pytest.raises(EntityChangedError) as caught:
        await bc.update(key, {"phoneNumber": "555-0199"}, etag=original.etag)
    assert caught.value.code == "Request_EntityChanged"
    assert caught.value.correlation is not None
    assert caught.value.correlation.ms_correlation_x is not None


async def test_update_and_delete_without_etag_fetch_it_first(
    bc: BusinessCentralClient, sandbox: Sandbox
) -> None:
    """Without a caller ETag, the current one is read and used; the record really changes, then goes."""
    created = await bc.create(CUSTOMERS, {"displayName": "Fetch First"})
    assert created.id is not None
    key = CUSTOMERS.key(created.id)
    updated = await bc.update(key, {"displayName": "Fetched"})
    assert updated["displayName"] == "Fetched"
    await bc.delete(key)
    assert str(created.id) not in {row["id"] for row in sandbox.bc.records("customers")}


async def test_bound_action_posts_an_invoice(bc: BusinessCentralClient) -> None:
    """Microsoft.NAV.post on a draft sales invoice leaves it posted (status no longer Draft)."""
    invoices = EntitySet("salesInvoices")
    drafts = await bc.list(invoices, ODataQuery(filter=odata_field("status").eq("Draft")), limit=1)
    assert drafts, "the sandbox seeds draft invoices"
    invoice_id = drafts[0].id
    assert invoice_id is not None
    await bc.action(invoices.key(invoice_id), "post")
    after = await bc.get(invoices.key(invoice_id))
    assert after["status"] != "Draft"


async def test_batch_maps_each_result_to_its_operation(bc: BusinessCentralClient, sandbox: Sandbox) -> None:
    """A mixed batch: creates succeed with their entities, a bad operation carries BC's error, in order."""
    before = len(sandbox.bc.records("items"))
    operations = [
        BatchOperation(Method.POST, ITEMS, body={"displayName": "Batch A"}),
        BatchOperation(Method.POST, ITEMS, body={"noSuchField": 1}),
        BatchOperation(Method.POST, ITEMS, body={"displayName": "Batch C"}),
    ]
    results = await bc.batch(operations)
    assert [result.operation for result in results] == operations
    assert [result.status for result in results] == [201, 400, 201]
    assert results[0].entity is not None
    assert results[0].entity["displayName"] == "Batch A"
    assert results[2].entity is not None
    assert results[2].entity["displayName"] == "Batch C"
    assert isinstance(results[1].error, RequestValidationError)
    assert results[1].error.code is not None
    assert results[1].error.code.startswith("BadRequest")
    assert len(sandbox.bc.records("items")) == before + 2


async def test_long_batch_is_split_into_requests_of_100(
    bc: BusinessCentralClient, sandbox: Sandbox, recorder: MemoryRecorder
) -> None:
    """230 creates go out as three $batch requests and all 230 records exist afterwards, in order."""
    before = len(sandbox.bc.records("items"))
    operations = [BatchOperation(Method.POST, ITEMS, body={"displayName": f"Bulk {n}"}) for n in range(230)]
    results = await bc.batch(operations)
    assert len([i for i in recorder.interactions if i.path.endswith("/$batch")]) == 3
    assert [result.entity["displayName"] for result in results if result.entity] == [
        f"Bulk {n}" for n in range(230)
    ]
    assert len(sandbox.bc.records("items")) == before + 230


async def test_atomic_batch_applies_nothing_when_one_operation_fails(
    bc: BusinessCentralClient, sandbox: Sandbox
) -> None:
    """With Isolation: snapshot one failing operation rolls every change back: AtomicBatchFailedError says so."""
    before = len(sandbox.bc.records("items"))
    operations = [
        BatchOperation(Method.POST, ITEMS, body={"displayName": "Atomic A"}),
        BatchOperation(Method.POST, ITEMS, body={"displayName": "Atomic B"}),
        BatchOperation(Method.POST, ITEMS, body={"noSuchField": 1}),
    ]
    with pytest.raises(AtomicBatchFailedError) as caught:
        await bc.batch(operations, atomic=True)
    error = caught.value
    assert [result.operation for result in error.results] == list(operations)
    assert all(result.rolled_back and not result.ok for result in error.results)
    assert error.failed_index == 2
    assert isinstance(error.cause, RequestValidationError)
    assert error.code == error.cause.code
    assert len(sandbox.bc.records("items")) == before
    assert not {"Atomic A", "Atomic B"} & {row["displayName"] for row in sandbox.bc.records("items")}


async def test_401_refreshes_the_token_exactly_once(
    bc: BusinessCentralClient, tokens: SandboxTokenProvider, sandbox: Sandbox, recorder: MemoryRecorder
) -> None:
    """A token BC refuses is refreshed once and the request succeeds; BC saw exactly one 401."""
    tokens.poison_next()
    found = await bc.list(CUSTOMERS, limit=1)
    assert len(found) == 1
    assert tokens.replacement_calls == 1
    assert sandbox.bc.stats().count(401) == 1
    assert [i.status for i in recorder.interactions] == [401, 200]


async def test_token_that_expired_at_bc_is_refreshed_once(
    bc: BusinessCentralClient, tokens: SandboxTokenProvider, sandbox: Sandbox, recorder: MemoryRecorder
) -> None:
    """A real token BC sees as expired (its clock ran ahead) gets one 401, one refresh and then a 200."""
    await bc.list(CUSTOMERS, limit=1)
    sandbox.clock.advance(2 * 3600)

    found = await bc.list(CUSTOMERS, limit=1)

    assert len(found) == 1
    assert tokens.replacement_calls == 1
    assert [i.status for i in recorder.interactions][-2:] == [401, 200]


async def test_token_refused_twice_is_an_authentication_error(
    bc: BusinessCentralClient, tokens: SandboxTokenProvider, sandbox: Sandbox
) -> None:
    """If even the refreshed token is refused, the call fails after one refresh, with BC's code."""
    tokens.always_garbage = True
    with pytest.raises(AuthenticationError) as caught:
        await bc.list(CUSTOMERS, limit=1)
    assert caught.value.code == "Authentication_InvalidCredentials"
    token_in_error = "not-a-jwt" in str(caught.value)  # a bool, so a failure never prints the token
    assert not token_in_error
    assert tokens.replacement_calls == 1
    assert sandbox.bc.stats().count(401) == 2


async def test_retry_after_pauses_this_and_every_other_process(
    bc: BusinessCentralClient,
    sandbox: Sandbox,
    coordination: MemoryCoordinationStore,
    bc_settings: Settings,
    tokens: SandboxTokenProvider,
) -> None:
    """A 429 with Retry-After: 2 is retried no sooner than 2 s later, and another process waits for it too."""
    await bc.list(CUSTOMERS, limit=1)  # this process joins first
    config = throttle_config_from_settings(bc_settings, heartbeat_seconds=HEARTBEAT_SECONDS)
    other_throttle = SharedThrottle(coordination, _key(bc_settings), config)
    other = build_client(bc_settings, tokens, other_throttle)
    try:
        await other.list(CUSTOMERS, limit=1)  # the second process is admitted after its join delay
        sandbox.bc.faults(retry_after_seconds=2)
        sandbox.bc.fail_next(1, "429")
        started = time.time()
        first = asyncio.create_task(bc.list(CUSTOMERS, limit=1))
        paused_until = await _shared_pause(coordination, bc_settings, deadline=started + 5)
        await other_throttle.heartbeat()  # what its background heartbeat does within 0.5 s
        await other.list(CUSTOMERS, limit=1)
        other_done = time.time()
        await first
        first_done = time.time()
    finally:
        await other.aclose()
        await other_throttle.close()
    assert paused_until >= started + 2 - 0.05
    assert first_done >= paused_until
    assert other_done >= paused_until
    assert sandbox.bc.stats().count(429) == 1


async def _shared_pause(store: MemoryCoordinationStore, settings: Settings, deadline: float) -> float:
    """Poll the coordination row (with a deadline) until a pause shows up; return its end."""
    while time.time() < deadline:
        row = await store.read(_key(settings))
        if row is not None and row.state.paused_until > 0:
            return row.state.paused_until
        await asyncio.sleep(0.01)
    raise AssertionError("no shared pause was published")


async def test_long_retry_after_is_raised_for_the_job_layer(
    bc: BusinessCentralClient, sandbox: Sandbox
) -> None:
    """A 429 asking for 30 s is not waited for in-request: ThrottledError carries retry_after=30."""
    sandbox.bc.faults(retry_after_seconds=30)
    sandbox.bc.fail_next(1, "429")
    started = time.monotonic()
    with pytest.raises(ThrottledError) as caught:
        await bc.list(CUSTOMERS, limit=1)
    assert caught.value.retry_after == 30.0
    assert time.monotonic() - started < 5.0


async def test_dropped_connection_on_a_read_is_retried(
    bc: BusinessCentralClient, sandbox: Sandbox, recorder: MemoryRecorder
) -> None:
    """A GET whose connection drops is repeated and succeeds; the drop is in the interaction log."""
    sandbox.bc.fail_next(1, "drop")
    found = await bc.list(CUSTOMERS, limit=1)
    assert len(found) == 1
    assert recorder.interactions[0].status is None
    assert recorder.interactions[-1].status == 200


async def test_ambiguous_create_is_not_repeated(bc: BusinessCentralClient, sandbox: Sandbox) -> None:
    """A POST whose connection drops after BC committed is raised, not resent: exactly one record exists."""
    sandbox.bc.fail_next(1, "ambiguous_write")
    with pytest.raises(ServiceUnavailableError) as caught:
        await bc.create(CUSTOMERS, {"displayName": "Maybe Once"})
    assert caught.value.request_sent is True
    assert [row["displayName"] for row in sandbox.bc.records("customers")].count("Maybe Once") == 1


async def test_create_answered_408_is_raised_not_repeated(
    bc: BusinessCentralClient, sandbox: Sandbox
) -> None:
    """BC committed the create, then answered 408: the client raises RequestTimeoutError and sends it only once."""
    sandbox.bc.fail_next(1, "408")
    with pytest.raises(RequestTimeoutError) as caught:
        await bc.create(CUSTOMERS, {"displayName": "Timed Out Once"})
    assert caught.value.status == 408
    assert caught.value.request_sent is True
    assert [row["displayName"] for row in sandbox.bc.records("customers")].count("Timed Out Once") == 1


async def test_read_answered_502_is_retried_after_its_retry_after(
    bc: BusinessCentralClient, sandbox: Sandbox, recorder: MemoryRecorder
) -> None:
    """A GET answered 502 with Retry-After: 0 is repeated and succeeds."""
    sandbox.bc.faults(retry_after_seconds=0)
    sandbox.bc.fail_next(1, "502")
    found = await bc.list(CUSTOMERS, limit=1)
    assert len(found) == 1
    assert [i.status for i in recorder.interactions] == [502, 200]


async def test_every_request_is_recorded_without_secrets(
    bc: BusinessCentralClient, recorder: MemoryRecorder, tokens: SandboxTokenProvider
) -> None:
    """Interactions carry correlation ids from BC and our client-request-id, never the token."""
    await bc.list(CUSTOMERS, limit=1)
    (interaction,) = recorder.interactions
    assert interaction.request_id is not None
    assert interaction.ms_correlation_x is not None
    assert UUID(interaction.client_request_id)
    token = await tokens.token()
    token_recorded = token.value in repr(interaction)  # a bool, so a failure never prints the token
    assert not token_recorded


def _key(settings: Settings) -> str:
    return partition_key_for(budget_key(settings))


def test_endpoint_from_sandbox_settings(bc_settings: Settings) -> None:
    """The sandbox env yields the documented URL shape."""
    endpoint = endpoint_from_settings(bc_settings)
    assert isinstance(endpoint, BcEndpoint)
    assert endpoint.api_root(EntitySet("x").api).endswith(
        f"/v2.0/{bc_settings.auth.tenant_id}/production/api/v2.0"
    )
