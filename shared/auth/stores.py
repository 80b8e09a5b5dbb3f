"""Storage seams of the token lifecycle: small Protocols; policy lives in the callers, not the backends.

- TokenStore: one token set per connection (Key Vault in Azure). No compare-and-swap there, so the
  newest-wins rule is enforced by the refresher (re-read under the lease, compare generations).
- RecordStore[T]: keyed records with ETag compare-and-swap (Table Storage in Azure): refresh leases,
  pending sign-ins and the connection record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from shared.auth.models import TokenSet, Versioned

T = TypeVar("T")


class TokenStore(Protocol):
    """Reads and writes the token set of a connection; raises TokenStoreUnavailableError when unreachable."""

    async def read(self, connection: str) -> TokenSet | None:
        """The stored token set, or None when the connection was never authorised."""
        ...

    async def write(self, token_set: TokenSet) -> None:
        """Store `token_set` as the connection's current one (callers decide whether it may replace)."""
        ...


class RecordStore(Protocol[T]):
    """Keyed records guarded by ETags; every write that could race is a compare-and-swap."""

    async def get(self, key: str) -> Versioned[T] | None:
        """The record and its ETag, or None."""
        ...

    async def create(self, key: str, value: T) -> Versioned[T] | None:
        """Insert; None when the key already exists."""
        ...

    async def replace(self, key: str, value: T, etag: str) -> Versioned[T] | None:
        """Overwrite only if the record still has `etag`; None when it changed or vanished."""
        ...

    async def delete(self, key: str, etag: str) -> bool:
        """Delete only if the record still has `etag`."""
        ...

    async def scan(self) -> list[tuple[str, Versioned[T]]]:
        """Every record of this store (small stores only: leases, states, pending sign-ins)."""
        ...


# A few rounds suffice: writers of one record are the processes of one app, and each change is tiny.
_CAS_ROUNDS = 5


async def compare_and_swap(store: RecordStore[T], key: str, change: Callable[[T], T], initial: T) -> bool:
    """Apply `change` to the record (`initial` when absent) by ETag compare-and-swap, retrying lost races a few
    times; True when this call wrote, False when the change was a no-op or every round lost."""
    for _ in range(_CAS_ROUNDS):
        entry = await store.get(key)
        current = entry.value if entry else initial
        wanted = change(current)
        if entry is not None and wanted == current:
            return False
        if entry is None:
            written = await store.create(key, wanted)
        else:
            written = await store.replace(key, wanted, entry.etag)
        if written is not None:
            return True
    return False
