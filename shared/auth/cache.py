"""This process's newest known token set, backed by the token store (Key Vault), newest generation wins.

Reads are cheap and local: `valid_for()` answers from memory while the cached set outlives what the caller needs;
only then does `newest()` ask. The cache also remembers the highest generation known to be in the store: a
cached set above it lives only in memory (its write failed) and gets saved by the next refresh.

One Key Vault read per token lifetime per process (issue 24): with a `GenerationBoard` (the refresh lease row,
shared.auth.leases), `newest()` first reads the *stored generation* from the board (a table read) and reads Key
Vault only when it names a generation above the cached set's, or is unknown. Why no older set wins:
- Every writer of the store holds the refresh lease and claims the generation it writes on the board before
  writing (the refresher in its renew right before `write_claimed`, a sign-in by `save`); the claim is a CAS
  that refuses a generation not above the board's. So generations reach the store in increasing order, and
  an older or equal set is refused without re-reading Key Vault (Key Vault has no compare-and-swap).
- A claim renews the lease too (or follows a renew), and the write follows at once, within the lease TTL;
  a holder whose lease expired finds another holder on the row and writes nothing.
- A reader whose cached generation is at or above the board's knows the store has nothing newer; one below
  (or a board without a generation: rows from code before it, a table outage) reads Key Vault. A claim whose
  write then failed leaves the board above the store: readers read Key Vault until the next refresh, which
  claims a generation above the board's (shared.auth.manager), so no generation is ever claimed twice.
Without a board (tests, tools), `save()` re-reads the store instead and refuses a newer or equal generation.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Protocol

from shared.auth.errors import StaleTokenSetError, TokenStoreUnavailableError
from shared.auth.models import TokenSet
from shared.auth.stores import TokenStore
from shared.clock import Clock


class GenerationBoard(Protocol):
    """Where the newest generation claimed for the token store is kept (the refresh lease row)."""

    async def stored_generation(self, name: str) -> int | None:
        """The newest claimed generation, None when unknown; raises TokenStoreUnavailableError."""
        ...

    async def claim(self, name: str, generation: int) -> None:
        """Claim `generation` before writing it; StaleTokenSetError when it is not above the claimed one."""
        ...


class TokenCache:
    """The newest token set this process knows for one connection, and what the store is known to hold."""

    def __init__(
        self, store: TokenStore, connection: str, clock: Clock, board: GenerationBoard | None = None
    ) -> None:
        self._store = store
        self._board = board
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
        if await self._nothing_newer_stored():
            return self._cached
        stored = await self._store.read(self._connection)
        if stored is not None:
            self._mark_stored(stored)
            self.adopt(stored)
        return self._cached

    async def save(self, token_set: TokenSet) -> TokenSet:
        """Write `token_set` unless the store holds the same or a newer generation; returns what is stored.

        Claims its generation on the board first, or without a board re-reads the store. Raises
        StaleTokenSetError (writing nothing) when the stored set is as new or newer, so an older refresh token
        can never overwrite a newer one; without a board, writes nothing when the set is unchanged.
        """
        if self._board is not None:
            token_set = await self._above_unwritten_claims(token_set)
            await self._board.claim(self._connection, token_set.generation)
            return await self.write_claimed(token_set)
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

    async def write_claimed(self, token_set: TokenSet) -> TokenSet:
        """Write a set whose generation the caller just claimed on the board (no re-read); returns it."""
        await self._store.write(token_set)
        self._mark_stored(token_set)
        self.adopt(token_set)
        return token_set

    async def _above_unwritten_claims(self, token_set: TokenSet) -> TokenSet:
        """A successor of the stored set, numbered above the board's generation when a claim whose write
        failed left the board above the store (that generation must not be claimed twice)."""
        if token_set.generation != self._stored_generation + 1 or self._board is None:
            return token_set
        claimed = await self._board.stored_generation(self._connection)
        if claimed is None or claimed < token_set.generation:
            return token_set
        return replace(token_set, generation=claimed + 1)

    async def _nothing_newer_stored(self) -> bool:
        """True when the board names a generation at or below the cached set's (the store holds nothing newer);
        False when it names a newer one or cannot tell (no board, no generation, table unavailable)."""
        if self._board is None or self._cached is None:
            return False
        try:
            claimed = await self._board.stored_generation(self._connection)
        except TokenStoreUnavailableError:
            return False  # Key Vault can still answer
        return claimed is not None and claimed <= self._cached.generation

    def adopt(self, token_set: TokenSet) -> None:
        """Cache `token_set` if it is newer than the cached one (kept in memory even when it is not stored)."""
        if token_set.is_newer_than(self._cached):
            self._cached = token_set

    def is_stored(self, token_set: TokenSet) -> bool:
        """True when the store is known to hold this generation or a newer one."""
        return token_set.generation <= self._stored_generation

    def _mark_stored(self, token_set: TokenSet) -> None:
        self._stored_generation = max(self._stored_generation, token_set.generation)
