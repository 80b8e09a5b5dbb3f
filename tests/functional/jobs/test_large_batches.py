"""A batch too large for its row: the row and the report are bounded, the full item list is kept and served."""

from __future__ import annotations

import base64
import json
from typing import Any

from bcjobs import ErrorInfo, ItemOutcome, JobState, ResultSummary
from bcjobs.rows import json_column
from shared.bc import ThrottledError
from shared.jobs import Handled, status_body
from shared.jobs.errors import RetriableBatchItemsError
from shared.jobs.records import RESULT_BUDGET
from shared.jobs.runner import EarlierRuns
from tests.fakes.jobs import MemoryJobReader
from tests.functional.jobs.conftest import Pipeline

# About the most operations of this shape one queue message carries (48 KiB of JSON, 69 bytes each, less the retry copy's reserve). The contract's
# 1,000 cannot travel in one message (a step takes at least ~60 bytes); bounding is unit-tested with 1,000 items.
COUNT = 680
BATCH: dict[str, Any] = {
    "jobId": "big-1",
    "operation": "batch",
    "operations": [{"operation": "create", "entitySet": "items", "data": {"displayName": "x"}}] * COUNT,
}


def wire(job: dict[str, Any]) -> str:
    """The queue text of `job` as compact JSON (spaces would not fit in one message)."""
    return base64.b64encode(json.dumps(job, separators=(",", ":")).encode("utf-8")).decode("ascii")


REFUSED = ErrorInfo(code="bc_validation", message="Number is not valid", bc_code="BadRequest", status=400)
THROTTLED = ErrorInfo(code="bc_throttled", message="slow down", status=429, retriable=True)


def created(index: int) -> ItemOutcome:
    return ItemOutcome(
        index=index, status=201, id=f"00000000-0000-0000-0000-{index:012d}", etag='W/"JzQ7MTsn"'
    )


async def test_a_batch_of_the_largest_message_ends_failed_with_a_bounded_row_and_report_and_a_full_status(
    pipeline: Pipeline,
) -> None:
    """Row and report hold counts and failing items under 64 KiB; the status lists every outcome."""
    items = [
        ItemOutcome(index=n, status=400, error=REFUSED) if n == 500 else created(n) for n in range(COUNT)
    ]
    pipeline.runner.script(ResultSummary(count=COUNT, items=items))
    assert await pipeline.deliver(wire(BATCH)) is Handled.FAILED
    row = pipeline.row("big-1")
    assert row.state is JobState.FAILED
    assert row.error is not None
    assert row.error.code == "batch_items_failed"
    assert row.result is not None
    assert (row.result.items_truncated, row.result.items_succeeded, row.result.items_failed) == (
        True,
        COUNT - 1,
        1,
    )
    assert [item.index for item in row.result.items or []] == [500]
    assert len(str(json_column(row.result)).encode("utf-8")) <= RESULT_BUDGET
    [report] = pipeline.queues.published
    assert len(base64.b64encode(report.to_json().encode("utf-8"))) < 64 * 1024
    body = await status_body(MemoryJobReader(pipeline.store, pipeline.audit), "big-1")
    assert body is not None
    assert [item["index"] for item in body["result"]["items"]] == list(range(COUNT))
    assert body["result"]["items"][500]["error"]["code"] == "bc_validation"


async def test_a_retried_large_batch_hands_every_finished_item_to_the_next_run(pipeline: Pipeline) -> None:
    """The row keeps only some items, so the next run's EarlierRuns comes from the kept full list."""
    done = {n: created(n) for n in range(COUNT - 1)}
    done[COUNT - 1] = ItemOutcome(index=COUNT - 1, status=429, error=THROTTLED)
    throttled = ThrottledError("slow down", status=429, retry_after=1)
    finished = ResultSummary(count=COUNT, items=[created(n) for n in range(COUNT)])
    pipeline.runner.script(RetriableBatchItemsError(done, throttled), finished)
    assert await pipeline.deliver(wire(BATCH), "m1") is Handled.RETRY_SCHEDULED
    scheduled = pipeline.row("big-1").result
    assert scheduled is not None
    assert scheduled.items_truncated
    assert await pipeline.deliver_copy("m2") is Handled.SUCCEEDED
    assert pipeline.runner.calls[1].earlier == EarlierRuns(ambiguous=False, items=done)
    assert pipeline.row("big-1").state is JobState.SUCCEEDED
