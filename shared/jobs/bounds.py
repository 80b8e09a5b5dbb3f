"""Keeping a job's result small enough for its row and its report.

Facts: a Table Storage property holds at most 64 KiB (a string is UTF-16: 32 K characters) and an entity 1 MiB
(learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model; Azurite enforces it:
PropertyValueTooLarge); a queue message holds at most 64 KiB, and the results queue carries base64 text, so the
report's JSON must stay under 48 KiB (learn.microsoft.com/rest/api/storageservices/put-message). A batch of 1,000
operations reports about 100 bytes per succeeded item and several hundred per failed one, so its full item list
fits in neither: the row and the report keep the counts and the failing items that fit, the full list goes to the
items table (shared.jobs.store) and is served by the status route.
"""

from __future__ import annotations

from bcjobs import ItemOutcome, ResultSummary

# UTF-8 bytes of the Result column's JSON: under 32 K UTF-16 characters for the row, and leaving room in the 48 KiB
# of report JSON for the error (whose message quotes the first failing item) and the job's other fields.
RESULT_BUDGET = 24_000


def needs_bounding(result: ResultSummary | None, budget: int = RESULT_BUDGET) -> bool:
    """True when the result carries batch items and is too large for the row and the report."""
    return result is not None and bool(result.items) and _size(result) > budget


def bounded(result: ResultSummary, budget: int = RESULT_BUDGET) -> ResultSummary:
    """The result as the row keeps it: unchanged when it fits; else the counts and the first failing items that
    fit, marked `itemsTruncated` (the full list is kept elsewhere by the caller)."""
    if not needs_bounding(result, budget):
        return result
    items = result.items or []
    failing = [item for item in items if _failed(item)]
    base = result.model_copy(
        update={
            "items": [],
            "items_truncated": True,
            "items_succeeded": len(items) - len(failing),
            "items_failed": len(failing),
        }
    )
    used = _size(base)
    kept: list[ItemOutcome] = []
    for item in failing:
        size = len(item.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")) + 1
        if used + size > budget:
            break
        kept.append(item)
        used += size
    return base.model_copy(update={"items": kept})


def _failed(item: ItemOutcome) -> bool:
    return item.error is not None or item.rolled_back


def _size(result: ResultSummary) -> int:
    return len(result.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8"))
