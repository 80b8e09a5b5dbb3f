"""The `bc-notifications` queue: BC's notification bodies as they came, with what the receiver knew, in parts that fit.

A message is base64 of the JSON of `NotificationMessage` (host.json's messageEncoding is `none`: the product
encodes, as for `bc-jobs`). A Storage queue message is at most 64 KiB
(learn.microsoft.com/azure/storage/queues/storage-queues-introduction), so after base64 (4/3) the JSON must stay
under 48 KiB: `split` packs BC's items into as many messages as needed. How big BC's bodies get: one POST per
notification URL carries the pending items of every subscription on it (codeunit 6154,
`GetPayloadPerNotificationUrl`; reference (a) A3), up to 1,000 per subscription before they collapse into one
`collection` item, each about 300 to 500 bytes: a connection with a few busy watches sends a few hundred KB,
i.e. ten or so messages.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue.aio import QueueClient
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import IntegrationError

# 64 KiB per message, base64 takes 4 bytes per 3: JSON up to 49,152 bytes; keep a margin for the envelope.
MAX_MESSAGE_JSON_BYTES = 48_000
_ENVELOPE_MARGIN = 1_000


class NotificationQueueError(IntegrationError):
    """The notifications queue could not be written (storage): the receiver answers 503 and BC retries."""


class NotificationMessage(BaseModel):
    """One part of one BC notification POST: the route's connection and key, BC's ids, when it came, its items."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    connection: str
    key: str = Field(repr=False)  # the route's secret path segment: compared in the expansion, never logged
    correlation_id: str | None = Field(default=None, alias="correlationId")  # BC's x-ms-correlation-id
    client_request_id: str | None = Field(default=None, alias="clientRequestId")
    received_at: datetime = Field(alias="receivedAt")
    part: int = 1
    parts: int = 1
    value: tuple[dict[str, Any], ...]  # BC's items as they came (subscriptionId, clientState, resource, ...)

    def encode(self) -> str:
        """The queue text: base64 of the JSON (by alias)."""
        text = self.model_dump_json(by_alias=True)
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> NotificationMessage:
        """From the queue text; ValueError (pydantic's ValidationError is one) when it is not one of ours."""
        return cls.model_validate_json(base64.b64decode(text.encode("ascii"), validate=True))


def item_size(item: dict[str, Any]) -> int:
    """The bytes an item adds to a message's JSON (its text and a comma)."""
    return len(json.dumps(item, separators=(",", ":")).encode("utf-8")) + 1


def pack(
    items: Sequence[dict[str, Any]], budget: int = MAX_MESSAGE_JSON_BYTES
) -> Iterator[list[dict[str, Any]]]:
    """Greedy groups of items whose JSON fits `budget` (less the envelope); an item alone above it is left out."""
    group: list[dict[str, Any]] = []
    used, room = 0, budget - _ENVELOPE_MARGIN
    for item in items:
        size = item_size(item)
        if size > room:
            continue  # the caller counts what was left out (an item BC never sends this big)
        if used + size > room:
            yield group
            group, used = [], 0
        group.append(item)
        used += size
    if group:
        yield group


class NotificationQueue(Protocol):
    """Where the receiver puts notification messages."""

    async def send(self, message: NotificationMessage) -> None:
        """Enqueue one message; NotificationQueueError on storage failure."""
        ...


class StorageNotificationQueue:
    """NotificationQueue on the `bc-notifications` Storage queue (created on first use by this process)."""

    def __init__(self, client: QueueClient) -> None:
        self._client = client
        self._ensured = False

    async def send(self, message: NotificationMessage) -> None:
        """Create the queue once if needed, then send (never expiring: an unexpanded change is not dropped)."""
        try:
            if not self._ensured:
                with contextlib.suppress(ResourceExistsError):
                    await self._client.create_queue()
                self._ensured = True
            await self._client.send_message(message.encode(), time_to_live=-1)
        except AzureError as exc:
            raise NotificationQueueError(
                f"sending to {self._client.queue_name} failed ({type(exc).__name__})"
            ) from exc

    async def send_later(self, message: NotificationMessage, delay_seconds: float) -> None:
        """Queue the message again, visible after the delay: a new message, so the wait counts no delivery toward
        maxDequeueCount (learn.microsoft.com/rest/api/storageservices/put-message, `visibilitytimeout`)."""
        try:
            await self._client.send_message(
                message.encode(), visibility_timeout=max(1, round(delay_seconds)), time_to_live=-1
            )
        except AzureError as exc:
            raise NotificationQueueError(
                f"sending to {self._client.queue_name} failed ({type(exc).__name__})"
            ) from exc
