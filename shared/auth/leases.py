"""One refresher at a time across processes and instances: a lease record with ETag CAS and an expiry.

A crashed holder blocks nobody for longer than the lease's TTL. A holder re-checks (renews) its lease right
before writing the token store, so a holder whose lease expired and was taken over never writes.

The lease row also carries the *stored generation*: the newest token-set generation a holder claimed for the
token store. Every writer of the store claims (`renew(..., generation=)` or `claim`) before it writes, by a
CAS that refuses a generation not above the row's, so the row is the store's version number that Key Vault
(no compare-and-swap, no conditional read) lacks; shared.auth.cache reads Key Vault only when the row names
a generation above its cached one. Every CAS here carries the generation over; a row written by code from
before it carried one has none, and readers then read the store, as before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta

from shared.auth.errors import RefreshTimeoutError, StaleTokenSetError, TokenStoreUnavailableError
from shared.auth.models import Lease, Versioned
from shared.auth.stores import RecordStore
from shared.auth.timing import LEASE_TTL, LEASE_WAIT_POLL
from shared.clock import Clock

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Acquires, renews, releases and waits for the refresh lease of a connection."""

    def __init__(self, store: RecordStore[Lease], clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def try_acquire(self, name: str, holder: str, ttl: timedelta) -> Versioned[Lease] | None:
        """Take the lease if it is free (absent, released or expired); None if someone else holds it."""
        now = self._clock.now()
        wanted = Lease(name=name, holder=holder, expires_at=now + ttl)
        current = await self._store.get(name)
        if current is None:
            return await self._store.create(name, wanted)
        if not current.value.is_free(now) and current.value.holder != holder:
            return None
        wanted = replace(wanted, generation=current.value.generation)
        return await self._store.replace(name, wanted, current.etag)

    async def acquire_or_wait(self, name: str, holder: str, deadline: datetime) -> Versioned[Lease] | None:
        """The lease if it is free now; else wait until it frees and return None, so the caller can check
        whether the holder's work made its own unnecessary before asking again. RefreshTimeoutError past
        `deadline`."""
        lease = await self.try_acquire(name, holder, LEASE_TTL)
        if lease is None and not await self.wait_until_free(name, deadline):
            raise RefreshTimeoutError(
                f"another process held the refresh lease of '{name}' for too long",
                retry_after=self._clock.now() + LEASE_TTL,
            )
        return lease

    async def acquire_waiting(self, name: str, holder: str, deadline: datetime) -> Versioned[Lease]:
        """The lease, waiting for other holders until `deadline` (then RefreshTimeoutError)."""
        while (lease := await self.acquire_or_wait(name, holder, deadline)) is None:
            continue
        return lease

    async def renew(
        self, lease: Versioned[Lease], ttl: timedelta, *, generation: int | None = None
    ) -> Versioned[Lease] | None:
        """Extend a lease this holder still has; None when it was lost (expired and taken over). With
        `generation`, the same CAS claims it for the token store: StaleTokenSetError (nothing written) when the
        row names that generation or a newer one."""
        current = await self._store.get(lease.value.name)
        if current is None or current.value.holder != lease.value.holder:
            return None
        extended = replace(current.value, expires_at=self._clock.now() + ttl)
        if generation is not None:
            extended = replace(extended, generation=_claimable(current.value, generation))
        return await self._store.replace(lease.value.name, extended, current.etag)

    async def stored_generation(self, name: str) -> int | None:
        """The newest generation claimed for the token store (one table read); None when unknown."""
        current = await self._store.get(name)
        return None if current is None else current.value.generation

    async def claim(self, name: str, generation: int) -> None:
        """Claim `generation` for the token store before writing it (CAS, retried on lost races);
        StaleTokenSetError when the row names it or a newer one. No row (no lease ever taken): nothing to do."""
        while (current := await self._store.get(name)) is not None:
            claimed = replace(current.value, generation=_claimable(current.value, generation))
            if await self._store.replace(name, claimed, current.etag) is not None:
                return

    async def release(self, lease: Versioned[Lease]) -> None:
        """Give the lease back at once if this holder still has it (whatever renewals happened meanwhile)."""
        current = await self._store.get(lease.value.name)
        if current is None or current.value.holder != lease.value.holder:
            return
        freed = replace(current.value, holder="", expires_at=self._clock.now())
        await self._store.replace(lease.value.name, freed, current.etag)

    @asynccontextmanager
    async def holding(self, lease: Versioned[Lease]) -> AsyncIterator[None]:
        """Give `lease` back afterwards; if the table is down it simply expires (the outcome stands)."""
        try:
            yield
        finally:
            try:
                await self.release(lease)
            except TokenStoreUnavailableError:
                logger.warning(
                    "refresh lease not released",
                    extra={"connection": lease.value.name, "event": "auth.lease_release_failed"},
                )

    async def wait_until_free(self, name: str, deadline: datetime) -> bool:
        """Poll the lease record (cheap) until it is free or `deadline` passes; True when free."""
        attempt = 0
        while True:
            current = await self._store.get(name)
            now = self._clock.now()
            if current is None or current.value.is_free(now):
                return True
            if now >= deadline:
                return False
            attempt += 1
            pause = min(LEASE_WAIT_POLL.delay(attempt), current.value.expires_at - now, deadline - now)
            await self._clock.sleep(max(pause, timedelta(milliseconds=10)).total_seconds())


def _claimable(current: Lease, generation: int) -> int:
    """`generation`, when it is above the one `current` names (newest wins); else StaleTokenSetError."""
    if current.generation is not None and generation <= current.generation:
        raise StaleTokenSetError(
            f"refused to claim generation {generation} of '{current.name}': generation {current.generation} "
            "is stored or being stored"
        )
    return generation
