"""JSON $batch: request shape, splitting into requests of at most 100, results mapped back per operation."""

from __future__ import annotations

import json
import random
import uuid

import httpx
import pytest

from shared.bc.batch import request_body
from shared.bc.errors import (
    AtomicBatchFailedError,
    BatchError,
    BatchIncompleteError,
    EntityChangedError,
    QueryError,
    RequestTimeoutError,
    RequestValidationError,
    ThrottledError,
    UnexpectedResponseError,
)
from shared.bc.models import ApiRoute, BatchOperation, EntitySet, Method
from tests.unit.bc.fakes import API_ROOT, COMPANY, Handler, bc_error, json_response, make_client

ITEMS = EntitySet("items")


def echo_batch(request: httpx.Request) -> httpx.Response:
    """A $batch answer: 201 with an entity per create, in shuffled order; bodies named 'bad' fail."""
    requests = json.loads(request.content)["requests"]
    responses = []
    for entry in requests:
        if entry["body"]["displayName"] == "bad":
            body = {"error": {"code": "Application_FieldValidationException", "message": "bad name"}}
            responses.append({"id": entry["id"], "status": 400, "headers": {}, "body": body})
        else:
            entity = {
                "@odata.etag": 'W/"1"',
                "id": str(uuid.uuid4()),
                "displayName": entry["body"]["displayName"],
            }
            responses.append({"id": entry["id"], "status": 201, "headers": {}, "body": entity})
    random.Random(7).shuffle(responses)
    return json_response(200, {"responses": responses})


def creates(count: int) -> list[BatchOperation]:
    """`count` item creates named item-0, item-1, ..."""
    return [BatchOperation(Method.POST, ITEMS, body={"displayName": f"item-{n}"}) for n in range(count)]


async def test_batch_request_shape() -> None:
    """POST {api root}/$batch with relative URLs, ids, If-Match and JSON bodies per operation."""
    h = make_client(echo_batch)
    key = ITEMS.key(uuid.UUID(int=5))
    operations = [
        BatchOperation(Method.POST, ITEMS, body={"displayName": "a"}),
        BatchOperation(Method.PATCH, key, body={"displayName": "b"}, etag='W/"9"'),
    ]
    await h.client.batch(operations[:1])
    request = h.requests[0]
    assert str(request.url) == f"{API_ROOT}/$batch"
    assert "Isolation" not in request.headers
    sent = json.loads(request.content)["requests"][0]
    assert sent == {
        "id": "0",
        "method": "POST",
        "url": f"companies({COMPANY})/items",
        "headers": {"Accept": "application/json", "Content-Type": "application/json"},
        "body": {"displayName": "a"},
    }
    patch = json.loads(json.dumps(request_body(operations, COMPANY)))["requests"][1]
    assert patch["headers"]["If-Match"] == 'W/"9"'
    assert patch["url"] == f"companies({COMPANY})/items({uuid.UUID(int=5)})"


async def test_results_map_back_to_their_operations_in_order() -> None:
    """However BC orders its responses, result i belongs to operation i."""
    h = make_client(echo_batch)
    operations = creates(5)
    results = await h.client.batch(operations)
    assert [result.operation for result in results] == operations
    assert [result.entity["displayName"] for result in results if result.entity] == [
        f"item-{n}" for n in range(5)
    ]
    assert all(result.ok and result.status == 201 for result in results)


async def test_long_lists_are_split_into_requests_of_at_most_100() -> None:
    """250 operations go out as 100 + 100 + 50, and all 250 results come back in order."""
    h = make_client(echo_batch)
    operations = creates(250)
    results = await h.client.batch(operations)
    sizes = [len(json.loads(request.content)["requests"]) for request in h.requests]
    assert sizes == [100, 100, 50]
    assert [result.operation for result in results] == operations


async def test_failed_operation_carries_its_typed_error() -> None:
    """An inner 400 becomes that operation's error (with BC's code); the others still succeed."""
    h = make_client(echo_batch)
    operations = [*creates(2), BatchOperation(Method.POST, ITEMS, body={"displayName": "bad"})]
    results = await h.client.batch(operations)
    assert [result.ok for result in results] == [True, True, False]
    error = results[2].error
    assert isinstance(error, RequestValidationError)
    assert error.code == "Application_FieldValidationException"


