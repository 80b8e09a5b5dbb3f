"""This process's newest known token set, backed by the token store (Key Vault), newest generation wins.

Reads are cheap and local: `fresh()` answers from memory while the cached set outlives what the caller needs;
only then does `newest()` read the store (one Key Vault read). Key Vault has no compare-and-swap, so `save()`
enforces newest-wins itself: it re-reads and refuses to replace a newer or equal generation. The cache also
remembers the highest generation known to be in the store: a cached set above it lives only in memory (its
write failed) and gets saved by the next refresh.
"""

from __future__ import annotations

from datetime import timedelta

from shared.auth.errors import StaleTokenSetError
from shared.auth.models import TokenSet
from shared.auth.stores import TokenStore
from shared.clock import Clock


class TokenCache:
    """The newest token set this process knows for one connection, and what the store is known to hold."""

    def __init__(self, store: TokenStore, connection: str, clock: Clock) -> None:
        self._store = store
        self._connection = connection
        self._clock = clock
        self._current: TokenSet | None = None
        self._stored_generation = 0

    @property
    def current(self) -> TokenSet | None:
        """The cached set (any age), without reading the store."""
        return self._current

    def fresh(self, min_validity: timedelta) -> TokenSet | None:
        """The cached set if its access token stays valid at least `min_validity` from now."""
        current = self._current
        if current is not None and current.access.valid_for(min_validity, self._clock.now()):
            return current
        return None

    def unexpired(self, *, besides: str | None = None) -> TokenSet | None:
        """The cached set while its access token is unexpired (and is not the access token `besides`)."""
        current = self._current
        if current is None or current.expires_on <= self._clock.now():
            return None
        return None if besides is not None and current.access_token == besides else current

    async def newest(self, *, max_age: timedelta | None = None) -> TokenSet | None:
        """The newer of the store's set and the cached one; with `max_age`, the cache answers alone while
        its set stays valid that long (keeps Key Vault reads rare). Raises TokenStoreUnavailableError."""
        if max_age is not None and (cached := self.fresh(max_age)) is not None:
            return cached
        stored = await self._store.read(self._connection)
        if stored is not None:
            self._mark_stored(stored)
            self.adopt(stored)
        return self._current

    async def save(self, candidate: TokenSet) -> TokenSet:
        """Write `candidate` unless the store holds the same or a newer generation; returns what is stored.

        Re-reads first. Raises StaleTokenSetError (writing nothing) when the stored set is as new or newer, so an
        older refresh token can never overwrite a newer one; writes nothing when the set is unchanged.
        """
        stored = await self._store.read(candidate.connection)
        if stored != candidate:
            if stored is not None and not candidate.is_newer_than(stored):
                raise StaleTokenSetError(
                    f"refused to overwrite generation {stored.generation} of '{candidate.connection}' "
                    f"with generation {candidate.generation}"
                )
            await self._store.write(candidate)
        self._mark_stored(candidate)
        self.adopt(candidate)
        return candidate

    def adopt(self, token_set: TokenSet) -> None:
        """Cache `token_set` if it is newer than the cached one (kept in memory even when it is not stored)."""
        if token_set.is_newer_than(self._current):
            self._current = token_set

    def is_stored(self, token_set: TokenSet) -> bool:
        """True when the store is known to hold this generation or a newer one."""
        return token_set.generation <= self._stored_generation

    def _mark_stored(self, token_set: TokenSet) -> None:
        self._stored_generation = max(self._stored_generation, token_set.generation)
