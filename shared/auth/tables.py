"""Table Storage implementation of RecordStore (refresh leases, pending sign-ins, connection records).

All three live in one table (`{BC_TABLE_PREFIX}auth`), one partition per kind and connection, so the
infrastructure has a single table to grant. ETags come from the service; conflicts become None/False,
every other storage failure TokenStoreUnavailableError. Rows never hold a token, code or secret; a pending
sign-in holds MSAL's flow (state, nonce, PKCE verifier) for at most 10 minutes, wiped when consumed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from azure.data.tables.aio import TableClient

from shared import table_cas
from shared.auth.causes import FailureLog
from shared.auth.errors import TokenStoreUnavailableError
from shared.auth.models import ConnectionRecord, Lease, PendingSignIn, Versioned
from shared.clock import iso_utc, parse_iso_utc
from shared.table_cas import StoredRow, TableMissingError, TableStorageError

T = TypeVar("T")
Row = dict[str, Any]
logger = logging.getLogger(__name__)
# What to check when the auth table fails.
CHECK = (
    "JobsStorage (a connection string; locally Azurite must be running) or JobsStorage__tableServiceUri with "
    "the app identity's 'Storage Table Data Contributor' role, and BC_TABLE_PREFIX"
)
_failure_logs: dict[str, FailureLog] = {}


def _failure_log(table: TableClient) -> FailureLog:
    """One FailureLog per table (the stores of one table share it: one line per outage, not per partition)."""
    name = str(getattr(table, "table_name", "?"))
    if name not in _failure_logs:
        _failure_logs[name] = FailureLog(logger, f"Table Storage table '{name}'", CHECK)
    return _failure_logs[name]


class Codec(Protocol[T]):
    """Turns a record into Table properties and back."""

    def to_row(self, value: T) -> Row:
        """Properties to store (without PartitionKey/RowKey)."""
        ...

    def from_row(self, key: str, row: Row) -> T:
        """The record from a stored entity."""
        ...


class LeaseCodec:
    """Lease <-> row."""

    def to_row(self, value: Lease) -> Row:
        """Holder, expiry and the stored generation (absent while unknown)."""
        row: Row = {"holder": value.holder, "expires_at": iso_utc(value.expires_at)}
        if value.generation is not None:
            row["generation"] = value.generation
        return row

    def from_row(self, key: str, row: Row) -> Lease:
        """The lease named `key`."""
        expires = parse_iso_utc(row.get("expires_at")) or datetime.min.replace(tzinfo=UTC)
        generation = row.get("generation")
        return Lease(
            name=key,
            holder=str(row.get("holder") or ""),
            expires_at=expires,
            generation=int(generation) if generation is not None else None,
        )


class SignInCodec:
    """PendingSignIn <-> row."""

    def to_row(self, value: PendingSignIn) -> Row:
        """The flow (empty once consumed) and its times."""
        return {
            "flow": value.flow,
            "created_at": iso_utc(value.created_at),
            "expires_at": iso_utc(value.expires_at),
            "consumed_at": iso_utc(value.consumed_at),
        }

    def from_row(self, key: str, row: Row) -> PendingSignIn:
        """The pending sign-in whose state is `key`."""
        created = parse_iso_utc(row.get("created_at"))
        expires = parse_iso_utc(row.get("expires_at"))
        if created is None or expires is None:
            raise TokenStoreUnavailableError("malformed pending sign-in row")
        return PendingSignIn(
            state=key,
            flow=str(row.get("flow") or ""),
            created_at=created,
            expires_at=expires,
            consumed_at=parse_iso_utc(row.get("consumed_at")),
        )


class RecordCodec:
    """ConnectionRecord <-> row."""

    def to_row(self, value: ConnectionRecord) -> Row:
        """The record's flat fields."""
        return dict(value.to_row())

    def from_row(self, key: str, row: Row) -> ConnectionRecord:
        """The record of connection `key`."""
        return ConnectionRecord.from_row(key, dict(row))


class TableRecordStore(Generic[T]):
    """RecordStore over one partition of an Azure (or Azurite) table."""

    def __init__(self, table: TableClient, partition: str, codec: Codec[T]) -> None:
        self._table = table
        self._partition = partition
        self._codec = codec
        self._failures = _failure_log(table)

    async def get(self, key: str) -> Versioned[T] | None:
        """Point read (a table not created yet reads as empty)."""
        with self._storage_errors("read"):
            row = await table_cas.read(self._table, self._partition, key)
        return None if row is None else self._versioned(key, row)

    async def create(self, key: str, value: T) -> Versioned[T] | None:
        """Insert; None on conflict. Creates the table on first use (no separate provisioning step)."""
        entity = self._entity(key, value)
        with self._storage_errors("insert"):
            try:
                etag = await table_cas.insert(self._table, entity)
            except TableMissingError:
                await table_cas.ensure_table(self._table)
                etag = await table_cas.insert(self._table, entity)
        return None if etag is None else Versioned(value, etag)

    async def replace(self, key: str, value: T, etag: str) -> Versioned[T] | None:
        """Replace guarded by If-Match; None when the ETag no longer matches or the row is gone."""
        with self._storage_errors("replace"):
            new_etag = await table_cas.replace_if_match(self._table, self._entity(key, value), etag)
        return None if new_etag is None else Versioned(value, new_etag)

    async def delete(self, key: str, etag: str) -> bool:
        """Delete guarded by If-Match."""
        with self._storage_errors("delete"):
            return await table_cas.delete_if_match(self._table, self._partition, key, etag)

    async def scan(self) -> list[tuple[str, Versioned[T]]]:
        """Every row of the partition."""
        with self._storage_errors("scan"):
            rows = await table_cas.read_partition(self._table, self._partition)
        return [(str(row.entity["RowKey"]), self._versioned(str(row.entity["RowKey"]), row)) for row in rows]

    def _versioned(self, key: str, row: StoredRow) -> Versioned[T]:
        return Versioned(self._codec.from_row(key, row.entity), row.etag)

    def _entity(self, key: str, value: T) -> Row:
        return {"PartitionKey": self._partition, "RowKey": key, **self._codec.to_row(value)}

    @contextmanager
    def _storage_errors(self, operation: str) -> Iterator[None]:
        """Any table failure other than a lost race (an SDK ValueError included) is TokenStoreUnavailableError
        naming the SDK error only; its cause is logged once per outage."""
        try:
            yield
        except TableStorageError as exc:
            self._failures.failed(f"{operation} in partition {self._partition}", exc.__cause__ or exc)
            raise TokenStoreUnavailableError(
                f"table storage unavailable ({exc.cause}); the app's log names the cause"
            ) from exc
        except ValueError as exc:  # the SDK refusing a key or an answer before any request
            self._failures.failed(f"{operation} in partition {self._partition}", exc)
            raise TokenStoreUnavailableError(
                f"table storage refused the call ({type(exc).__name__}); the app's log names the cause"
            ) from exc
        self._failures.succeeded()
