"""`PerLoop`: one service set per running event loop, built on first use and closed when it is replaced.

The aio SDK clients (azure-data-tables, azure-storage-queue, azure-keyvault-secrets, httpx) are bound to the loop
that made them, so each composition root (shared/auth/compose.py, shared/jobs/compose.py, the jobs front door)
keeps one set per process and running loop: built by the first call on a loop (concurrent first calls build
once), reused while the settings stay equal, closed and rebuilt when they change, and closed on request (tests,
the local host's shutdown). Loops are held weakly, so a finished loop's entry goes with it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar


class Closable(Protocol):
    """What a service set must offer: closing every client it owns."""

    async def aclose(self) -> None:
        """Close the set's clients."""
        ...


K = TypeVar("K")
T = TypeVar("T", bound=Closable)


class PerLoop(Generic[K, T]):
    """The running loop's `T`, built by `build(key)`; a call with a different key closes the old one first."""

    def __init__(self, build: Callable[[K], Awaitable[T]]) -> None:
        self._build = build
        self._held: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[K, T]] = (
            weakref.WeakKeyDictionary()
        )
        self._building: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def get(self, key: K) -> T:
        """The set for the running loop and `key`, built on first use (concurrent first calls build once)."""
        loop = asyncio.get_running_loop()
        held = self._held.get(loop)
        if held is not None and held[0] == key:  # every job's path: no lock made, taken or awaited
            return held[1]
        async with self._building.setdefault(loop, asyncio.Lock()):
            held = self._held.get(loop)
            if held is not None and held[0] == key:
                return held[1]
            if held is not None:
                del self._held[loop]
                await held[1].aclose()
            built = await self._build(key)
            self._held[loop] = (key, built)
            return built

    async def close(self) -> None:
        """Close and forget the running loop's set (tests, local host shutdown); nothing when there is none."""
        held = self._held.pop(asyncio.get_running_loop(), None)
        if held is not None:
            await held[1].aclose()