async def test_inner_conflict_is_an_entity_changed_error() -> None:
    """An inner 409 Request_EntityChanged maps like a top-level one."""

    def conflict(request: httpx.Request) -> httpx.Response:
        body = {
            "error": {
                "code": "Request_EntityChanged",
                "message": "Another user has already changed the record.",
            }
        }
        return json_response(200, {"responses": [{"id": "0", "status": 409, "headers": {}, "body": body}]})

    h = make_client(conflict)
    key = ITEMS.key(uuid.UUID(int=1))
    (result,) = await h.client.batch([BatchOperation(Method.PATCH, key, body={"x": 1}, etag='W/"old"')])
    assert isinstance(result.error, EntityChangedError)


async def test_atomic_batch_sends_snapshot_isolation() -> None:
    """atomic=True asks BC for one transaction (Isolation: snapshot)."""
    h = make_client(echo_batch)
    await h.client.batch(creates(3), atomic=True)
    assert h.requests[0].headers["Isolation"] == "snapshot"


def snapshot_batch(failure: dict[str, object], *, answer_later: bool) -> Handler:
    """Like BC with Isolation: snapshot: operations named 'bad' get `failure`; ones before keep their 201.

    With `answer_later` False, BC stops at the failure and sends nothing for the operations after it.
    """

    def handler(request: httpx.Request) -> httpx.Response:
        responses = []
        for entry in json.loads(request.content)["requests"]:
            if entry["body"]["displayName"] == "bad":
                responses.append({"id": entry["id"], **failure})
                if not answer_later:
                    break
            else:
                body = {"@odata.etag": 'W/"1"', "id": str(uuid.uuid4()), **entry["body"]}
                responses.append({"id": entry["id"], "status": 201, "headers": {}, "body": body})
        return json_response(200, {"responses": responses})

    return handler


INVALID = {
    "status": 400,
    "headers": {},
    "body": {"error": {"code": "Application_FieldValidationException", "message": "bad name"}},
}
BAD = BatchOperation(Method.POST, ITEMS, body={"displayName": "bad"})


async def test_failed_atomic_batch_raises_with_every_result_rolled_back() -> None:
    """BC keeps 201 for operations before the failure but kept none: all results come back rolled back."""
    h = make_client(snapshot_batch(INVALID, answer_later=True))
    operations = [*creates(2), BAD, *creates(1)]
    with pytest.raises(AtomicBatchFailedError) as caught:
        await h.client.batch(operations, atomic=True)
    error = caught.value
    assert [result.operation for result in error.results] == operations
    assert [result.status for result in error.results] == [201, 201, 400, 201]
    assert all(result.rolled_back and not result.ok for result in error.results)
    assert error.results[0].entity is not None  # BC's body is kept, though that record does not exist
    assert error.failed_index == 2
    assert isinstance(error.cause, RequestValidationError)
    assert error.cause is error.results[2].error
    assert error.__cause__ is error.cause
    assert (error.status, error.code) == (400, "Application_FieldValidationException")
    assert isinstance(error, BatchError)
    assert not error.retriable


async def test_operations_bc_did_not_answer_after_the_failure_are_not_run() -> None:
    """When BC stops at the failing operation, the later ones get a 424 'not run' result, also rolled back."""
    h = make_client(snapshot_batch(INVALID, answer_later=False))
    operations = [*creates(1), BAD, *creates(2)]
    with pytest.raises(AtomicBatchFailedError) as caught:
        await h.client.batch(operations, atomic=True)
    error = caught.value
    assert [result.status for result in error.results] == [201, 400, 424, 424]
    assert all(result.rolled_back for result in error.results)
    assert all(isinstance(result.error, BatchError) for result in error.results[2:])
    assert error.failed_index == 1
    assert isinstance(error.cause, RequestValidationError)


async def test_throttled_operation_inside_an_atomic_batch_keeps_retry_after() -> None:
    """The raised error copies its cause's status and Retry-After; the cause says whether to try again."""
    throttled = {
        "status": 429,
        "headers": {"retry-after": "7"},
        "body": {"error": {"code": "Application_TooManyRequests", "message": "Too many"}},
    }
    h = make_client(snapshot_batch(throttled, answer_later=False))
    with pytest.raises(AtomicBatchFailedError) as caught:
        await h.client.batch([*creates(1), BAD], atomic=True)
    error = caught.value
    assert isinstance(error.cause, ThrottledError)
    assert error.cause.retriable
    assert not error.retriable
    assert (error.status, error.retry_after) == (429, 7)


