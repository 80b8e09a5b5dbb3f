"""BC webhook subscriptions this deployment created, as rows: `{BC_TABLE_PREFIX}subscriptions`, partition =
connection, RowKey = BC's subscriptionId.

The receiver asks `SubscriptionDirectory.find` which watch a notification's subscriptionId belongs to (an unknown
id is recorded and answered 2xx: the manager cleans up). The subscription manager writes the rows: BC sends no
lifecycle events (reference (a)), so a row is the manager's last sight of the subscription, and BC's own list is
the truth at each run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient

from shared import table_cas
from shared.changes.storage_errors import ChangeStorageError, table_errors
from shared.clock import iso_utc, parse_iso_utc

SUBSCRIPTIONS_TABLE_SUFFIX = "subscriptions"
# The partition of the usage rows (RowKey = connection): "~" is never in a connection name ([a-z0-9-]).
USAGE_PARTITION = "~usage"
_WHAT = "subscriptions"


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """One subscription we created: which watch and company it serves, and when BC lets it lapse."""

    connection: str
    subscription_id: str
    watch: str
    company_id: UUID
    entity_set: str
    resource: str
    expiration: datetime
    etag: str | None
    created_at: datetime
    renewed_at: datetime | None = None
    state: str = "active"


@dataclass(frozen=True, slots=True)
class SubscriptionUsage:
    """How many of BC's 200 subscriptions per environment a connection's environment uses, at the manager's last
    run: ours (this connection's) and every subscriber's (Power Automate flows included)."""

    connection: str
    ours: int
    total: int
    limit: int
    at: datetime


class SubscriptionDirectory(Protocol):
    """Which watch a subscription serves (the receiver's question)."""

    async def find(self, connection: str, subscription_id: str) -> SubscriptionRecord | None:
        """The row, or None for an id this deployment does not know."""
        ...


class SubscriptionStore(SubscriptionDirectory, Protocol):
    """The rows, read and written by the subscription manager."""

    async def all(self, connection: str) -> list[SubscriptionRecord]:
        """Every row of a connection."""
        ...

    async def put(self, record: SubscriptionRecord) -> None:
        """Create or replace one."""
        ...

    async def delete(self, connection: str, subscription_id: str) -> None:
        """Remove one (nothing when it is gone)."""
        ...

    async def note_usage(self, usage: SubscriptionUsage) -> None:
        """Keep the connection's usage of its environment's 200 (the status page shows it)."""
        ...

    async def forget_usage(self, connection: str) -> None:
        """Drop a connection's usage (it was deleted or disabled and has no subscription left)."""
        ...

    async def everything(self) -> tuple[list[SubscriptionRecord], list[SubscriptionUsage]]:
        """Every row of every connection, and every connection's last usage (the status page)."""
        ...


@dataclass
class MemorySubscriptionStore:
    """SubscriptionStore in a dict: unit tests."""

    rows: dict[tuple[str, str], SubscriptionRecord] = field(default_factory=dict)
    usages: dict[str, SubscriptionUsage] = field(default_factory=dict)

    async def find(self, connection: str, subscription_id: str) -> SubscriptionRecord | None:
        return self.rows.get((connection, subscription_id))

    async def all(self, connection: str) -> list[SubscriptionRecord]:
        return [record for (owner, _), record in sorted(self.rows.items()) if owner == connection]

    async def put(self, record: SubscriptionRecord) -> None:
        self.rows[(record.connection, record.subscription_id)] = record

    async def delete(self, connection: str, subscription_id: str) -> None:
        self.rows.pop((connection, subscription_id), None)

    async def note_usage(self, usage: SubscriptionUsage) -> None:
        self.usages[usage.connection] = usage

    async def forget_usage(self, connection: str) -> None:
        self.usages.pop(connection, None)

    async def everything(self) -> tuple[list[SubscriptionRecord], list[SubscriptionUsage]]:
        return [self.rows[key] for key in sorted(self.rows)], [self.usages[k] for k in sorted(self.usages)]


class TableSubscriptionStore:
    """SubscriptionStore over one Table; every storage failure becomes ChangeStorageError."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    async def ensure(self) -> None:
        """Create the table unless it exists."""
        with table_errors(_WHAT, "be created"):
            await table_cas.ensure_table(self._table)

    async def find(self, connection: str, subscription_id: str) -> SubscriptionRecord | None:
        with table_errors(_WHAT, "be read"):
            row = await table_cas.read(self._table, connection, subscription_id)
        return None if row is None else _record(row.entity)

    async def all(self, connection: str) -> list[SubscriptionRecord]:
        with table_errors(_WHAT, "be read"):
            rows = await table_cas.read_partition(self._table, connection)
        return [_record(row.entity) for row in rows]

    async def put(self, record: SubscriptionRecord) -> None:
        with table_errors(_WHAT, "be written"):
            await self._table.upsert_entity(_row(record))

    async def delete(self, connection: str, subscription_id: str) -> None:
        with table_errors(_WHAT, "be written"):
            current = await table_cas.read(self._table, connection, subscription_id)
            if current is not None:
                await table_cas.delete_if_match(self._table, connection, subscription_id, current.etag)

    async def note_usage(self, usage: SubscriptionUsage) -> None:
        entity = {
            "PartitionKey": USAGE_PARTITION,
            "RowKey": usage.connection,
            "Ours": usage.ours,
            "Total": usage.total,
            "Limit": usage.limit,
            "At": iso_utc(usage.at),
        }
        with table_errors(_WHAT, "be written"):
            await self._table.upsert_entity(entity)

    async def forget_usage(self, connection: str) -> None:
        await self.delete(USAGE_PARTITION, connection)  # the usage row's keys: (USAGE_PARTITION, connection)

    async def everything(self) -> tuple[list[SubscriptionRecord], list[SubscriptionUsage]]:
        try:
            with table_errors(_WHAT, "be read"):
                rows = [dict(entity) async for entity in self._table.list_entities()]
        except ChangeStorageError as exc:
            if isinstance(exc.__cause__, ResourceNotFoundError):
                return [], []  # the table does not exist yet: no timer has run, no subscription
            raise
        usages = [_usage(row) for row in rows if row["PartitionKey"] == USAGE_PARTITION]
        records = [_record(row) for row in rows if row["PartitionKey"] != USAGE_PARTITION]
        return records, usages


def _usage(row: table_cas.TableEntity) -> SubscriptionUsage:
    at = _utc(row["At"])
    return SubscriptionUsage(str(row["RowKey"]), int(row["Ours"]), int(row["Total"]), int(row["Limit"]), at)


def _row(record: SubscriptionRecord) -> table_cas.TableEntity:
    return {
        "PartitionKey": record.connection,
        "RowKey": record.subscription_id,
        "Watch": record.watch,
        "CompanyId": str(record.company_id),
        "EntitySet": record.entity_set,
        "Resource": record.resource,
        "Expiration": iso_utc(record.expiration),
        "BcEtag": record.etag or "",
        "CreatedAt": iso_utc(record.created_at),
        "RenewedAt": iso_utc(record.renewed_at) or "",
        "State": record.state,
    }


def _record(row: table_cas.TableEntity) -> SubscriptionRecord:
    expiration, created = _utc(row["Expiration"]), _utc(row["CreatedAt"])
    return SubscriptionRecord(
        connection=str(row["PartitionKey"]),
        subscription_id=str(row["RowKey"]),
        watch=str(row["Watch"]),
        company_id=UUID(str(row["CompanyId"])),
        entity_set=str(row["EntitySet"]),
        resource=str(row["Resource"]),
        expiration=expiration,
        etag=str(row.get("BcEtag") or "") or None,
        created_at=created,
        renewed_at=parse_iso_utc(row.get("RenewedAt")),
        state=str(row.get("State") or "active"),
    )


def _utc(value: object) -> datetime:
    return datetime.fromisoformat(str(value)).astimezone(UTC)
