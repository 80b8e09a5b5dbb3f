"""Queue triggers on Azure Storage queues (Azurite locally), with host.json extensions.queues semantics.

- Fetch up to batchSize messages; fetch again once in-flight invocations drop to newBatchThreshold, so at
  most batchSize + newBatchThreshold run at once per function (learn …/functions-bindings-storage-queue).
- Bodies are base64-decoded when messageEncoding is base64; a body that does not decode counts as a failed
  try, so it ends in poison like on the host (learn …/functions-bindings-storage-queue-trigger, poison messages).
- Success deletes the message. A failure with dequeue_count < maxDequeueCount makes it visible again after
  visibilityTimeout; at maxDequeueCount it is copied unchanged to `<queue>-poison` (created if missing) and
  deleted (WebJobs QueueProcessor.CompleteProcessingMessageAsync). A message already received more than
  maxDequeueCount times (e.g. the host died mid-run) goes to poison without a run.
- A queue whose name already ends in `-poison` (or whose poison name would be no valid queue name) has no poison
  queue (QueueListenerFactory.CreatePoisonQueueReference returns null). Then a failed message is not released:
  it stays invisible for the rest of the lease it was received with (CompleteProcessingMessageAsync: "leave the
  message invisible when processing fails to prevent a fast infinite loop"); and one received more than
  maxDequeueCount times is neither run, moved nor deleted (BeginProcessingMessageAsync returns false after
  HandlePoisonMessageAsync, which does nothing without a poison queue; QueueListener.ProcessMessageAsync then
  returns): it comes back after every lease, skipped each time, until its time-to-live ends.
  Sources: github.com/Azure/azure-sdk-for-net, sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/
  Shared/Queues/{QueueProcessor,QueueListener,QueuesOptions}.cs and
  sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Queues/src/Listeners/QueueListenerFactory.cs.
- Idle polling backs off exponentially with jitter from 100 ms up to maxPollingInterval; a message devhost
  itself enqueued wakes the listener at once (the host's shared queue watcher does the same).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
from collections import defaultdict
from enum import Enum

from azure.core.exceptions import AzureError
from azure.functions.queue import QueueMessage as FunctionQueueMessage
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient

from devhost.catalog import QueueFunction
from devhost.errors import MessageDecodeError
from devhost.hostconfig import QueueOptions
from devhost.invoker import Invoker
from devhost.storage import StorageClients
from devhost.waiting import wait_any

_log = logging.getLogger("devhost.queue")
LISTENER_RETRY_MIN, LISTENER_RETRY_MAX = 2.0, 120.0  # seconds: FunctionListener's default retry intervals
MIN_POLLING_INTERVAL = 0.1
# While a message runs it stays invisible to other receivers: the host leases for 10 minutes and renews the lease
# when it is half gone, and so does devhost. The devhost-only setting DEVHOST_MESSAGE_LEASE_SECONDS shortens it,
# so a test can see a killed worker's message come back.
MESSAGE_LEASE_SECONDS = 600
POISON_SUFFIX = "-poison"
# Azure queue names are 3..63 characters (learn.microsoft.com/rest/api/storageservices/naming-queues-and-metadata);
# the host gives no poison queue when `<name>-poison` would be longer (QueueClientExtensions.IsValidQueueName).
MAX_QUEUE_NAME_LENGTH = 63


class Settle(Enum):
    """What the listener does with a message, before a run (RUN) or after a failed one."""

    RUN = "run"
    RELEASE = "release"  # visible again after visibilityTimeout
    POISON = "poison"  # copied to <queue>-poison, then deleted
    LEAVE = "leave"  # untouched: invisible until the lease it was received with runs out


def poison_queue_name(queue_name: str) -> str | None:
    """The queue's poison queue, or None when the host gives it none (QueueListenerFactory.
    CreatePoisonQueueReference: the name already ends in "-poison", compared ordinally, or the poison name
    would be too long)."""
    if queue_name.endswith(POISON_SUFFIX) or len(queue_name + POISON_SUFFIX) > MAX_QUEUE_NAME_LENGTH:
        return None
    return queue_name + POISON_SUFFIX


def before_run(dequeue_count: int, max_dequeue_count: int, has_poison_queue: bool) -> Settle:
    """QueueProcessor.BeginProcessingMessageAsync: a message received more than maxDequeueCount times is not run;
    it goes to poison, or, with no poison queue, is left as received."""
    if dequeue_count <= max_dequeue_count:
        return Settle.RUN
    return Settle.POISON if has_poison_queue else Settle.LEAVE


def after_failure(dequeue_count: int, max_dequeue_count: int, has_poison_queue: bool) -> Settle:
    """QueueProcessor.CompleteProcessingMessageAsync for a failed run: released, moved to poison at
    maxDequeueCount, or, with no poison queue, never released (left invisible for the rest of its lease)."""
    if not has_poison_queue:
        return Settle.LEAVE
    return Settle.POISON if dequeue_count >= max_dequeue_count else Settle.RELEASE


def decode_body(content: str, encoding: str) -> bytes:
    """The message body the function sees: base64-decoded when messageEncoding is base64."""
    if encoding != "base64":
        return content.encode("utf-8")
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MessageDecodeError("message is not valid base64 (messageEncoding is base64)") from exc


def polling_delay(idle_polls: int, maximum: float, jitter: float) -> float:
    """Seconds to wait after `idle_polls` empty polls in a row: 0.1 s doubling, +-20 % jitter, capped."""
    base: float = MIN_POLLING_INTERVAL * 2.0 ** min(idle_polls, 30)
    return min(base * (0.8 + 0.4 * jitter), maximum)


def function_message(message: QueueMessage, body: bytes) -> FunctionQueueMessage:
    """The azure.functions QueueMessage (with dequeue_count and times) the worker passes."""
    return FunctionQueueMessage(
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )


class QueueWatcher:
    """Lets output bindings wake the listeners of a queue devhost just wrote to."""

    def __init__(self) -> None:
        self._events: dict[str, list[asyncio.Event]] = defaultdict(list)

    def watch(self, queue_name: str) -> asyncio.Event:
        """An event set whenever devhost enqueues to queue_name."""
        event = asyncio.Event()
        self._events[queue_name.lower()].append(event)
        return event

    def notify(self, queue_name: str) -> None:
        """Wake every listener of queue_name."""
        for event in self._events.get(queue_name.lower(), []):
            event.set()


class QueueListener:
    """Polls one queue for one function until stopping is set, then lets in-flight messages finish."""

    def __init__(
        self,
        function: QueueFunction,
        storage: StorageClients,
        invoker: Invoker,
        options: QueueOptions,
        watcher: QueueWatcher,
        lease_seconds: int = MESSAGE_LEASE_SECONDS,
    ) -> None:
        self._lease_seconds = lease_seconds
        self._function = function
        self._storage = storage
        self._invoker = invoker
        self._options = options
        self._wake = watcher.watch(function.queue_name)
        self._slot_freed = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._client: QueueClient | None = None

    async def prepare(self) -> bool:
        """Create the queue if it is missing, in one attempt (no SDK retries); False, logged, if that failed.

        A listener that cannot start does not hold or fail the host: the WebJobs SDK's FunctionListener
        (azure-webjobs-sdk, src/Microsoft.Azure.WebJobs.Host/Listeners/FunctionListener.cs) logs "The listener
        for function '...' was unable to start" and, since azure-functions-host sets AllowPartialHostStartup
        (src/WebJobs.Script/ScriptHostBuilderExtensions.cs), retries it in the background while the host serves.
        """
        try:
            self._client = await self._storage.queue(
                self._function.connection, self._function.queue_name, retry_total=0
            )
        except (AzureError, OSError) as exc:
            _log.warning(
                "The listener for function '%s' was unable to start: %s", self._function.spec.name, exc
            )
            return False
        return True

    async def _start_with_backoff(self, stopping: asyncio.Event) -> QueueClient | None:
        """Retry prepare() until it works or stopping is set: randomized exponential backoff from 2 s to 2 min,
        FunctionListener's RetryStartWithBackoffAsync defaults."""
        attempt = 0
        while self._client is None:
            jitter = 0.8 + 0.4 * random.random()  # noqa: S311 - spreads retries, not security
            delay = min(LISTENER_RETRY_MAX, LISTENER_RETRY_MIN * 2**attempt) * jitter
            if await wait_any(stopping, within=delay):
                return None
            attempt += 1
            if await self.prepare():
                _log.info(
                    "Listener started for function '%s' after %d retries", self._function.spec.name, attempt
                )
        return self._client

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll, dispatch and back off; returns when stopped and every started message is settled."""
        client = self._client or await self._start_with_backoff(stopping)
        if client is None:
            return
        idle_polls = 0
        while not stopping.is_set():
            if len(self._in_flight) > self._options.new_batch_threshold:
                self._slot_freed.clear()
                await wait_any(stopping, self._slot_freed)
                continue
            messages = await self._receive(client)
            for message in messages:
                self._start(client, message)
            if messages:
                idle_polls = 0
                continue
            self._wake.clear()
            maximum = self._options.max_polling_interval.total_seconds()
            jitter = random.random()  # noqa: S311 - spreads polls, not security
            if await wait_any(stopping, self._wake, within=polling_delay(idle_polls, maximum, jitter)):
                idle_polls = 0
            else:
                idle_polls += 1
        if self._in_flight:
            await asyncio.gather(*self._in_flight)

    async def _receive(self, client: QueueClient) -> list[QueueMessage]:
        batch = self._options.batch_size
        try:
            pages = client.receive_messages(
                messages_per_page=batch, max_messages=batch, visibility_timeout=self._lease_seconds
            )
            return [message async for message in pages]
        except AzureError as exc:
            _log.warning("Polling %s failed: %s", self._function.queue_name, exc)
            return []

    def _start(self, client: QueueClient, message: QueueMessage) -> None:
        task = asyncio.create_task(self._process(client, message))
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def _process(self, client: QueueClient, message: QueueMessage) -> None:
        limit = self._options.max_dequeue_count
        count = message.dequeue_count or 0
        has_poison = poison_queue_name(self._function.queue_name) is not None
        try:
            action = before_run(count, limit, has_poison)
            if action is Settle.RUN:
                renewing = asyncio.create_task(self._renew_lease(client, message))
                try:
                    succeeded = await self._run(message)
                finally:
                    renewing.cancel()
                    await asyncio.gather(renewing, return_exceptions=True)
                if succeeded:
                    await client.delete_message(message)
                    return
                action = after_failure(count, limit, has_poison)
            await self._settle(client, message, action)
        except AzureError as exc:
            # As the host: a message someone else took over (pop receipt mismatch) or deleted is left alone;
            # any other storage failure leaves the message to reappear when its lease runs out.
            _log.warning("Could not settle message %s on %s: %s", message.id, self._function.queue_name, exc)

    async def _renew_lease(self, client: QueueClient, message: QueueMessage) -> None:
        """Keep the message invisible while it runs: renewed when its lease is half gone, as the host does
        (QueueListener.CreateUpdateMessageVisibilityTimer: "Update a message's visibility when it is halfway to
        expiring"); the new pop receipt is what settling it later must use."""
        while True:
            await asyncio.sleep(self._lease_seconds / 2)
            try:
                renewed = await client.update_message(message, visibility_timeout=self._lease_seconds)
            except AzureError as exc:  # as the host: logged, the run goes on; the message may come back
                _log.warning("Could not renew the lease of message %s: %s", message.id, exc)
                continue
            message.pop_receipt = renewed.pop_receipt
            message.next_visible_on = renewed.next_visible_on

    async def _settle(self, client: QueueClient, message: QueueMessage, action: Settle) -> None:
        if action is Settle.POISON:
            await self._to_poison(client, message)
        elif action is Settle.RELEASE:
            visibility = int(self._options.visibility_timeout.total_seconds())
            await client.update_message(message, visibility_timeout=visibility)
        else:
            self._leave(message)

    def _leave(self, message: QueueMessage) -> None:
        """No poison queue: the message is neither released nor deleted (the host logs nothing for it either)."""
        fields = {
            "event": "left_invisible",
            "queue": self._function.queue_name,
            "message_id": message.id,
            "dequeue_count": message.dequeue_count,
        }
        _log.debug(
            "Message %s on %s (dequeue count %s) left invisible until its lease ends: the queue has no poison queue",
            message.id,
            self._function.queue_name,
            message.dequeue_count,
            extra={"fields": fields},
        )

    async def _run(self, message: QueueMessage) -> bool:
        details = {
            "queue": self._function.queue_name,
            "message_id": message.id,
            "dequeue_count": message.dequeue_count,
        }
        try:
            body = decode_body(message.content, self._options.message_encoding)
        except MessageDecodeError as exc:
            _log.error(
                "Message %s on %s: %s", message.id, self._function.queue_name, exc, extra={"fields": details}
            )
            return False
        result = await self._invoker.invoke(
            self._function.spec, function_message(message, body), reason="queue", details=details
        )
        return result.succeeded

    async def _to_poison(self, client: QueueClient, message: QueueMessage) -> None:
        poison_name = f"{self._function.queue_name}{POISON_SUFFIX}"
        _log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self._options.max_dequeue_count,
            poison_name,
            extra={
                "fields": {"event": "poison", "queue": self._function.queue_name, "message_id": message.id}
            },
        )
        poison = await self._storage.queue(self._function.connection, poison_name)
        await poison.send_message(message.content)  # the stored text as is: still base64 when it was
        await client.delete_message(message)
