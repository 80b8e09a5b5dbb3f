"""The poison handler: a message the host gave up on (maxDequeueCount deliveries failed) is recorded, never lost.

The job's row (or, for a message that names no valid job id, a row keyed by the poison message: the host's
copy gets a new id, so the `msg-<id>` a job without jobId ran under cannot be found again) moves to
`dead_lettered` with the last error the pipeline recorded and the dequeue count, and a report goes to the results
queue. A job that already reached a terminal state keeps it. Storage failures raise: the host retries.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re

from bcjobs import ErrorInfo, JobState
from bcjobs.models import JOB_ID_PATTERN
from shared.clock import Clock
from shared.jobs.processor import Delivery
from shared.jobs.queues import JobQueues
from shared.jobs.records import JobRecord
from shared.jobs.store import JobStore

logger = logging.getLogger(__name__)
# host.json extensions.queues.maxDequeueCount (a test keeps the two equal): the poison copy is a new message, so
# its own dequeue count says nothing about how often the job's message was tried.
HOST_MAX_DEQUEUE_COUNT = 5


class DeadLetters:
    """Records poison messages."""

    def __init__(self, store: JobStore, queues: JobQueues, clock: Clock) -> None:
        self._store = store
        self._queues = queues
        self._clock = clock

    async def record(self, delivery: Delivery) -> JobState:
        """Mark the message's job dead-lettered (unless it finished); the state the job ends in."""
        job_id = named_job_id(delivery.text) or delivery.derived_job_id
        now = self._clock.now()
        for _ in range(3):
            current = await self._store.get(job_id)
            # A running job is dead-lettered too, lease or not: the host only gives up after every delivery of
            # the message failed, and a run that still holds the lease is far more likely dead than alive.
            if current is not None and current.state.terminal:
                return current.state
            error = _error(current, delivery)
            if current is None:
                written = await self._store.insert(
                    JobRecord.ended_unread(job_id, JobState.DEAD_LETTERED, now, error, delivery.message_id)
                )
            else:
                written = await self._store.replace(
                    current.moved(JobState.DEAD_LETTERED, now, error=error, finished_by=delivery.message_id)
                )
            if written is not None:
                await self._queues.publish(written.report())
                _log(written, delivery)
                return JobState.DEAD_LETTERED
        return JobState.DEAD_LETTERED


def named_job_id(text: str) -> str | None:
    """The job id a message names, if it can be read at all (base64 JSON with a valid jobId)."""
    try:
        value = json.loads(base64.b64decode(text.strip(), validate=True))  # as bcjobs.wire.payload reads it
    except (binascii.Error, ValueError, RecursionError):
        return None
    job_id = value.get("jobId") if isinstance(value, dict) else None
    return job_id if isinstance(job_id, str) and re.fullmatch(JOB_ID_PATTERN, job_id) else None


def _error(current: JobRecord | None, delivery: Delivery) -> ErrorInfo:
    last = current.error if current is not None else None
    cause = f"; the last recorded error: {last.code}: {last.message}" if last else ""
    return ErrorInfo(
        code="dead_lettered",
        message=(
            f"the Functions host gave up on this message after {HOST_MAX_DEQUEUE_COUNT} failed deliveries "
            f"(host.json maxDequeueCount; kept in bc-jobs-poison as message {delivery.message_id}){cause}"
        ),
        bc_code=last.bc_code if last else None,
        client_request_id=last.client_request_id if last else None,
    )


def _log(record: JobRecord, delivery: Delivery) -> None:
    logger.error(
        "job %s dead-lettered after %d deliveries",
        record.job_id,
        delivery.dequeue_count,
        extra={
            "event": "jobs.dead_lettered",
            "job_id": record.job_id,
            "message_id": delivery.message_id,
            "dequeue_count": delivery.dequeue_count,
        },
    )
