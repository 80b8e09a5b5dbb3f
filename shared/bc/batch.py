"""JSON $batch: building request bodies, splitting long lists, and mapping each answer back to its operation.

Facts [bc-facts §3c]: `POST {api root}/$batch` with `{"requests": [{"method", "id", "url" (relative to the API
root), "headers", "body"}]}`; the answer is `{"responses": [{"id", "status", "headers", "body"}]}` with outer
status 200 even when inner requests fail; at most 100 operations per batch [§1b]; `Isolation: snapshot` runs
the whole batch in one transaction and rolls everything back if one request fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID

from shared.bc.errors import BatchError, Correlation, UnexpectedResponseError
from shared.bc.models import BatchOperation, BatchResult, Entity, JsonValue
from shared.bc.responses import error_for

MAX_BATCH_OPERATIONS = 100


def split(operations: Sequence[BatchOperation], size: int, *, atomic: bool) -> list[Sequence[BatchOperation]]:
    """Consecutive groups of at most `size`; an atomic batch must fit in one request."""
    if not operations:
        return []
    if atomic and len(operations) > size:
        raise BatchError(
            f"an atomic batch holds at most {size} operations (got {len(operations)}); split it into "
            "independent transactions yourself"
        )
    apis = {operation.api for operation in operations}
    if len(apis) > 1:
        raise BatchError("all operations of one batch must target the same API route")
    return [operations[start : start + size] for start in range(0, len(operations), size)]


def request_body(operations: Sequence[BatchOperation], company_id: UUID) -> dict[str, JsonValue]:
    """The JSON $batch body; each operation's id is its position in `operations`."""
    requests: list[JsonValue] = []
    for index, operation in enumerate(operations):
        headers: dict[str, JsonValue] = {"Accept": "application/json"}
        entry: dict[str, JsonValue] = {
            "id": str(index),
            "method": operation.method.value,
            "url": operation.relative_url(company_id),
            "headers": headers,
        }
        if operation.etag is not None:
            headers["If-Match"] = operation.etag
        if operation.body is not None:
            headers["Content-Type"] = "application/json"
            entry["body"] = dict(operation.body)
        requests.append(entry)
    return {"requests": requests}


def results(
    operations: Sequence[BatchOperation], answer: JsonValue, correlation: Correlation
) -> tuple[BatchResult, ...]:
    """Each operation's outcome, in the order given; an answer missing any operation is unusable."""
    responses = answer.get("responses") if isinstance(answer, Mapping) else None
    if not isinstance(responses, Sequence):
        raise UnexpectedResponseError("the $batch answer has no `responses` list", correlation=correlation)
    by_id = {str(item.get("id")): item for item in responses if isinstance(item, Mapping)}
    mapped: list[BatchResult] = []
    for index, operation in enumerate(operations):
        item = by_id.get(str(index))
        if item is None:
            raise UnexpectedResponseError(
                f"the $batch answer lacks operation {index}", correlation=correlation
            )
        mapped.append(_result(operation, item, correlation))
    return tuple(mapped)


def _result(
    operation: BatchOperation, item: Mapping[str, JsonValue], correlation: Correlation
) -> BatchResult:
    status = item.get("status")
    if not isinstance(status, int):
        raise UnexpectedResponseError("a $batch response has no status", correlation=correlation)
    body = item.get("body")
    if 200 <= status < 300:
        entity = Entity.from_json(body) if isinstance(body, Mapping) and "value" not in body else None
        return BatchResult(operation, status, entity=entity)
    headers = item.get("headers")
    retry_after = _header(headers, "retry-after")
    return BatchResult(operation, status, error=error_for(status, body, correlation, retry_after))


def _header(headers: JsonValue, name: str) -> str | None:
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if key.lower() == name and isinstance(value, str):
            return value
    return None
