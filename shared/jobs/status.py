"""What `GET /api/jobs/{jobId}` shows: the job's report (with every batch item's outcome) plus its BC interactions."""

from __future__ import annotations

import re
from typing import Any

from bcjobs.models import JOB_ID_PATTERN
from shared.jobs.audit import AuditLog
from shared.jobs.records import JobStore


def valid_job_id(job_id: str) -> bool:
    """True for an id the contract allows (anything else cannot name a job)."""
    return re.fullmatch(JOB_ID_PATTERN, job_id) is not None


async def job_status(store: JobStore, audit: AuditLog, job_id: str) -> dict[str, Any] | None:
    """The report with `interactions`, as wire JSON; None for an unknown job."""
    record = await store.get(job_id)
    if record is None:
        return None
    body: dict[str, Any] = record.report().model_dump(mode="json", by_alias=True, exclude_none=True)
    if record.result is not None and record.result.items_truncated:
        # The row keeps the counts and the first failing items; this answer has room for every item's outcome.
        kept = await audit.read_items(job_id)
        body["result"]["items"] = [
            item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in kept
        ]
        body["result"]["itemsTruncated"] = False
    interactions = await audit.read(job_id)
    body["interactions"] = [
        item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in interactions
    ]
    return body
