"""Azurite's queue service under its own garbage collector: the slowest request in the 70 s after N messages were
sent and all but 1,000 deleted, on the local world's Azurite (`Azurite()`).

`python -m bench.azurite_queue_gc 6000`. Why it exists: localworld/azurite.py `_persistence`. With the queue in
memory (before stop 30) the slowest request took 22.7 s, once a minute; with it on disk, 0.01 s.
"""

from __future__ import annotations

import asyncio
import sys
import time

from azure.storage.queue.aio import QueueClient

from localworld.azurite import Azurite

_QUEUE = "gc-probe"
_KEPT = 1_000  # messages left in the queue: the sweep must walk what is still referenced too


async def _churn(connection_string: str, count: int) -> None:
    """Send `count` messages, then receive and delete all but `_KEPT` of them."""
    async with QueueClient.from_connection_string(connection_string, _QUEUE) as queue:
        await queue.create_queue()
        gate = asyncio.Semaphore(32)

        async def send(number: int) -> None:
            async with gate:
                await queue.send_message(f"message {number}")

        await asyncio.gather(*(send(number) for number in range(count)))
        deleted = 0
        while deleted < count - _KEPT:
            page = [m async for m in queue.receive_messages(messages_per_page=32, max_messages=32)]
            await asyncio.gather(*(queue.delete_message(message) for message in page))
            deleted += len(page)


async def _slowest(connection_string: str, seconds: float) -> float:
    """The slowest of one small request every 0.2 s for `seconds` (a full GC interval is 60 s)."""
    slowest = 0.0
    async with QueueClient.from_connection_string(connection_string, _QUEUE) as queue:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            await queue.get_queue_properties()
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.2)
    return slowest


def main(count: int) -> None:
    with Azurite() as endpoints:
        asyncio.run(_churn(endpoints.connection_string, count))
        slowest = asyncio.run(_slowest(endpoints.connection_string, 70.0))
    print(f"{count} messages, slowest queue request in the next 70 s: {slowest:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6_000)
