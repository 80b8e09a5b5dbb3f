"""An in-memory CoordinationStore behind shared.bc.throttle's seam, for functional and integration tests."""

from __future__ import annotations

from dataclasses import replace

from shared.bc.errors import StaleCoordinationStateError, ThrottleStorageError
from shared.bc.throttle import CoordinationState, VersionedState


class MemoryCoordinationStore:
    """A CoordinationStore in memory (several throttles of one test share it); `outage` makes every call fail."""

    def __init__(self) -> None:
        self._rows: dict[str, VersionedState] = {}
        self._versions = 0
        self._transactions = 0
        self.outage = False

    @property
    def transactions(self) -> int:
        """Calls made so far."""
        return self._transactions

    def _count(self) -> None:
        self._transactions += 1
        if self.outage:
            raise ThrottleStorageError("coordination storage is unavailable (simulated outage)")

    async def read(self, key: str) -> VersionedState | None:
        """The stored row, if any."""
        self._count()
        return self._rows.get(key)

    async def write(self, key: str, state: CoordinationState, etag: str | None) -> str:
        """Compare-and-swap on a version counter."""
        self._count()
        current = self._rows.get(key)
        if (current.etag if current else None) != etag:
            raise StaleCoordinationStateError("the coordination row changed since it was read")
        self._versions += 1
        new_etag = f"v{self._versions}"
        self._rows[key] = VersionedState(replace(state), new_etag)
        return new_etag

    async def close(self) -> None:
        """Nothing to release."""
