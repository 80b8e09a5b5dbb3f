"""Change events as the expansion and the reconciliation build them, for tests and benchmarks of the feed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bcjobs.changes import ChangeEvent, ChangeKind, ChangeOrigin, change_id, tombstone_version

COMPANY = "5d115c9c-44e3-ea11-bb43-000d3a2feca1"
ENVIRONMENT = "production"


def change_event(
    entity_id: str,
    etag: str = 'W/"JzQ0OzE7MDsn"',
    *,
    connection: str = "contoso",
    entity_set: str = "customers",
    kind: ChangeKind = ChangeKind.UPDATED,
    origin: ChangeOrigin = ChangeOrigin.WEBHOOK,
    entity: dict[str, Any] | None = None,
    modified: datetime = datetime(2026, 12, 6, 7, 0, tzinfo=UTC),
) -> ChangeEvent:
    """One entity version's event; its id follows bcjobs.changes.change_id (the version is the ETag)."""
    version = tombstone_version() if kind is ChangeKind.DELETED else etag
    resource = f"https://bc.example/api/v2.0/companies({COMPANY})/{entity_set}({entity_id})"
    data: dict[str, Any] | None = None if kind is ChangeKind.DELETED else {"reference": resource}
    if entity is not None and data is not None:
        data["entity"] = entity
    return ChangeEvent(
        id=change_id(connection, COMPANY, entity_set, entity_id, version),
        source=f"/connections/{connection}/environments/{ENVIRONMENT}/companies/{COMPANY}",
        type=f"bcintegration.{entity_set}.{kind.value}",
        subject=entity_id,
        time=modified,
        data=data,
        bcconnection=connection,
        bcenvironment=ENVIRONMENT,
        bccompany=COMPANY,
        bcentityset=entity_set,
        bcchange=kind,
        bcetag=None if kind is ChangeKind.DELETED else etag,
        bcorigin=origin,
    )
