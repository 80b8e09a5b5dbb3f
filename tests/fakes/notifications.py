"""Doubles for the change feed's expansion: secrets, watches and a BC that serves entities from memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from shared.bc.errors import NotFoundError, ServiceUnavailableError
from shared.bc.models import BcEndpoint, Entity, EntityKey, EntitySet
from shared.bc.odata import ODataQuery
from shared.changes.expansion import EntityReads, FeedLane
from shared.changes.resources import parse_instant
from shared.changes.watch import Watch
from shared.connections import Connection, UnknownConnectionError
from shared.telemetry import current_dimensions


@dataclass(frozen=True, slots=True)
class Secret:
    """A connection's notification secrets (the shape of subs' NotifySecret)."""

    key: str
    client_state: str


@dataclass
class MemorySecrets:
    """SecretSource in memory."""

    by_connection: dict[str, Secret] = field(default_factory=dict)

    async def get(self, connection: str) -> Secret | None:
        return self.by_connection.get(connection)


@dataclass
class MemoryWatches:
    """WatchSource in memory."""

    watches_of: dict[str, list[Watch]] = field(default_factory=dict)

    async def watches(self, connection: str) -> list[Watch]:
        return list(self.watches_of.get(connection, []))


@dataclass
class MemoryBc:
    """EntityReads over entity sets in memory; records each request (and the log dimensions it ran under)."""

    sets: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    company: UUID = field(default_factory=lambda: UUID(int=1))
    page_size: int = 2
    requests: list[tuple[str, str, ODataQuery | None]] = field(default_factory=list)
    dimensions: list[dict[str, str]] = field(default_factory=list)
    unavailable: bool = False
    endpoint: BcEndpoint = field(
        default_factory=lambda: BcEndpoint("https://bc.test", "production", "contoso")
    )

    def _note(self, kind: str, path: str, query: ODataQuery | None) -> None:
        if self.unavailable:
            raise ServiceUnavailableError("BC is down (test)")
        self.requests.append((kind, path, query))
        self.dimensions.append(current_dimensions())

    async def get(self, key: EntityKey, query: ODataQuery | None = None) -> Entity:
        self._note("get", key.relative_path(self.company), query)
        for row in self.sets.get(key.entity_set.name, []):
            if row["id"] == str(key.id):
                return Entity.from_json(row)  # type: ignore[arg-type]
        raise NotFoundError("no such entity (test)")

    async def pages(
        self, entity_set: EntitySet, query: ODataQuery | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[tuple[Entity, ...]]:
        rows = sorted(self.sets.get(entity_set.name, []), key=_modified)
        bound = query.params().get("$filter", "").removeprefix("lastModifiedDateTime gt ") if query else ""
        since = parse_instant(bound)
        rows = [row for row in rows if since is None or _modified(row) > since]
        for start in range(0, max(len(rows), 1), self.page_size):
            self._note("page", entity_set.relative_path(self.company), query)
            yield tuple(Entity.from_json(row) for row in rows[start : start + self.page_size])  # type: ignore[arg-type]

    async def company_id(self) -> UUID:
        return self.company


def _modified(row: dict[str, object]) -> datetime:
    return parse_instant(row["lastModifiedDateTime"]) or datetime.min.replace(tzinfo=UTC)


@dataclass
class OneFeedLane:
    """FeedLanes with one connection."""

    connection: Connection
    reads: EntityReads

    async def feed_lane(self, connection: str) -> FeedLane:
        if connection != self.connection.name:
            raise UnknownConnectionError(connection)
        return FeedLane(self.connection, self.reads)
