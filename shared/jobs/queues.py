"""The queues a job run writes to: a delayed copy of the job back on `bc-jobs`, and its report on `bc-results`;
and the poison handler's re-driven copy on `bc-jobs-poison` (shared/jobs/deadletter.py says why).

Facts: the queue output binding cannot delay a message (no such option in
learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-output;
github.com/Azure/azure-functions-host/issues/4176), so retries use
QueueClient.send_message(visibility_timeout=) (tests/integration/test_azurite_storage.py checks the delay on
Azurite); a visibility timeout is at most 7 days (learn.microsoft.com/rest/api/storageservices/put-message),
and `time_to_live=-1` keeps a parked job's copy from expiring before its deadline. host.json's messageEncoding
is `none`: both queues hold base64 text that the product encodes and decodes itself (bcjobs.wire), so no SDK
encode policy is used.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue.aio import QueueClient

from bcjobs import POISON_QUEUE, Job, JobReport
from bcjobs.wire import encode
from shared.azure_clients import queue_client
from shared.jobs.errors import JobQueueError
from shared.settings import StorageSettings

MAX_VISIBILITY_SECONDS = 7 * 24 * 3600 - 60


class JobQueues(Protocol):
    """Sends what a run produces."""

    async def requeue(self, job: Job, delay_seconds: float) -> None:
        """Put the job back on the jobs queue, invisible for `delay_seconds`."""
        ...

    async def publish(self, report: JobReport) -> None:
        """Put a terminal report on the results queue."""
        ...


class StorageJobQueues:
    """JobQueues on Azure Storage queues."""

    def __init__(self, jobs: QueueClient, reports: QueueClient) -> None:
        self._jobs = jobs
        self._reports = reports  # the `bc-results` queue (BC_RESULTS_QUEUE): it carries JobReports

    async def ensure(self) -> None:
        """Create the results queue if needed (the trigger's host creates the jobs queue)."""
        for client in (self._jobs, self._reports):
            try:
                await client.create_queue()
            except ResourceExistsError:
                pass
            except AzureError as exc:
                raise JobQueueError(f"queue creation failed ({type(exc).__name__})") from exc

    async def requeue(self, job: Job, delay_seconds: float) -> None:
        """A copy with a visibility delay, never expiring on its own."""
        delay = int(min(MAX_VISIBILITY_SECONDS, max(0.0, delay_seconds)) + 0.999)
        await self._send(self._jobs, encode(job), visibility_timeout=delay, time_to_live=-1)

    async def publish(self, report: JobReport) -> None:
        """The report as base64 JSON."""
        text = base64.b64encode(report.to_json().encode("utf-8")).decode("ascii")
        await self._send(self._reports, text, time_to_live=-1)

    async def _send(self, client: QueueClient, text: str, **options: int) -> None:
        try:
            await client.send_message(text, **options)
        except AzureError as exc:
            raise JobQueueError(f"sending to {client.queue_name} failed ({type(exc).__name__})") from exc


class PoisonRedrive(Protocol):
    """Puts a fresh copy of a poison message on bc-jobs-poison."""

    async def redrive(self, text: str, delay_seconds: int, ttl_seconds: int) -> None:
        """Send `text`, invisible for `delay_seconds`, expiring after `ttl_seconds`; JobQueueError on failure."""
        ...


class StoragePoisonRedrive:
    """PoisonRedrive on the Storage queue (the stored text as is: messageEncoding is none)."""

    def __init__(self, client: QueueClient) -> None:
        self._client = client

    async def redrive(self, text: str, delay_seconds: int, ttl_seconds: int) -> None:
        """Send the copy."""
        try:
            await self._client.send_message(text, visibility_timeout=delay_seconds, time_to_live=ttl_seconds)
        except AzureError as exc:
            raise JobQueueError(f"re-driving to {POISON_QUEUE} failed: {type(exc).__name__}") from exc


@contextlib.asynccontextmanager
async def storage_redrive(storage: StorageSettings) -> AsyncIterator[PoisonRedrive]:
    """A PoisonRedrive on its own client, closed after use: it must work when building the pipeline failed."""
    owned = queue_client(storage, POISON_QUEUE)
    try:
        yield StoragePoisonRedrive(owned.client)
    finally:
        await owned.close()
