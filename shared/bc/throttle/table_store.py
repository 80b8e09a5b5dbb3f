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

from shared.azure_clients import OwnedTableClient, table_client
from shared.bc.errors import StaleCoordinationStateError, ThrottleStorageError
from shared.bc.throttle.coordination import CoordinationState, Member, VersionedState
from shared.settings import StorageSettings

ROW_KEY = "coordination"
# Tighter than the shared SDK defaults (read 10 s): a heartbeat is due every 10 s, and one stuck read must not
# outlast it (the throttle falls back to a local share instead of waiting).
_READ_TIMEOUT_SECONDS = 5
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def partition_key_for(identity: str) -> str:
    """A Table-safe PartitionKey for an identity (no / \\ # ? or control characters), still readable."""
    readable = _UNSAFE_KEY_CHARS.sub("_", identity)[:60]
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return f"{readable}-{digest}"


class TableCoordinationStore:
    """CoordinationStore on Azure Table Storage (azure.data.tables.aio)."""

    def __init__(self, owned: OwnedTableClient) -> None:
        self._owned = owned
        self._client = owned.client
        self._transactions = 0
        self._table_ready = False

    @classmethod
    def from_settings(cls, storage: StorageSettings, table_name: str | None = None) -> TableCoordinationStore:
        """The store in table `table_name` (default `{BC_TABLE_PREFIX}throttle`); SettingsError if unconfigured."""
        name = table_name or f"{storage.table_prefix}throttle"
        return cls(table_client(storage, name, read_timeout=_READ_TIMEOUT_SECONDS))

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
        """Close the HTTP session (and the managed-identity credential, when there is one)."""
        await self._owned.close()

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
