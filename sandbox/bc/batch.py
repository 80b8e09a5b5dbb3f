"""JSON $batch: up to 100 operations; with `Isolation: snapshot` all succeed or none is applied [bc-facts 3c, BATCH].

UNCONFIRMED [bc-facts open item 6]: the body for too many operations, and what BC returns for the other operations
when a snapshot batch fails. Here: 400 BadRequest for >100; on failure every change is rolled back, the failing
operation keeps its error and every other operation gets 424 (Failed Dependency, as OData 4.01 uses it).
The outer status is 200 even when inner operations fail (doc example).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

from sandbox.bc.api import JSON_TYPE, ApiRequest, ApiResponse, BcApi
from sandbox.bc.errors import BcError, invalid_body
from sandbox.bc.schema import JsonValue
from sandbox.bc.store import BcStore


def batch_size(body: bytes) -> int:
    """How many operations a $batch body holds (0 if unreadable; the executor reports the error)."""
    try:
        requests = json.loads(body).get("requests")
    except (ValueError, AttributeError):
        return 0
    return len(requests) if isinstance(requests, list) else 0


def run_batch(
    api: BcApi, store: BcStore, outer: ApiRequest, root_path: str, max_operations: int
) -> ApiResponse:
    """Execute a JSON batch; returns one response holding every inner response."""
    try:
        payload = json.loads(outer.body)
    except ValueError:
        raise invalid_body("The batch request body is not valid JSON.") from None
    operations = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(operations, list):
        raise invalid_body("The batch request body must contain a 'requests' array.")
    if len(operations) > max_operations:
        raise BcError(
            400,
            "BadRequest",
            f"The batch request contains {len(operations)} operations; the maximum number of operations in a batch is {max_operations}.",
        )
    snapshot = outer.headers.get("isolation", "").lower() == "snapshot"
    saved = store.snapshot() if snapshot else None
    responses: list[dict[str, JsonValue]] = []
    failed_at: int | None = None
    for index, operation in enumerate(operations):
        inner_id = str(operation.get("id", index + 1)) if isinstance(operation, dict) else str(index + 1)
        if snapshot and failed_at is not None:
            responses.append(_failed_dependency(inner_id))
            continue
        response = _run_one(api, outer, root_path, operation)
        responses.append(_inner(inner_id, response))
        if response.status >= 400 and snapshot:
            failed_at = index
    if saved is not None and failed_at is not None:
        store.restore(saved)
        for index in range(failed_at):
            responses[index] = _failed_dependency(str(responses[index]["id"]))
    wrote = failed_at is None and any(r.get("status") in (200, 201, 204) for r in responses)
    return ApiResponse(200, {"responses": responses}, {}, wrote=wrote)


def _run_one(api: BcApi, outer: ApiRequest, root_path: str, operation: JsonValue) -> ApiResponse:
    try:
        if not isinstance(operation, dict) or "method" not in operation or "url" not in operation:
            raise invalid_body("Each batch operation needs 'method' and 'url'.")
        url = urlsplit(str(operation["url"]))
        path = url.path
        if url.scheme or path.startswith("/"):
            position = path.find(root_path)
            if position < 0:
                raise invalid_body(f"The operation URL '{operation['url']}' is not under the API root.")
            path = path[position + len(root_path) :]
        if path.strip("/").startswith("$batch"):
            raise invalid_body("A batch cannot contain another batch.")
        headers = {str(k).lower(): str(v) for k, v in (operation.get("headers") or {}).items()}
        body = operation.get("body")
        request = ApiRequest(
            method=str(operation["method"]).upper(),
            path=path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers=headers,
            body=json.dumps(body).encode() if body is not None else b"",
            root_url=outer.root_url,
        )
        return api.execute(request)
    except BcError as exc:
        return ApiResponse(exc.status, exc.body(), dict(exc.headers))


def _inner(inner_id: str, response: ApiResponse) -> dict[str, JsonValue]:
    if response.status == 204:
        return {"id": inner_id, "status": 204, "headers": {}}
    headers = {"content-type": "application/json; odata.metadata=minimal", "odata-version": "4.0"}
    headers.update({k.lower(): v for k, v in response.headers.items() if k.lower() != "content-type"})
    if isinstance(response.body, str):
        headers["content-type"] = "text/plain"
    return {"id": inner_id, "status": response.status, "headers": headers, "body": response.body}


def _failed_dependency(inner_id: str) -> dict[str, JsonValue]:
    error = BcError(
        424,
        "BadRequest_BatchRolledBack",
        "The operation was rolled back because another operation in the snapshot batch failed.",
    )
    return {"id": inner_id, "status": 424, "headers": {"content-type": JSON_TYPE}, "body": error.body()}
