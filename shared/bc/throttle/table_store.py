"""The coordination row in Azure Table Storage: one entity per BC identity, compare-and-swap on its ETag.

Facts relied on (reference azure-functions.md §5, checked on Azurite 3.35 with azure-data-tables 12.7):
update_entity(mode=REPLACE, etag=..., match_condition=IfNotModified) raises ResourceModifiedError (412) on a
stale ETag, and a duplicate create_entity raises ResourceExistsError (409).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient
from azure.identity.aio import ManagedIdentityCredential

from shared.bc.errors import StaleCoordinationStateError, ThrottleStorageError
from shared.bc.throttle.coordination import CoordinationState, Member, VersionedState
from shared.settings import StorageSettings

ROW_KEY = "coordination"
# Short SDK timeouts and few SDK retries: a storage hiccup must not hold a heartbeat for minutes
# (the throttle falls back to a local share instead).
_CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 5, "retry_total": 2}
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def partition_key_for(identity: str) -> str:
    """A Table-safe PartitionKey for an identity (no / \\ # ? or control characters), still readable."""
    readable = _UNSAFE_KEY_CHARS.sub("_", identity)[:60]
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return f"{readable}-{digest}"


def table_client_from_settings(storage: StorageSettings, table_name: str) -> TableClient:
    """A TableClient from the JobsStorage connection string, or from its service URI with managed identity."""
    if storage.connection_string:
        return TableClient.from_connection_string(
            storage.connection_string, table_name=table_name, **_CLIENT_OPTIONS
        )
    if storage.table_service_uri:
        credential = ManagedIdentityCredential(client_id=storage.managed_identity_client_id)
        return TableClient(storage.table_service_uri, table_name, credential=credential, **_CLIENT_OPTIONS)
    raise ThrottleStorageError("no table storage configured (JobsStorage or JobsStorage__tableServiceUri)")


class TableCoordinationStore:
    """CoordinationStore on Azure Table Storage (azure.data.tables.aio)."""

    def __init__(self, client: TableClient) -> None:
        self._client = client
        self._transactions = 0
        self._table_ready = False

    @classmethod
    def from_settings(cls, storage: StorageSettings) -> TableCoordinationStore:
        """The store in table `{BC_TABLE_PREFIX}throttle`."""
        return cls(table_client_from_settings(storage, f"{storage.table_prefix}throttle"))

    @property
    def transactions(self) -> int:
        """Storage transactions made so far (table creation included)."""
        return self._transactions

    async def read(self, key: str) -> VersionedState | None:
        """Point-read the identity's row."""
        await self._ensure_table()
        self._transactions += 1
        try:
            entity = await self._client.get_entity(partition_key=key, row_key=ROW_KEY)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise ThrottleStorageError(f"reading the throttle row failed: {type(exc).__name__}") from exc
        try:
            state = _decode(entity)
        except (ValueError, TypeError, KeyError) as exc:
            raise ThrottleStorageError("the throttle row cannot be decoded") from exc
        return VersionedState(state, str(entity.metadata["etag"]))

    async def write(self, key: str, state: CoordinationState, etag: str | None) -> str:
        """Create (etag None) or replace-if-unchanged; a lost race raises StaleCoordinationStateError."""
        await self._ensure_table()
        self._transactions += 1
        entity = _encode(key, state)
        try:
            if etag is None:
                metadata = await self._client.create_entity(entity)
            else:
                metadata = await self._client.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise StaleCoordinationStateError("the throttle row changed since it was read") from exc
        except ResourceNotFoundError as exc:
            # Replace of a row someone deleted: a lost race as well (re-read creates it).
            raise StaleCoordinationStateError("the throttle row disappeared") from exc
        except AzureError as exc:
            raise ThrottleStorageError(f"writing the throttle row failed: {type(exc).__name__}") from exc
        return str(metadata["etag"])

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._client.close()

    async def _ensure_table(self) -> None:
        if self._table_ready:
            return
        self._transactions += 1
        try:
            await self._client.create_table()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise ThrottleStorageError(f"creating the throttle table failed: {type(exc).__name__}") from exc
        self._table_ready = True


def _encode(key: str, state: CoordinationState) -> dict[str, Any]:
    members = [[member.id, member.active_from, member.lease_until] for member in state.members]
    return {
        "PartitionKey": key,
        "RowKey": ROW_KEY,
        "Members": json.dumps(members, separators=(",", ":")),
        "PausedUntil": float(state.paused_until),
    }


def _decode(entity: Any) -> CoordinationState:
    members = tuple(
        Member(str(member_id), float(active_from), float(lease_until))
        for member_id, active_from, lease_until in json.loads(entity.get("Members") or "[]")
    )
    return CoordinationState(members, float(entity.get("PausedUntil") or 0.0))
