"""Wiring of the feed's inbound side per process and event loop: the receiver's queue (issue 22).

Built on the first notification, never on the handshake path (receiver.py): the validation request must not wait
for a storage client, and a settings problem must not turn BC's handshake into an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from bcjobs.changes import NOTIFICATIONS_QUEUE
from shared.azure_clients import OwnedQueueClient, queue_client
from shared.changes.notifications import NotificationQueue, StorageNotificationQueue
from shared.per_loop import PerLoop
from shared.settings import Settings, get_settings


@dataclass
class ReceiverServices:
    """The `bc-notifications` queue client of this process and loop."""

    owned: OwnedQueueClient
    queue: StorageNotificationQueue

    async def aclose(self) -> None:
        """Close the queue client."""
        await self.owned.close()


async def _build(settings: Settings) -> ReceiverServices:
    owned = queue_client(settings.storage, NOTIFICATIONS_QUEUE)
    return ReceiverServices(owned, StorageNotificationQueue(owned.client))


_receiver: PerLoop[Settings, ReceiverServices] = PerLoop(_build)


async def notification_queue() -> NotificationQueue:
    """This process's notifications queue (SettingsError when storage is not configured: the receiver's 503)."""
    return (await _receiver.get(get_settings())).queue


async def held_notifications() -> StorageNotificationQueue:
    """The same queue, for the expansion to queue a message again later (events held: expansion_compose.py)."""
    return (await _receiver.get(get_settings())).queue


async def close_receiver_services() -> None:
    """Close the running loop's receiver clients (local host shutdown, tests)."""
    await _receiver.close()
