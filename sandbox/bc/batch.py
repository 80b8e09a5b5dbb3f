"""JSON $batch: up to 100 operations; with `Isolation: snapshot` all succeed or none is applied
(learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/use-odata-batch).

A failed snapshot batch answers as Microsoft's example does
(https://learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/use-odata-batch): every change is
reverted, yet each operation run before the failure keeps its own 200/201/204 and body, and the failing one
carries its error. Operations after the failing one are not run. UNCONFIRMED (no Microsoft doc shows it): what BC
sends for those; `SandboxConfig.bc_snapshot_batch_skipped_status` decides (None, the default: no response at all,
as OData stops a batch at the first error without `Prefer: odata.continue-on-error`; 424: a Failed Dependency
response each). Also UNCONFIRMED: the body for too many operations (here 400 BadRequest). The outer status is 200
even when inner operations fail (doc example).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

from sandbox.bc.api import JSON_TYPE, ApiRequest, ApiResponse, BcApi
from sandbox.bc.errors import BcError, invalid_body
from sandbox.bc.schema import JsonValue
from sandbox.bc.store import BcStore, Company, Row
from sandbox.config import SandboxConfig


def batch_size(body: bytes) -> int:
    """How many operations a $batch body holds (0 if unreadable; the executor reports the error)."""
    try:
        requests = json.loads(body).get("requests")
    except (ValueError, AttributeError):
        return 0
    return len(requests) if isinstance(requests, list) else 0


def run_batch(
    api: BcApi, store: BcStore, outer: ApiRequest, root_path: str, config: SandboxConfig
) -> ApiResponse:
    """Execute a JSON batch; returns one response holding every inner response."""
    max_operations = config.bc_max_batch_operations
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
    if snapshot:
        return _run_snapshot(
            api, store, outer, root_path, operations, config.bc_snapshot_batch_skipped_status
        )
    responses = [
        _inner(_inner_id(operation, index), _run_one(api, outer, root_path, operation))
        for index, operation in enumerate(operations)
    ]
    wrote = any(r.get("status") in (200, 201, 204) for r in responses)
    return ApiResponse(200, {"responses": responses}, {}, wrote=wrote)


def _run_snapshot(
    api: BcApi,
    store: BcStore,
    outer: ApiRequest,
    root_path: str,
    operations: list[JsonValue],
    skipped_status: int | None,
) -> ApiResponse:
    """Run until the first failure; then restore the store and answer for the operations run (and skipped).

    Webhook notifications are held until the batch is known to commit: BC records them in the same transaction,
    so a rolled-back batch notifies no one (reference A3, "Who triggers delivery")."""
    saved = store.snapshot()
    listener = store.listener
    held: list[tuple[Company, str, Row, str]] = []

    def hold(company: Company, set_name: str, row: Row, change: str) -> None:
        held.append((company, set_name, row, change))

    store.listener = hold
    responses: list[dict[str, JsonValue]] = []
    try:
        for index, operation in enumerate(operations):
            response = _run_one(api, outer, root_path, operation)
            responses.append(_inner(_inner_id(operation, index), response))
            if response.status >= 400:
                store.restore(saved)
                held.clear()
                if skipped_status is not None:
                    later = enumerate(operations[index + 1 :], start=index + 1)
                    responses.extend(_skipped(_inner_id(op, i), skipped_status) for i, op in later)
                return ApiResponse(200, {"responses": responses}, {}, wrote=False)
    finally:
        store.listener = listener
        if listener is not None:
            for change in held:
                listener(*change)
    wrote = any(r.get("status") in (200, 201, 204) for r in responses)
    return ApiResponse(200, {"responses": responses}, {}, wrote=wrote)


def _inner_id(operation: JsonValue, index: int) -> str:
    """The operation's own id, or its 1-based position when it has none."""
    return str(operation.get("id", index + 1)) if isinstance(operation, dict) else str(index + 1)


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


def _skipped(inner_id: str, status: int) -> dict[str, JsonValue]:
    """An operation not run because an earlier one of the snapshot batch failed (code UNCONFIRMED, see above)."""
    error = BcError(
        status,
        "BadRequest_BatchRolledBack",
        "The operation was not run because another operation in the snapshot batch failed.",
    )
    return {"id": inner_id, "status": status, "headers": {"content-type": JSON_TYPE}, "body": error.body()}
