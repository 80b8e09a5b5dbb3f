"""Change events from what BC returned: one per entity version (bcjobs/changes.py is the contract).

Shared by every path that publishes (the expansion, the reconciliation): the same entity version gives the same
event id whoever reads it (`change_id(connection, company, entity set, id, version)`, the version being BC's
ETag, or `tombstone_version()` for a delete).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bcjobs.changes import (
    EVENT_TYPE_PREFIX,
    ChangeEvent,
    ChangeKind,
    ChangeOrigin,
    change_id,
    tombstone_version,
)
from shared.bc.models import Entity
from shared.changes.resources import ItemTarget, parse_instant
from shared.changes.watch import Watch
from shared.connections import Connection

# An entity's data goes into its event when its JSON is at most this big (the event must fit a 64 KiB queue
# message as base64, with its envelope); a bigger one is a reference to read instead.
MAX_DATA_BYTES = 32_000


def source_of(connection: Connection, company_id: str) -> str:
    """The event's `source`: `/connections/{c}/environments/{e}/companies/{id}`."""
    return f"/connections/{connection.name}/environments/{connection.environment}/companies/{company_id}"


def reference_of(target: ItemTarget, entity_set: str, entity_id: str) -> str:
    """Where to read the entity (relative to the environment's API root, as BC's own `resource` is)."""
    return f"{target.api_path}/companies({target.company_id})/{entity_set}({entity_id})"


def build_event(
    connection: Connection,
    watch: Watch,
    target: ItemTarget,
    entity: Entity,
    kind: ChangeKind,
    fallback_time: datetime,
    origin: ChangeOrigin = ChangeOrigin.WEBHOOK,
) -> ChangeEvent:
    """The event of the entity version BC returned (its ETag is the version; lastModifiedDateTime its time)."""
    entity_id = str(entity.id or target.entity_id)
    company = str(target.company_id)
    time, version = _time_and_version(entity, fallback_time)
    return ChangeEvent(
        id=change_id(connection.name, company, watch.entity_set, entity_id, version),
        source=source_of(connection, company),
        type=f"{EVENT_TYPE_PREFIX}.{watch.entity_set}.{kind.value}",
        subject=entity_id,
        time=time,
        data=_data(watch, target, entity_id, dict(entity.values)),
        bcconnection=connection.name,
        bcenvironment=connection.environment,
        bccompany=company,
        bcentityset=watch.entity_set,
        bcchange=kind,
        bcetag=entity.etag,
        bcorigin=origin,
    )


def tombstone(
    connection: Connection,
    watch: Watch,
    target: ItemTarget,
    time: datetime,
    origin: ChangeOrigin = ChangeOrigin.WEBHOOK,
) -> ChangeEvent:
    """The delete of the entity `target` names (no data: it is gone)."""
    entity_id, company = str(target.entity_id), str(target.company_id)
    return ChangeEvent(
        id=change_id(connection.name, company, watch.entity_set, entity_id, tombstone_version()),
        source=source_of(connection, company),
        type=f"{EVENT_TYPE_PREFIX}.{watch.entity_set}.{ChangeKind.DELETED.value}",
        subject=entity_id,
        time=time,
        bcconnection=connection.name,
        bcenvironment=connection.environment,
        bccompany=company,
        bcentityset=watch.entity_set,
        bcchange=ChangeKind.DELETED,
        bcorigin=origin,
    )


def _time_and_version(entity: Entity, fallback_time: datetime) -> tuple[datetime, str]:
    """BC's lastModifiedDateTime (else `fallback_time`), and the version every path hashes (subs'
    bcjobs.changes.entity_version): the ETag, else lastModifiedDateTime as BC wrote it, else the fallback time."""
    modified = entity.values.get("lastModifiedDateTime")
    time = parse_instant(modified) or fallback_time
    return time, entity.etag or (modified if isinstance(modified, str) else time.isoformat())


def _data(watch: Watch, target: ItemTarget, entity_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """The entity when the watch includes data and it fits, else a reference to read it."""
    if watch.include_data and len(json.dumps(values, default=str).encode("utf-8")) <= MAX_DATA_BYTES:
        return {"entity": values}
    return {"reference": reference_of(target, watch.entity_set, entity_id)}
