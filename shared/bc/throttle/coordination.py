"""The coordination row shared by every process throttling one BC identity, and the storage seam for it.

One row per identity holds the live members (each with the time it may start sending and the time its lease
runs out) and the shared "paused until". Every change is a compare-and-swap on the row's ETag, so joins are
serialised: two processes starting together cannot both believe they are alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Member:
    """A process sharing the identity's budget: it may send from `active_from` until `lease_until` (epoch s).

    `low`: a *feed-only member*, one that has asked only low permits so far; the low members share the budget's
    reserve, never an equal share (plan.py). A row written before the field existed holds normal members only.
    """

    id: str
    active_from: float
    lease_until: float
    low: bool = False


@dataclass(frozen=True, slots=True)
class CoordinationState:
    """The content of the coordination row."""

    members: tuple[Member, ...] = ()
    paused_until: float = 0.0

    def live(self, now: float) -> tuple[Member, ...]:
        """Members whose lease has not run out, in share order (oldest first, then by id)."""
        alive = (member for member in self.members if member.lease_until > now)
        return tuple(sorted(alive, key=lambda member: (member.active_from, member.id)))


@dataclass(frozen=True, slots=True)
class VersionedState:
    """A state as read, with the ETag a compare-and-swap must match."""

    state: CoordinationState
    etag: str


class CoordinationStore(Protocol):
    """Reads and compare-and-swaps the coordination row of an identity; counts its storage transactions."""

    @property
    def transactions(self) -> int:
        """Storage transactions made so far (each read, write or failed write counts one)."""
        ...

    async def read(self, key: str) -> VersionedState | None:
        """The row, or None when it does not exist yet; ThrottleStorageError when storage fails."""
        ...

    async def write(self, key: str, state: CoordinationState, etag: str | None) -> str:
        """Replace the row if its ETag is still `etag` (None: create it); return the new ETag.

        Raises StaleCoordinationStateError when another process wrote first, ThrottleStorageError otherwise.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
