"""JSON $batch: building request bodies, splitting long lists, and mapping each answer back to its operation.

Facts (learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/use-odata-batch): `POST {api
root}/$batch` with `{"requests": [{"method", "id", "url" (relative to the API root), "headers", "body"}]}`;
the answer is `{"responses": [{"id", "status", "headers", "body"}]}` with outer status 200 even when inner
requests fail; at most 100 operations per batch
(learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/operational-limits-online);
`Isolation: snapshot` runs the whole batch in one transaction and rolls everything back if one request fails,
while the operations run before the failure still report their own 2xx (see AtomicBatchFailedError).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from uuid import UUID

from shared.bc.errors import (
    AtomicBatchFailedError,
    BatchError,
    Correlation,
    UnexpectedResponseError,
    error_for,
)
from shared.bc.models import BatchOperation, BatchResult, Entity, JsonValue

MAX_BATCH_OPERATIONS = 100
# The status given to an operation of a failed atomic batch that BC left unanswered: 424 Failed Dependency
# (RFC 4918 §11.4), the status OData 4.01 gives a request that depends on a failed one.
NOT_RUN_STATUS = 424


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
    by_id = _responses_by_id(answer, correlation)
    mapped: list[BatchResult] = []
    for index, operation in enumerate(operations):
        item = by_id.get(str(index))
        if item is None:
            raise UnexpectedResponseError(
                f"the $batch answer lacks operation {index}", correlation=correlation
            )
        mapped.append(_result(operation, item, correlation))
    return tuple(mapped)


def atomic_results(
    operations: Sequence[BatchOperation], answer: JsonValue, correlation: Correlation
) -> tuple[BatchResult, ...]:
    """An atomic batch's results, or AtomicBatchFailedError when BC answered any operation with a non-2xx status.

    After a failure BC reverts the whole batch but leaves the 2xx answers of the operations it ran before it in
    place (see AtomicBatchFailedError); operations it did not answer at all were not run.
    """
    by_id = _responses_by_id(answer, correlation)
    answered = [
        None if (item := by_id.get(str(index))) is None else _result(operation, item, correlation)
        for index, operation in enumerate(operations)
    ]
    failed = [(index, result.error) for index, result in enumerate(answered) if result and result.error]
    if not failed:
        return results(operations, answer, correlation)
    failed_index, cause = failed[0]
    rolled_back = tuple(
        _not_run(operation, failed_index, correlation)
        if result is None
        else replace(result, rolled_back=True)
        for operation, result in zip(operations, answered, strict=True)
    )
    raise AtomicBatchFailedError(
        f"atomic $batch rolled back: operation {failed_index} of {len(operations)} failed "
        f"({type(cause).__name__})",
        results=rolled_back,
        failed_index=failed_index,
        cause=cause,
    ) from cause


def _responses_by_id(answer: JsonValue, correlation: Correlation) -> dict[str, Mapping[str, JsonValue]]:
    responses = answer.get("responses") if isinstance(answer, Mapping) else None
    if not isinstance(responses, Sequence):
        raise UnexpectedResponseError("the $batch answer has no `responses` list", correlation=correlation)
    return {str(item.get("id")): item for item in responses if isinstance(item, Mapping)}


def _not_run(operation: BatchOperation, failed_index: int, correlation: Correlation) -> BatchResult:
    """An operation of a failed atomic batch that BC sent no answer for: it stopped before running it."""
    error = BatchError(
        f"not run: BC sent no answer for this operation; operation {failed_index} of the atomic $batch failed",
        status=NOT_RUN_STATUS,
        correlation=correlation,
    )
    return BatchResult(operation, NOT_RUN_STATUS, error=error, rolled_back=True)


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
