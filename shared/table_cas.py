"""Compare-and-swap on Azure Table rows by ETag: the SDK's errors translated once, for every package's store.

Facts relied on (azure-data-tables 12.7 on Azurite 3.35; checked by tests/integration/test_azurite_storage.py
and tests/integration/auth/test_table_stores.py):
- update_entity(mode=REPLACE, etag=..., match_condition=IfNotModified) raises ResourceModifiedError (412) on a
  stale ETag and ResourceNotFoundError (404) when the row is gone; delete_entity with the same condition likewise.
- A duplicate create_entity raises ResourceExistsError (409); create_entity into a table that does not exist
  raises ResourceNotFoundError whose x-ms-error-code header is TableNotFound (the aio client leaves error_code unset).
- Every other failure (HttpResponseError, ServiceRequestError, timeouts) is an AzureError.
- In an entity-group transaction (`submit_transaction`), an "update" with etag + IfNotModified is honoured: a stale
  ETag fails the whole transaction (atomic: nothing written) with TableTransactionError, status 412 (404 when the
  row is gone); learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions. Checked on
  Azurite by tests/integration/test_azurite_storage.py.

Lost races come back as values (None / False). Any other failure raises TableStorageError (TableMissingError when
the table does not exist yet), naming the SDK error's type only; each package maps it to its own error at its seam.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from shared.errors import IntegrationError

TableEntity = dict[str, Any]  # a Table row's properties, keys included (not a BC record: shared.bc.Entity)


class TableStorageError(IntegrationError):
    """A table call failed for a reason other than a lost race; `cause` is the SDK error's type name."""

    def __init__(self, operation: str, cause: AzureError) -> None:
        self.cause = type(cause).__name__
        super().__init__(f"table {operation} failed ({self.cause})")


class TableMissingError(TableStorageError):
    """The table does not exist yet (ensure_table creates it)."""


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One entity's properties (PartitionKey and RowKey included) and its ETag."""

    entity: TableEntity
    etag: str


async def ensure_table(table: TableClient) -> None:
    """Create the table unless it exists (another process may create it first)."""
    try:
        await table.create_table()
    except ResourceExistsError:
        pass
    except AzureError as exc:
        raise TableStorageError("creation", exc) from exc


async def read(table: TableClient, partition: str, row: str) -> StoredRow | None:
    """Point read; None when the row (or the whole table) does not exist."""
    try:
        entity = await table.get_entity(partition, row)
    except ResourceNotFoundError:
        return None
    except AzureError as exc:
        raise TableStorageError("read", exc) from exc
    return StoredRow(dict(entity), str(entity.metadata["etag"]))


async def read_partition(table: TableClient, partition: str) -> list[StoredRow]:
    """Every row of one partition; empty when the table does not exist."""
    try:
        entities = table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
        return [StoredRow(dict(entity), str(entity.metadata["etag"])) async for entity in entities]
    except ResourceNotFoundError:
        return []
    except AzureError as exc:
        raise TableStorageError("query", exc) from exc


async def insert(table: TableClient, entity: TableEntity) -> str | None:
    """Create the row; its new ETag, or None when the row already exists."""
    try:
        metadata = await table.create_entity(entity)
    except ResourceExistsError:
        return None
    except ResourceNotFoundError as exc:
        raise (TableMissingError if _table_missing(exc) else TableStorageError)("insert", exc) from exc
    except AzureError as exc:
        raise TableStorageError("insert", exc) from exc
    return str(metadata["etag"])


async def replace_if_match(table: TableClient, entity: TableEntity, etag: str) -> str | None:
    """Replace the row if its ETag is still `etag`; the new ETag, or None when it changed or is gone."""
    try:
        metadata = await table.update_entity(
            entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        return None
    except AzureError as exc:
        raise TableStorageError("replace", exc) from exc
    return str(metadata["etag"])


async def replace_if_match_with(
    table: TableClient, entity: TableEntity, etag: str, rows: list[TableEntity]
) -> str | None:
    """One entity-group transaction: replace the row if its ETag is still `etag`, and upsert (merge) `rows` of the
    same partition (at most 99). The row's new ETag, or None when it changed or is gone: then nothing was written.
    """
    condition = {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
    operations: list[Any] = [("update", entity, condition), *(("upsert", row) for row in rows)]
    try:
        answers = await table.submit_transaction(operations)
    except TableTransactionError as exc:
        if exc.status_code in (404, 412) and _row_missing_or_changed(exc):
            return None
        raise TableStorageError("transaction", exc) from exc
    except AzureError as exc:
        raise TableStorageError("transaction", exc) from exc
    return str(answers[0]["etag"])


def _row_missing_or_changed(exc: TableTransactionError) -> bool:
    """A lost race on the replaced row (the first operation), not a missing table."""
    code = str(getattr(exc, "error_code", None) or "")
    return code != "TableNotFound" and exc.index == 0


async def delete_if_match(table: TableClient, partition: str, row: str, etag: str) -> bool:
    """Delete the row if its ETag is still `etag`; False when it changed or is gone."""
    try:
        await table.delete_entity(partition, row, etag=etag, match_condition=MatchConditions.IfNotModified)
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    except AzureError as exc:
        raise TableStorageError("delete", exc) from exc
    return True


def _table_missing(exc: ResourceNotFoundError) -> bool:
    headers = getattr(exc.response, "headers", None) or {}
    code = getattr(exc, "error_code", None) or headers.get("x-ms-error-code")
    return str(code or "") == "TableNotFound"
