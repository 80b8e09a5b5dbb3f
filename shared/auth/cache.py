"""This process's newest known token set, backed by the token store (Key Vault), newest generation wins.

Reads are cheap and local: `valid_for()` answers from memory while the cached set outlives what the caller needs;
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
        self._cached: TokenSet | None = None
        self._stored_generation = 0

    @property
    def cached(self) -> TokenSet | None:
        """The cached set (any age), without reading the store."""
        return self._cached

    def valid_for(self, min_validity: timedelta) -> TokenSet | None:
        """The cached set if its access token stays valid at least `min_validity` from now."""
        cached = self._cached
        if cached is not None and cached.access.valid_for(min_validity, self._clock.now()):
            return cached
        return None

    def unexpired(self, *, besides: str | None = None) -> TokenSet | None:
        """The cached set while its access token is unexpired (and is not the access token `besides`)."""
        cached = self._cached
        if cached is None or cached.expires_on <= self._clock.now():
            return None
        return None if besides is not None and cached.access_token == besides else cached

    async def newest(self, *, max_age: timedelta | None = None) -> TokenSet | None:
        """The newer of the store's set and the cached one; with `max_age`, the cache answers alone while
        its set stays valid that long (keeps Key Vault reads rare). Raises TokenStoreUnavailableError."""
        if max_age is not None and (cached := self.valid_for(max_age)) is not None:
            return cached
        stored = await self._store.read(self._connection)
        if stored is not None:
            self._mark_stored(stored)
            self.adopt(stored)
        return self._cached

    async def save(self, token_set: TokenSet) -> TokenSet:
        """Write `token_set` unless the store holds the same or a newer generation; returns what is stored.

        Re-reads first. Raises StaleTokenSetError (writing nothing) when the stored set is as new or newer, so an
        older refresh token can never overwrite a newer one; writes nothing when the set is unchanged.
        """
        stored = await self._store.read(token_set.connection)
        if stored != token_set:
            if stored is not None and not token_set.is_newer_than(stored):
                raise StaleTokenSetError(
                    f"refused to overwrite generation {stored.generation} of '{token_set.connection}' "
                    f"with generation {token_set.generation}"
                )
            await self._store.write(token_set)
        self._mark_stored(token_set)
        self.adopt(token_set)
        return token_set

    def adopt(self, token_set: TokenSet) -> None:
        """Cache `token_set` if it is newer than the cached one (kept in memory even when it is not stored)."""
        if token_set.is_newer_than(self._cached):
            self._cached = token_set

    def is_stored(self, token_set: TokenSet) -> bool:
        """True when the store is known to hold this generation or a newer one."""
        return token_set.generation <= self._stored_generation

    def _mark_stored(self, token_set: TokenSet) -> None:
        self._stored_generation = max(self._stored_generation, token_set.generation)
