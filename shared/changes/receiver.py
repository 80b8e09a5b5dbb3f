"""The notification receiver: what `GET|POST /api/notifications/{connection}/{key}` answers BC.

Two rules shape it (reference (a) A2, A4, A7):
- **The handshake touches nothing.** BC creates or renews a subscription only if the notification URL answers
  `?validationToken=` with 200 and the token within 5 s (`ApiSubscriptionNotificationUrlTimeout`, 5000 ms). So
  `handshake` is pure: no service is built, no storage, Key Vault or BC call on that path, and a cold start
  answers as soon as the worker has imported the app.
- **Never a 4xx to anything that may be BC.** Any status but 2xx, 408, 429 and 5xx makes BC delete every
  subscription on the URL (codeunit 6154, `DeleteInvalidSubscriptions`). So malformed bodies, unknown connections,
  wrong keys and absurd sizes are counted (`bc.notifications.received`), logged and answered 202; the key and each
  item's clientState are checked in the expansion (constant time), never here (no secret lookup on the hot path).
  Storage trouble is the one 503: BC retries it (+1, +1, +1, +10, +100, +1,000 min) and nothing is lost.

A notification is queued as it came, split into parts under the queue's message size (notifications.py), and
answered 202.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import telemetry
from shared.changes.notifications import NotificationMessage, NotificationQueue, pack
from shared.clock import Clock
from shared.errors import IntegrationError
from shared.http import TEXT, Reply

logger = logging.getLogger(__name__)

VALIDATION_TOKEN = "validationToken"
# A body above this is no BC notification of one connection (1,000 items per subscription, then `collection`):
# counted, logged and answered 202, never queued; the reconciliation heals whatever it might have held.
MAX_BODY_BYTES = 4 * 1024 * 1024
_CONNECTION = re.compile(r"^[a-z0-9-]{1,40}$")  # shared.connections.Connection's name
_KEY = re.compile(r"^[0-9a-f]{32}$")  # the route key's shape (common decisions: 32 random hex)
_HEADER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")  # BC sends GUIDs; anything else is not logged or kept
_SEND_CONCURRENCY = 8
ACCEPTED = Reply(202, "", mimetype=TEXT)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One request to the receiver, as the trigger read it (header names lower-case)."""

    connection: str
    key: str = field(repr=False)
    query: Mapping[str, str] = field(default_factory=dict, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = field(default=b"", repr=False)

    def header_id(self, name: str) -> str | None:
        """BC's correlation header `name` when it looks like an id (never free text into logs)."""
        value = self.headers.get(name.lower())
        return value if value is not None and _HEADER_ID.fullmatch(value) else None


def handshake(incoming: Incoming) -> Reply | None:
    """BC's validation request answered with its token as text/plain (reference (a) A2); None if not one."""
    token = incoming.query.get(VALIDATION_TOKEN)
    if token is None:
        return None
    telemetry.notification_received("handshake")
    return Reply(200, token, mimetype=TEXT)


QueueGetter = Callable[[], Awaitable[NotificationQueue]]


async def receive(incoming: Incoming, queue: QueueGetter, clock: Clock) -> Reply:
    """Queue a notification and answer 202; 503 only when storage fails (BC retries)."""
    items = _items(incoming)
    if isinstance(items, Refusal):
        _refused(incoming, items)
        return ACCEPTED
    messages = _messages(incoming, items, clock)
    try:
        await _send_all(await queue(), messages)
    except IntegrationError as exc:  # NotificationQueueError, or settings that give no queue
        telemetry.notification_received("storage_failed")
        logger.warning(
            "notification for connection %s not queued, answered 503 (BC retries): %s",
            incoming.connection,
            exc,
            extra=_log_extra(incoming, "changes.notification_unqueued"),
        )
        return Reply(503, "", {"Retry-After": "60"}, TEXT)
    _note_queued(incoming, len(items), len(messages))
    return ACCEPTED


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not queued (its `outcome` is the metric's word); it is still answered 202."""

    outcome: str
    why: str


def _items(incoming: Incoming) -> list[dict[str, Any]] | Refusal:
    """BC's items, or why the request is refused."""
    if not _CONNECTION.fullmatch(incoming.connection) or not _KEY.fullmatch(incoming.key):
        return Refusal("refused", "the route names no possible connection and key")
    if len(incoming.body) > MAX_BODY_BYTES:
        return Refusal("too_large", f"a body of {len(incoming.body)} bytes")
    try:
        body = json.loads(incoming.body)
    except (ValueError, RecursionError):
        return Refusal("malformed", "the body is not JSON")
    values = body.get("value") if isinstance(body, dict) else None
    items = [item for item in values if isinstance(item, dict)] if isinstance(values, list) else []
    if not items:
        return Refusal("malformed", "the body has no `value` list of items")
    return items


def _refused(incoming: Incoming, refusal: Refusal) -> None:
    telemetry.notification_received(refusal.outcome)
    shown = incoming.connection if _CONNECTION.fullmatch(incoming.connection) else "(not a connection name)"
    logger.warning(
        "notification request for %s answered 202 and dropped: %s",
        shown,
        refusal.why,
        extra=_log_extra(incoming, "changes.notification_dropped") | {"outcome": refusal.outcome},
    )


def _messages(incoming: Incoming, items: list[dict[str, Any]], clock: Clock) -> list[NotificationMessage]:
    groups = list(pack(items))
    left_out = len(items) - sum(len(group) for group in groups)
    if left_out:
        telemetry.notification_received("too_large")
        logger.warning(
            "%d notification item(s) for %s too large for a queue message: dropped",
            left_out,
            incoming.connection,
            extra=_log_extra(incoming, "changes.notification_dropped") | {"outcome": "too_large"},
        )
    received = clock.now()
    return [_message(incoming, group, received, i + 1, len(groups)) for i, group in enumerate(groups)]


def _message(
    incoming: Incoming, group: list[dict[str, Any]], received: datetime, part: int, parts: int
) -> NotificationMessage:
    return NotificationMessage(
        connection=incoming.connection,
        key=incoming.key,
        correlation_id=incoming.header_id("x-ms-correlation-id"),
        client_request_id=incoming.header_id("clientRequestId"),
        received_at=received,
        part=part,
        parts=parts,
        value=tuple(group),
    )


async def _send_all(queue: NotificationQueue, messages: list[NotificationMessage]) -> None:
    """Send the parts, a few at once (a big body must still be answered well within BC's timeout)."""
    gate = asyncio.Semaphore(_SEND_CONCURRENCY)

    async def send(message: NotificationMessage) -> None:
        async with gate:
            await queue.send(message)

    await asyncio.gather(*(send(message) for message in messages))


def _note_queued(incoming: Incoming, items: int, parts: int) -> None:
    telemetry.notification_received("queued")
    logger.info(
        "notification for %s queued: %d item(s) in %d message(s)",
        incoming.connection,
        items,
        parts,
        extra=_log_extra(incoming, "changes.notification_queued") | {"items": items, "parts": parts},
    )


def _log_extra(incoming: Incoming, event: str) -> dict[str, Any]:
    return {"event": event, "correlation_id": incoming.header_id("x-ms-correlation-id")}
