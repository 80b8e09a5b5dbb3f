"""The newest-wins rule for the token store (Key Vault has no compare-and-swap, so it is enforced here)."""

from __future__ import annotations

from shared.auth.errors import StaleTokenSetError
from shared.auth.models import TokenSet
from shared.auth.stores import TokenStore


async def save_newest(store: TokenStore, candidate: TokenSet) -> TokenSet:
    """Write `candidate` unless the stored set is as new or newer; re-reads first. Returns what is stored.

    Raises StaleTokenSetError (and writes nothing) when the store already holds a newer or equal generation,
    so an older refresh token can never overwrite a newer one. Writes nothing when the set is unchanged.
    """
    stored = await store.read(candidate.connection)
    if stored == candidate:
        return stored
    if stored is not None and not candidate.is_newer_than(stored):
        raise StaleTokenSetError(
            f"refused to overwrite generation {stored.generation} of '{candidate.connection}' "
            f"with generation {candidate.generation}"
        )
    await store.write(candidate)
    return candidate
