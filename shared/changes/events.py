"""Change events from what BC returned: one per entity version (bcjobs/changes.py is the contract).

Shared by every path that publishes (the expansion, the reconciliation): the same entity version gives the same
event id whoever reads it (`change_id(connection, company, entity set, id, version)`, the version being BC's
ETag, or `tombstone_version()` for a delete).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bcjobs.changes import (
    EVENT_TYPE_PREFIX,
    ChangeEvent,
    ChangeKind,
    ChangeOrigin,
    change_id,
    entity_version,
    tombstone_version,
)
from shared.bc.models import BcEndpoint, Entity
from shared.changes.resources import ItemTarget, parse_instant
from shared.changes.watch import Watch
from shared.connections import Connection


@dataclass(frozen=True, slots=True)
class Where:
    """Where a change happened: the connection, its environment, the company and the entity set."""

    connection: str
    environment: str
    company_id: str
    entity_set: str

    @property
    def source(self) -> str:
        """The event's `source`: `/connections/{c}/environments/{e}/companies/{id}`."""
        return f"/connections/{self.connection}/environments/{self.environment}/companies/{self.company_id}"


def version_event(
    where: Where,
    entity_id: str,
    entity: Entity,
    kind: ChangeKind,
    origin: ChangeOrigin,
    fallback_time: datetime,
    data: dict[str, Any] | None,
) -> ChangeEvent:
    """The event of one entity version BC returned, the same id on every path (`entity_version`: its ETag, else
    its lastModifiedDateTime as BC wrote it); `time` is lastModifiedDateTime, else `fallback_time`."""
    modified = entity.values.get("lastModifiedDateTime")
    modified_text = modified if isinstance(modified, str) else None
    # An entity with neither (some custom API pages) is versioned by its content: the same on every path that read
    # the same fields, and unchanged while the entity is, so a re-read publishes nothing.
    version = entity_version(entity.etag, modified_text or _content_version(entity))
    return _event(
        where, entity_id, version, kind, origin, parse_instant(modified) or fallback_time, data, entity.etag
    )


def _content_version(entity: Entity) -> str:
    body = json.dumps(entity.values, sort_keys=True, default=str, separators=(",", ":"))
    return "content-" + hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


def tombstone_event(where: Where, entity_id: str, time: datetime, origin: ChangeOrigin) -> ChangeEvent:
    """The delete of an entity (no data: it is gone); its version is `tombstone_version()`."""
    return _event(where, entity_id, tombstone_version(), ChangeKind.DELETED, origin, time, None, None)


def _event(
    where: Where,
    entity_id: str,
    version: str,
    kind: ChangeKind,
    origin: ChangeOrigin,
    time: datetime,
    data: dict[str, Any] | None,
    etag: str | None,
) -> ChangeEvent:
    return ChangeEvent(
        id=change_id(where.connection, where.company_id, where.entity_set, entity_id, version),
        source=where.source,
        type=f"{EVENT_TYPE_PREFIX}.{where.entity_set}.{kind.value}",
        subject=entity_id,
        time=time,
        data=data,
        bcconnection=where.connection,
        bcenvironment=where.environment,
        bccompany=where.company_id,
        bcentityset=where.entity_set,
        bcchange=kind,
        bcetag=etag,
        bcorigin=origin,
    )


def reference_of(endpoint: BcEndpoint, target: ItemTarget, entity_set: str, entity_id: str) -> str:
    """The entity's URL: `{API root}/companies({company})/{entitySet}({id})`."""
    return f"{endpoint.api_root(target.route)}/companies({target.company_id})/{entity_set}({entity_id})"


def _where(connection: Connection, watch: Watch, target: ItemTarget) -> Where:
    return Where(connection.name, connection.environment, str(target.company_id), watch.entity_set)


def build_event(
    endpoint: BcEndpoint,
    connection: Connection,
    watch: Watch,
    target: ItemTarget,
    entity: Entity,
    kind: ChangeKind,
    fallback_time: datetime,
    origin: ChangeOrigin = ChangeOrigin.WEBHOOK,
) -> ChangeEvent:
    """The event of the entity version an expansion read."""
    entity_id = str(entity.id or target.entity_id)
    reference = reference_of(endpoint, target, watch.entity_set, entity_id)
    data = _data(watch, reference, dict(entity.values))
    where = _where(connection, watch, target)
    return version_event(where, entity_id, entity, kind, origin, fallback_time, data)


def tombstone(
    connection: Connection,
    watch: Watch,
    target: ItemTarget,
    time: datetime,
    origin: ChangeOrigin = ChangeOrigin.WEBHOOK,
) -> ChangeEvent:
    """The delete of the entity `target` names."""
    return tombstone_event(_where(connection, watch, target), str(target.entity_id), time, origin)


def _data(watch: Watch, reference: str, values: dict[str, Any]) -> dict[str, Any]:
    """Always the entity's URL; the entity too when the watch asks (main's contract: the change log drops it,
    saying so, when the event would not fit a queue message: shared/changes/log.py `fitted`)."""
    return {"reference": reference, "entity": values} if watch.include_data else {"reference": reference}