async def test_successful_atomic_batch_returns_kept_results() -> None:
    """All 2xx: plain results, none rolled back."""
    h = make_client(snapshot_batch(INVALID, answer_later=True))
    results = await h.client.batch(creates(3), atomic=True)
    assert all(result.ok and not result.rolled_back for result in results)


async def test_non_atomic_batch_failure_stays_per_operation() -> None:
    """Without Isolation: snapshot a failing operation does not undo the others: no exception, none rolled back."""
    h = make_client(snapshot_batch(INVALID, answer_later=True))
    results = await h.client.batch([*creates(1), BAD, *creates(1)])
    assert [(result.status, result.rolled_back) for result in results] == [
        (201, False),
        (400, False),
        (201, False),
    ]
    assert [result.ok for result in results] == [True, False, True]


async def test_atomic_batch_longer_than_one_request_is_refused() -> None:
    """All-or-nothing cannot span two requests, so 101 atomic operations are refused before sending."""
    h = make_client(echo_batch)
    with pytest.raises(BatchError):
        await h.client.batch(creates(101), atomic=True)
    assert h.requests == []


async def test_mixed_api_routes_are_refused() -> None:
    """One $batch endpoint serves one API route."""
    h = make_client(echo_batch)
    custom = EntitySet("shipments", api=ApiRoute("contoso", "logistics", "v1.0"))
    with pytest.raises(BatchError):
        await h.client.batch([*creates(1), BatchOperation(Method.POST, custom, body={"a": 1})])


async def test_answer_missing_an_operation_is_unexpected() -> None:
    """If BC's answer lacks an operation, the caller is told instead of getting a silent gap."""
    h = make_client(lambda request: json_response(200, {"responses": []}))
    with pytest.raises(UnexpectedResponseError):
        await h.client.batch(creates(1))


def failing_from(request_number: int, failure: httpx.Response) -> Handler:
    """echo_batch for the first requests, then `failure` for request `request_number` (1-based) and later."""
    seen = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal seen
        seen += 1
        return failure if seen >= request_number else echo_batch(request)

    return handler


async def test_failure_after_a_committed_request_keeps_its_results() -> None:
    """250 operations, the second request times out: the first 100 results come back with what is left."""
    h = make_client(failing_from(2, bc_error(504, "GatewayTimeout", "no answer in time")))
    operations = creates(250)
    with pytest.raises(BatchIncompleteError) as caught:
        await h.client.batch(operations)
    error = caught.value
    assert [result.operation for result in error.completed] == operations[:100]
    assert all(result.ok for result in error.completed)
    assert error.failed == tuple(operations[100:200])
    assert error.not_attempted == tuple(operations[200:])
    assert error.remaining == tuple(operations[100:])
    assert error.failed_may_have_applied  # a timeout leaves the second request's outcome unknown
    assert isinstance(error.__cause__, RequestTimeoutError)
    assert isinstance(error, BatchError)
    assert not error.retriable  # the same call again would repeat the first 100
    assert len(h.requests) == 2


async def test_throttled_later_request_is_known_not_applied_and_keeps_retry_after() -> None:
    """A 429 on the second request: its operations surely did not run, and Retry-After is carried."""
    throttled = bc_error(429, "Application_TooManyRequests", "Too many", {"Retry-After": "60"})
    h = make_client(failing_from(2, throttled))
    with pytest.raises(BatchIncompleteError) as caught:
        await h.client.batch(creates(150))
    assert not caught.value.failed_may_have_applied
    assert caught.value.retry_after == 60
    assert isinstance(caught.value.__cause__, ThrottledError)


async def test_failure_of_the_first_request_raises_its_own_error() -> None:
    """Nothing was committed when the first request fails, so its own (retriable) error is raised."""
    h = make_client(failing_from(1, bc_error(504, "GatewayTimeout", "no answer in time")))
    with pytest.raises(RequestTimeoutError):
        await h.client.batch(creates(150))


def test_bound_action_must_be_a_post_on_a_key() -> None:
    """An action on a collection or with another verb is a programming error caught at construction."""
    with pytest.raises(QueryError, match="bound action"):
        BatchOperation(Method.POST, ITEMS, action="post")


@pytest.mark.parametrize("name", ["customers?$filter=x", "items/../../secrets", "", "a" * 500])
def test_entity_set_names_from_job_input_are_refused_without_echoing_them(name: str) -> None:
    """A path segment that is not a plain name is a QueryError (not retriable) whose message omits the text."""
    with pytest.raises(QueryError) as caught:
        EntitySet(name)
    assert not caught.value.retriable
    assert name not in str(caught.value) or name == ""
