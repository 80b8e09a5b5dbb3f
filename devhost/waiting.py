"""Waiting without guessing in the host's loops: wait for whichever event comes first, or a timeout."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_any(*events: asyncio.Event, within: float | None = None) -> bool:
    """Wait until one of the events is set or `within` seconds pass; True if an event was set."""
    if any(event.is_set() for event in events):
        return True
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for waiter in waiters:
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
    return bool(done)
