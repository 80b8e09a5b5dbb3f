"""The coordination row in Azure Table Storage: one entity per BC identity, compare-and-swap on its ETag.

The SDK calls and their error translation (409/412/404, the facts behind them) live in shared.table_cas;
this module maps its outcomes onto the CoordinationStore contract.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared import table_cas
from shared.azure_clients import OwnedTableClient, table_client
from shared.bc.errors import StaleCoordinationStateError, ThrottleStorageError
from shared.bc.throttle.coordination import CoordinationState, Member, VersionedState
from shared.settings import StorageSettings
from shared.table_cas import TableStorageError

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
        with _storage_errors("reading the throttle row"):
            row = await table_cas.read(self._client, key, ROW_KEY)
        if row is None:
            return None
        try:
            state = _decode(row.entity)
        except (ValueError, TypeError, KeyError) as exc:
            raise ThrottleStorageError("the throttle row cannot be decoded") from exc
        return VersionedState(state, row.etag)

    async def write(self, key: str, state: CoordinationState, etag: str | None) -> str:
        """Create (etag None) or replace-if-unchanged; a lost race raises StaleCoordinationStateError."""
        await self._ensure_table()
        self._transactions += 1
        entity = _encode(key, state)
        with _storage_errors("writing the throttle row"):
            if etag is None:
                new_etag = await table_cas.insert(self._client, entity)
            else:
                new_etag = await table_cas.replace_if_match(self._client, entity, etag)
        if new_etag is None:
            # Created meanwhile, changed, or deleted (a re-read recreates it): a lost race either way.
            raise StaleCoordinationStateError("the throttle row changed since it was read")
        return new_etag

    async def close(self) -> None:
        """Close the HTTP session (and the managed-identity credential, when there is one)."""
        await self._owned.close()

    async def _ensure_table(self) -> None:
        if self._table_ready:
            return
        self._transactions += 1
        with _storage_errors("creating the throttle table"):
            await table_cas.ensure_table(self._client)
        self._table_ready = True


@contextmanager
def _storage_errors(doing: str) -> Iterator[None]:
    """Any table failure other than a lost race is ThrottleStorageError (naming the SDK error only)."""
    try:
        yield
    except TableStorageError as exc:
        raise ThrottleStorageError(f"{doing} failed: {exc.cause}") from exc


def _encode(key: str, state: CoordinationState) -> dict[str, Any]:
    # Feed-only members are listed apart ("Low"), not as a fourth field of "Members": a process of the previous
    # release decodes the row still (it ignores the property) and, rewriting it, drops the list, so those members
    # become normal ones -- an equal share each, the previous behaviour, never more than the budget.
    members = [[member.id, member.active_from, member.lease_until] for member in state.members]
    low = [member.id for member in state.members if member.low]
    return {
        "PartitionKey": key,
        "RowKey": ROW_KEY,
        "Members": json.dumps(members, separators=(",", ":")),
        "Low": json.dumps(low, separators=(",", ":")),
        "PausedUntil": float(state.paused_until),
    }


def _decode(entity: Any) -> CoordinationState:
    low = {str(member_id) for member_id in json.loads(entity.get("Low") or "[]")}
    members = tuple(
        Member(str(member_id), float(active_from), float(lease_until), str(member_id) in low)
        for member_id, active_from, lease_until in json.loads(entity.get("Members") or "[]")
    )
    return CoordinationState(members, float(entity.get("PausedUntil") or 0.0))
