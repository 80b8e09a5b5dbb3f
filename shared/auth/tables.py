"""Table Storage implementation of RecordStore (leases, pending sign-ins, connection state).

All three live in one table (`{BC_TABLE_PREFIX}auth`), one partition per kind and connection, so the
infrastructure has a single table to grant. ETags come from the service; conflicts become None/False,
every other storage failure TokenStoreUnavailableError. Rows never hold a token, code or secret; a pending
sign-in holds MSAL's flow (state, nonce, PKCE verifier) for at most 10 minutes, wiped when consumed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.auth.errors import TokenStoreUnavailableError
from shared.auth.models import ConnectionState, Lease, PendingLogin, Versioned

T = TypeVar("T")
Row = dict[str, Any]


class Codec(Protocol[T]):
    """Turns a record into Table properties and back."""

    def to_row(self, value: T) -> Row:
        """Properties to store (without PartitionKey/RowKey)."""
        ...

    def from_row(self, key: str, row: Row) -> T:
        """The record from a stored entity."""
        ...


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _time(value: object) -> datetime | None:
    return None if value in (None, "") else datetime.fromisoformat(str(value)).astimezone(UTC)


class LeaseCodec:
    """Lease <-> row."""

    def to_row(self, value: Lease) -> Row:
        """Holder and expiry."""
        return {"holder": value.holder, "expires_at": _iso(value.expires_at)}

    def from_row(self, key: str, row: Row) -> Lease:
        """The lease named `key`."""
        expires = _time(row.get("expires_at")) or datetime.min.replace(tzinfo=UTC)
        return Lease(name=key, holder=str(row.get("holder") or ""), expires_at=expires)


class LoginCodec:
    """PendingLogin <-> row."""

    def to_row(self, value: PendingLogin) -> Row:
        """The flow (empty once consumed) and its times."""
        return {
            "flow": value.flow,
            "created_at": _iso(value.created_at),
            "expires_at": _iso(value.expires_at),
            "consumed_at": _iso(value.consumed_at),
        }

    def from_row(self, key: str, row: Row) -> PendingLogin:
        """The pending sign-in whose state is `key`."""
        created = _time(row.get("created_at"))
        expires = _time(row.get("expires_at"))
        if created is None or expires is None:
            raise TokenStoreUnavailableError("malformed pending sign-in row")
        return PendingLogin(
            state=key,
            flow=str(row.get("flow") or ""),
            created_at=created,
            expires_at=expires,
            consumed_at=_time(row.get("consumed_at")),
        )


class StateCodec:
    """ConnectionState <-> row."""

    def to_row(self, value: ConnectionState) -> Row:
        """The state's flat fields."""
        return dict(value.to_row())

    def from_row(self, key: str, row: Row) -> ConnectionState:
        """The state of connection `key`."""
        return ConnectionState.from_row(key, dict(row))


class TableRecordStore(Generic[T]):
    """RecordStore over one partition of an Azure (or Azurite) table."""

    def __init__(self, table: TableClient, partition: str, codec: Codec[T]) -> None:
        self._table = table
        self._partition = partition
        self._codec = codec

    async def get(self, key: str) -> Versioned[T] | None:
        """Point read (a table not created yet reads as empty)."""
        try:
            entity = await self._table.get_entity(self._partition, key)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _unavailable(exc) from exc
        return Versioned(self._codec.from_row(key, dict(entity)), str(entity.metadata["etag"]))

    async def create(self, key: str, value: T) -> Versioned[T] | None:
        """Insert; None on conflict. Creates the table on first use (no separate provisioning step)."""
        for attempt in range(2):
            try:
                meta = await self._table.create_entity(self._entity(key, value))
            except ResourceExistsError:
                return None
            except ResourceNotFoundError as exc:
                if attempt or not _table_missing(exc):
                    raise _unavailable(exc) from exc
                await self._create_table()
                continue
            except AzureError as exc:
                raise _unavailable(exc) from exc
            return Versioned(value, str(meta["etag"]))
        return None  # unreachable: the loop returns or raises

    async def replace(self, key: str, value: T, etag: str) -> Versioned[T] | None:
        """Replace guarded by If-Match; None when the ETag no longer matches or the row is gone."""
        try:
            meta = await self._table.update_entity(
                self._entity(key, value),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        except AzureError as exc:
            raise _unavailable(exc) from exc
        return Versioned(value, str(meta["etag"]))

    async def delete(self, key: str, etag: str) -> bool:
        """Delete guarded by If-Match."""
        try:
            await self._table.delete_entity(
                self._partition, key, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        except AzureError as exc:
            raise _unavailable(exc) from exc
        return True

    async def _create_table(self) -> None:
        try:
            await self._table.create_table()
        except ResourceExistsError:
            pass  # another process created it first
        except AzureError as exc:
            raise _unavailable(exc) from exc

    async def scan(self) -> list[tuple[str, Versioned[T]]]:
        """Every row of the partition."""
        try:
            entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": self._partition})
            return [
                (
                    str(e["RowKey"]),
                    Versioned(self._codec.from_row(str(e["RowKey"]), dict(e)), str(e.metadata["etag"])),
                )
                async for e in entities
            ]
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise _unavailable(exc) from exc

    def _entity(self, key: str, value: T) -> Row:
        return {"PartitionKey": self._partition, "RowKey": key, **self._codec.to_row(value)}


def _table_missing(exc: ResourceNotFoundError) -> bool:
    # The aio create_entity leaves error_code unset; the service's x-ms-error-code header names it.
    headers = getattr(exc.response, "headers", None) or {}
    code = getattr(exc, "error_code", None) or headers.get("x-ms-error-code")
    return str(code or "") == "TableNotFound"


def _unavailable(exc: AzureError) -> TokenStoreUnavailableError:
    return TokenStoreUnavailableError(f"table storage unavailable ({type(exc).__name__})")
