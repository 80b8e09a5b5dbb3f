"""shared.jobs.records.bounded: a batch result too large for a Table property or a results message is cut to fit."""

from __future__ import annotations

import base64
import uuid

from bcjobs import ErrorInfo, ItemOutcome, JobReport, JobState, ResultSummary
from bcjobs.rows import json_column
from shared.jobs.records import RESULT_BUDGET, bounded, needs_bounding

TABLE_PROPERTY_CHARS = 32 * 1024  # 64 KiB of UTF-16
QUEUE_MESSAGE_BYTES = 64 * 1024


def created(index: int) -> ItemOutcome:
    return ItemOutcome(index=index, status=201, id=str(uuid.uuid4()), etag='W/"JzQ0O3ZSUjBKTVdWenEyZz0nOw=="')


def refused(index: int) -> ItemOutcome:
    error = ErrorInfo(
        code="bc_validation",
        message=f"The field Number of table Item contains a value (B-{index}) that is not valid. " * 3,
        bc_code="BadRequest_InvalidRequestUrl",
        status=400,
        client_request_id=str(uuid.uuid4()),
        bc_request_id=str(uuid.uuid4()),
    )
    return ItemOutcome(index=index, status=400, error=error)


def test_a_small_batch_result_is_kept_whole() -> None:
    """150 succeeded items fit: the result is unchanged and not marked truncated."""
    result = ResultSummary(count=150, items=[created(n) for n in range(150)])
    assert not needs_bounding(result)
    assert bounded(result) is result


def test_a_thousand_item_result_keeps_counts_and_the_failing_items_within_both_limits() -> None:
    """1,000 items, every tenth failed: counts, failing items first, and it fits a Table property and a message."""
    items = [refused(n) if n % 10 == 0 else created(n) for n in range(1000)]
    result = ResultSummary(count=1000, items=items)
    assert needs_bounding(result)
    kept = bounded(result)
    assert (kept.items_truncated, kept.items_succeeded, kept.items_failed, kept.count) == (
        True,
        900,
        100,
        1000,
    )
    assert kept.items
    assert all(item.error is not None for item in kept.items)
    assert [item.index for item in kept.items] == list(range(0, 10 * len(kept.items), 10))
    column = json_column(kept)
    assert column is not None
    assert len(column.encode("utf-8")) <= RESULT_BUDGET < TABLE_PROPERTY_CHARS
    report = JobReport(job_id="b", state=JobState.FAILED, result=kept, error=items[0].error)
    assert len(base64.b64encode(report.to_json().encode("utf-8"))) < QUEUE_MESSAGE_BYTES


def test_an_all_succeeded_thousand_item_result_keeps_only_the_counts() -> None:
    """No item failed: the row holds the counts and an empty item list, marked truncated."""
    kept = bounded(ResultSummary(count=1000, items=[created(n) for n in range(1000)]))
    assert (kept.items, kept.items_truncated, kept.items_succeeded, kept.items_failed) == ([], True, 1000, 0)
