"""The seam every path of the feed publishes through: exactly one event per entity version.

`publish` checks each event's id against the change log first (a version seen before, by any path, is not
published again), writes the log row, then sends the event to `bc-changes`; a crash between the two leaves a
row whose event is re-sent by the next publish of that id (at-least-once on the queue, never two ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bcjobs.changes import ChangeEvent


@dataclass(frozen=True, slots=True)
class Published:
    """What one publish did: events new to the feed, versions it had already, and the ids of events it HELD (not
    published: a job's write whose answer was lost may have produced them, shared/changes/echoes.py). The caller
    publishes held events again later (they are not in the log yet) and never moves a watermark past them."""

    new: int
    seen: int
    held: tuple[str, ...] = ()


class ChangeFeed(Protocol):
    """Publishes change events, once per entity version."""

    async def publish(self, events: Sequence[ChangeEvent]) -> Published:
        """Dedupe, log, send; raises on storage failure (the caller's message is delivered again)."""
        ...


@dataclass
class MemoryChangeFeed:
    """ChangeFeed in memory: unit tests (shared.changes.log.MemoryLogReader reads it like the change log)."""

    log: dict[str, ChangeEvent] = field(default_factory=dict)
    sent: list[ChangeEvent] = field(default_factory=list)
    holding: set[str] = field(
        default_factory=set
    )  # entity ids whose new events are held (an ambiguous write)

    async def publish(self, events: Sequence[ChangeEvent]) -> Published:
        fresh = [event for event in events if event.id not in self.log]
        held = tuple(event.id for event in fresh if event.subject in self.holding)
        new = [event for event in fresh if event.id not in held]
        for event in new:
            self.log[event.id] = event
            self.sent.append(event)
        return Published(len(new), len(events) - len(fresh), held)
