"""Storage seams of the token lifecycle: small Protocols; policy lives in the callers, not the backends.

- TokenStore: one token set per connection (Key Vault in Azure). No compare-and-swap there, so the
  newest-wins rule is enforced by the refresher (re-read under the lease, compare generations).
- RecordStore[T]: keyed records with ETag compare-and-swap (Table Storage in Azure): refresh leases,
  pending sign-ins and the shared connection state.
"""

from __future__ import annotations

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
