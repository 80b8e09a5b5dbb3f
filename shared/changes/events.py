"""Change events from what BC returned: one per entity version (bcjobs/changes.py is the contract).

Shared by every path that publishes (the expansion, the reconciliation): the same entity version gives the same
event id whoever reads it (`change_id(connection, company, entity set, id, version)`, the version being BC's
ETag, or `tombstone_version()` for a delete).
"""

from __future__ import annotations

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
from shared.bc.models import BcEndpoint, Entity
from shared.changes.resources import ItemTarget, parse_instant
from shared.changes.watch import Watch
from shared.connections import Connection


def source_of(connection: Connection, company_id: str) -> str:
    """The event's `source`: `/connections/{c}/environments/{e}/companies/{id}`."""
    return f"/connections/{connection.name}/environments/{connection.environment}/companies/{company_id}"


def reference_of(endpoint: BcEndpoint, target: ItemTarget, entity_set: str, entity_id: str) -> str:
    """The entity's URL: `{API root}/companies({company})/{entitySet}({id})`."""
    return f"{endpoint.api_root(target.route)}/companies({target.company_id})/{entity_set}({entity_id})"


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
        data=_data(watch, reference_of(endpoint, target, watch.entity_set, entity_id), dict(entity.values)),
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


def _data(watch: Watch, reference: str, values: dict[str, Any]) -> dict[str, Any]:
    """Always the entity's URL; the entity too when the watch asks (main's contract: the change log drops it,
    saying so, when the event would not fit a queue message: shared/changes/log.py `fitted`)."""
    return {"reference": reference, "entity": values} if watch.include_data else {"reference": reference}
