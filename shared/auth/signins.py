"""Pending admin sign-ins: kept server-side for 10 minutes, usable once, consumed atomically (ETag CAS).

Entra's authorization code itself lives about 10 minutes (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow), so a longer window buys nothing.
A consumed entry stays as a tombstone without the flow (so a replay is told apart from an unknown state)
for PURGE_AFTER past its expiry. An unconsumed entry still holds the PKCE verifier and nonce, so it is
purged as soon as it expired (begin_authorization and every timer run purge).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from shared.auth.errors import (
    SignInResponseMalformedError,
    SignInStateExpiredError,
    SignInStateMissingError,
    SignInStateReplayedError,
    SignInStateUnknownError,
)
from shared.auth.models import PendingSignIn, SignInStart
from shared.auth.stores import RecordStore
from shared.clock import Clock

SIGN_IN_WINDOW = timedelta(minutes=10)
# Tombstones (no flow left in them) are deleted this long after they expired.
PURGE_AFTER = timedelta(hours=1)
# A state is a Table RowKey: MSAL makes it of 16 ASCII letters. Only URL-unreserved characters are accepted (no
# `/`, `\`, `#`, `?`, control characters or markup, which Table keys refuse or a page would have to escape), 256 at most.
MAX_STATE_LENGTH = 256
_STATE_SHAPE = re.compile(rf"[A-Za-z0-9._~-]{{1,{MAX_STATE_LENGTH}}}")


def check_state(state: str | None) -> str:
    """The state if it has a shape a sign-in's state can have; raises without touching any store otherwise."""
    if not state:
        raise SignInStateMissingError("the callback carries no state: start again at /api/auth/login")
    if _STATE_SHAPE.fullmatch(state) is None:
        raise SignInResponseMalformedError(
            "the callback's state is not one this app hands out (letters, digits and - . _ ~, at most "
            f"{MAX_STATE_LENGTH}): start again at /api/auth/login"
        )
    return state


class PendingSignIns:
    """Records started sign-ins and hands each one out exactly once."""

    def __init__(self, store: RecordStore[PendingSignIn], clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def remember(self, start: SignInStart) -> PendingSignIn:
        """Keep the flow of a sign-in just started, keyed by its state."""
        now = self._clock.now()
        pending = PendingSignIn(
            state=start.state, flow=start.flow, created_at=now, expires_at=now + SIGN_IN_WINDOW
        )
        if await self._store.create(start.state, pending) is None:
            raise SignInStateReplayedError("a sign-in with this state already exists")
        return pending

    async def consume(self, state: str | None) -> PendingSignIn:
        """The pending sign-in for `state`, marked used; raises for a missing, unknown, expired or used state."""
        state = check_state(state)
        entry = await self._store.get(state)
        if entry is None:
            raise SignInStateUnknownError(
                "no sign-in was started with this state: start again at /api/auth/login"
            )
        pending, now = entry.value, self._clock.now()
        if pending.consumed_at is not None:
            raise SignInStateReplayedError(
                "this sign-in was already completed once: start again at /api/auth/login"
            )
        if pending.expires_at <= now:
            raise SignInStateExpiredError(
                "this sign-in is older than 10 minutes: start again at /api/auth/login"
            )
        tombstone = replace(pending, flow="", consumed_at=now)
        if await self._store.replace(state, tombstone, entry.etag) is None:
            raise SignInStateReplayedError(
                "this sign-in was completed concurrently: start again at /api/auth/login"
            )
        return pending

    async def purge(self) -> int:
        """Delete expired sign-ins still holding a flow, and tombstones expired PURGE_AFTER ago; returns how many."""
        now = self._clock.now()
        removed = 0
        for key, entry in await self._store.scan():
            pending = entry.value
            cutoff = now - PURGE_AFTER if pending.consumed_at is not None else now
            if pending.expires_at <= cutoff and await self._store.delete(key, entry.etag):
                removed += 1
        return removed
