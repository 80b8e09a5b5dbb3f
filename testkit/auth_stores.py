"""In-memory token and record stores behind shared.auth's storage seams, for tests and bench/token_rates.py."""

from __future__ import annotations

import itertools
from typing import Generic, TypeVar

from shared.auth.errors import TokenStoreUnavailableError
from shared.auth.models import TokenSet, Versioned

T = TypeVar("T")


class MemoryTokenStore:
    """A dict of token sets; `outage` fails every call like an unreachable Key Vault, `writes_fail` only writes
    (like a vault role that may read but not write secrets)."""

    def __init__(self) -> None:
        self._sets: dict[str, TokenSet] = {}
        self.outage = False
        self.writes_fail = False
        self.reads = 0
        self.read_attempts = 0  # reads tried, failed ones included
        self.writes = 0

    async def read(self, connection: str) -> TokenSet | None:
        """The stored set (counts the read)."""
        self.read_attempts += 1
        self._check()
        self.reads += 1
        return self._sets.get(connection)

    async def write(self, token_set: TokenSet) -> None:
        """Store the set unconditionally (counts the write)."""
        self._check()
        if self.writes_fail:
            raise TokenStoreUnavailableError("token store refused the write (simulated 403)")
        self.writes += 1
        self._sets[token_set.connection] = token_set

    def peek(self, connection: str) -> TokenSet | None:
        """The stored set without counting a read (test assertions)."""
        return self._sets.get(connection)

    def _check(self) -> None:
        if self.outage:
            raise TokenStoreUnavailableError("token store unavailable (simulated outage)")


class MemoryRecordStore(Generic[T]):
    """Records with integer ETags, behaving like Table Storage's compare-and-swap; `fail_every_call` makes every
    call raise like an unreachable table (a test asserting that no call is made)."""

    def __init__(self) -> None:
        self._rows: dict[str, Versioned[T]] = {}
        self._etags = itertools.count(1)
        self.writes: list[T] = []
        self.fail_every_call = False

    def _check(self) -> None:
        if self.fail_every_call:
            raise TokenStoreUnavailableError("table storage unavailable (simulated outage)")

    async def get(self, key: str) -> Versioned[T] | None:
        """The record and its ETag, or None."""
        self._check()
        return self._rows.get(key)

    async def create(self, key: str, value: T) -> Versioned[T] | None:
        """Insert unless present."""
        self._check()
        if key in self._rows:
            return None
        return self._put(key, value)

    async def replace(self, key: str, value: T, etag: str) -> Versioned[T] | None:
        """Overwrite when the ETag still matches."""
        self._check()
        current = self._rows.get(key)
        if current is None or current.etag != etag:
            return None
        return self._put(key, value)

    async def delete(self, key: str, etag: str) -> bool:
        """Delete when the ETag still matches."""
        self._check()
        current = self._rows.get(key)
        if current is None or current.etag != etag:
            return False
        del self._rows[key]
        return True

    async def scan(self) -> list[tuple[str, Versioned[T]]]:
        """All records."""
        self._check()
        return list(self._rows.items())

    def _put(self, key: str, value: T) -> Versioned[T]:
        self.writes.append(value)
        stored = Versioned(value, str(next(self._etags)))
        self._rows[key] = stored
        return stored
