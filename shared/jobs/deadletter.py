"""The poison handler: a message the host gave up on (maxDequeueCount deliveries failed) is recorded, never lost.

The job's row (or, for a message that names no valid job id, a row keyed by the poison message: the host's
copy gets a new id, so the `msg-<id>` a job without jobId ran under cannot be found again) moves to
`dead_lettered` with the last error the pipeline recorded and the dequeue count, and a report goes to the results
queue. A job that already reached a terminal state keeps it.

What happens when recording fails, on the real host: `bc-jobs-poison` has no poison queue of its own (the queue
extension gives none to a name ending in "-poison": QueueListenerFactory.CreatePoisonQueueReference, azure-sdk-
for-net). A failed invocation is not released: the message stays invisible for the rest of its 10-minute lease,
and after maxDequeueCount deliveries the host never invokes the function for it again (it reappears, skipped,
until its time-to-live ends; QueueProcessor.BeginProcessingMessageAsync / CompleteProcessingMessageAsync). So:
- each delivery rides out short storage failures itself (`PoisonRetry`: a few tries with backoff, a few minutes
  at most, far below functionTimeout), then raises so the host delivers again ten minutes later;
- the delivery the host will not give again (dequeue count >= maxDequeueCount) logs `jobs.dead_letter_failed`
  at error level, naming the job (alert `bc-dead-letter-failed`), and re-drives the message: a fresh copy goes
  to `bc-jobs-poison`, visible after the pipeline's longest backoff and expiring when the original would have,
  so once storage works again the job still ends `dead_lettered`. Only when that send fails too does the
  invocation fail, leaving the message where the host keeps it until its TTL (the alert says so; the runbook
  says how to re-drive it by hand).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime

from bcjobs import POISON_QUEUE, ErrorInfo, JobState
from bcjobs.models import JOB_ID_PATTERN
from shared.backoff import exponential_backoff
from shared.clock import Clock
from shared.errors import IntegrationError
from shared.jobs.processor import Delivery
from shared.jobs.queues import JobQueues, PoisonRedrive, storage_redrive
from shared.jobs.records import JobRecord, JobStore
from shared.settings import JobSettings, StorageSettings

logger = logging.getLogger(__name__)
# host.json extensions.queues.maxDequeueCount (a test keeps the two equal). The poison copy is a new message, so
# its own dequeue count says nothing about how often the job's message was tried on bc-jobs; on bc-jobs-poison it
# counts this handler's deliveries, and the one that reaches this number is the last the host gives.
HOST_MAX_DEQUEUE_COUNT = 5
# Storage's default message time-to-live (learn.microsoft.com/rest/api/storageservices/put-message, messagettl),
# which the host's poison copy gets: a re-driven copy of a message whose expiry the trigger did not say lives this long.
DEFAULT_TTL_SECONDS = 7 * 24 * 3600
_MAX_TRY_WAIT_SECONDS = 60.0


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


@dataclass(frozen=True, slots=True, kw_only=True)
class PoisonRetry:
    """How one poison delivery rides out storage failures, and when a re-driven copy comes back.

    The backoff numbers come from the job settings (`from_settings`), so they have no default here."""

    base_seconds: float
    cap_seconds: float
    redrive_delay_seconds: float
    tries: int = 5
    budget_seconds: float = 180.0  # waits of one delivery, in all: far below functionTimeout (10 min)

    @classmethod
    def from_settings(cls, jobs: JobSettings) -> PoisonRetry:
        """The job pipeline's backoff numbers; a re-driven copy waits the longest backoff (BC_JOB_BACKOFF_CAP)."""
        return cls(
            base_seconds=jobs.backoff_base_seconds,
            cap_seconds=min(_MAX_TRY_WAIT_SECONDS, jobs.backoff_cap_seconds),
            redrive_delay_seconds=jobs.backoff_cap_seconds,
        )

    def wait(self, failures: int, waited: float) -> float | None:
        """Seconds before the next try after `failures` failed ones; None when no try is left."""
        delay = exponential_backoff(failures, self.base_seconds, self.cap_seconds, jitter=0.5)
        if failures >= self.tries or waited + delay > self.budget_seconds:
            return None
        return delay


@dataclass(frozen=True, slots=True)
class PoisonHandler:
    """One poison delivery: record it (with retries); on the host's last delivery, report and re-drive."""

    record: Callable[[Delivery], Awaitable[JobState]]
    redrive: Callable[[], AbstractAsyncContextManager[PoisonRedrive]]
    retry: PoisonRetry
    clock: Clock

    async def handle(self, delivery: Delivery, expires_at: datetime | None) -> JobState | None:
        """The state the job ended in; None when it was re-driven instead. Raises when the host should (or,
        on its last delivery, can only) keep the message."""
        try:
            return await self._record_with_retries(delivery)
        except Exception as exc:
            # Whatever failed (storage, or building the pipeline): on the last delivery it must be reported.
            if delivery.dequeue_count < HOST_MAX_DEQUEUE_COUNT:
                raise
            if not await self._last_delivery_failed(delivery, expires_at, exc):
                raise
            return None

    async def _record_with_retries(self, delivery: Delivery) -> JobState:
        failures, waited = 0, 0.0
        while True:
            try:
                return await self.record(delivery)
            except IntegrationError:
                failures += 1
                delay = self.retry.wait(failures, waited)
                if delay is None:
                    raise
            await self.clock.sleep(delay)
            waited += delay

    async def _last_delivery_failed(
        self, delivery: Delivery, expires_at: datetime | None, exc: Exception
    ) -> bool:
        """Re-drive the message if it would still live to be seen; log the job's failure either way."""
        delay = int(self.retry.redrive_delay_seconds)
        left = DEFAULT_TTL_SECONDS if expires_at is None else (expires_at - self.clock.now()).total_seconds()
        redriven = False
        if left > delay:  # a copy expiring before it is visible would only hide the message's end
            # Any failure here is reported below (the log must be written whatever the send did).
            with contextlib.suppress(Exception):
                async with self.redrive() as queue:
                    await queue.redrive(delivery.text, delay, int(left))
                redriven = True
        _log_failed(delivery, exc, redriven, delay)
        return redriven


def _log_failed(delivery: Delivery, exc: Exception, redriven: bool, delay: int) -> None:
    job_id = named_job_id(delivery.text) or delivery.derived_job_id
    then = (
        f"re-driven to {POISON_QUEUE}, back in {delay} s"
        if redriven
        else f"left on {POISON_QUEUE} until its TTL"
    )
    logger.error(
        "job %s could not be dead-lettered on the host's last delivery (%s); %s",
        job_id,
        type(exc).__name__,
        then,
        extra={
            "event": "jobs.dead_letter_failed",
            "job_id": job_id,
            "message_id": delivery.message_id,
            "dequeue_count": delivery.dequeue_count,
            "error_type": type(exc).__name__,
            "redriven": redriven,
        },
    )


def poison_handler(
    record: Callable[[Delivery], Awaitable[JobState]],
    jobs: JobSettings,
    storage: StorageSettings,
    clock: Clock,
) -> PoisonHandler:
    """The handler the trigger runs: the pipeline's backoff, re-drives through its own Storage queue client."""
    return PoisonHandler(record, lambda: storage_redrive(storage), PoisonRetry.from_settings(jobs), clock)
