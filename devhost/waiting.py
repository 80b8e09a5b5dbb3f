"""Waiting without guessing: interruptible waits for the host's loops, and polling with a deadline for things
another process does (a file it writes, a port it opens), where there is nothing to wait on instead."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Return as soon as `condition()` holds; raise TimeoutError naming `what` once `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


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
