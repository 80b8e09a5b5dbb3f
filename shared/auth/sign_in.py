"""The admin's sign-in (delegated mode): SignInFlow starts and finishes it and saves the signed-in token set;
PendingSignIns keeps each started sign-in server-side until its callback.

A pending sign-in lives 10 minutes, is usable once and is consumed atomically (ETag CAS). Entra's authorization
code itself lives about 10 minutes (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow),
so a longer window buys nothing. A consumed entry stays as a tombstone without the flow (so a replay is told apart
from an unknown state) for PURGE_AFTER past its expiry. An unconsumed entry still holds the PKCE verifier and
nonce, so it is purged as soon as it expired (SignInFlow.start and every timer run purge).

SignInFlow works beside one TokenManager: it shares the manager's cache, Entra gate and lock (manager.InProcess),
so a saved sign-in is served at once and lifts the Entra backoff, and it saves under the same refresh lease.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta

from shared.auth.errors import (
    AuthError,
    SignInNotSavedError,
    SignInRejectedError,
    SignInResponseMalformedError,
    SignInStateExpiredError,
    SignInStateMissingError,
    SignInStateReplayedError,
    SignInStateUnknownError,
    StaleTokenSetError,
    TokenStoreUnavailableError,
    TokenUnavailableError,
)
from shared.auth.manager import TokenManager
from shared.auth.models import Grant, PendingSignIn, SignInStart, TokenSet, first_token_set
from shared.auth.stores import RecordStore
from shared.auth.timing import LEASE_TTL, LEASE_WAIT_BUDGET
from shared.clock import Clock
from shared.tokens import AuthMode

logger = logging.getLogger(__name__)

SIGN_IN_WINDOW = timedelta(minutes=10)
LOGIN_PATH = "/api/auth/login"  # the settings' connection's sign-in
# Tombstones (no flow left in them) are deleted this long after they expired.
PURGE_AFTER = timedelta(hours=1)
# A state is a Table RowKey: MSAL makes it of 16 ASCII letters. Only URL-unreserved characters are accepted (no
# `/`, `\`, `#`, `?`, control characters or markup, which Table keys refuse or a page would have to escape), 256 at most.
MAX_STATE_LENGTH = 256
_STATE_SHAPE = re.compile(rf"[A-Za-z0-9._~-]{{1,{MAX_STATE_LENGTH}}}")
_NOT_SAVED = "the sign-in could not be saved ({reason}); nothing is stored: sign in again at /api/auth/login"


# A registered connection's state is `{connection}~{random}`: the callback finds the connection from the state
# alone (a lookup, not a scan), and the pending row is kept in that connection's own partition under the whole
# state, so a state issued for connection A names no row of B. `~` is in no connection name (`[a-z0-9-]`) and in
# no state MSAL makes (16 letters), so states without it stay the settings' connection's, as before.
STATE_SEPARATOR = "~"
_CONNECTION_IN_STATE = re.compile(r"[a-z0-9-]{1,40}")


def connection_state(connection: str) -> str:
    """A fresh, unguessable state naming `connection` (256 random bits)."""
    return f"{connection}{STATE_SEPARATOR}{secrets.token_urlsafe(32)}"


def connection_in_state(state: str) -> str | None:
    """The connection a state names, or None for a state without one (the settings' connection's sign-in).

    Raises SignInResponseMalformedError when the part before `~` cannot be a connection name."""
    head, separator, _ = state.partition(STATE_SEPARATOR)
    if not separator:
        return None
    if _CONNECTION_IN_STATE.fullmatch(head) is None:
        raise SignInResponseMalformedError("the callback's state names no connection this app knows")
    return head


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

    def __init__(self, store: RecordStore[PendingSignIn], clock: Clock, restart: str = LOGIN_PATH) -> None:
        """`restart`: where the admin starts again (a registered connection's own sign-in or consent route)."""
        self._store = store
        self._clock = clock
        self._again = f"start again at {restart}"

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
            raise SignInStateUnknownError(f"no sign-in was started with this state: {self._again}")
        pending, now = entry.value, self._clock.now()
        if pending.consumed_at is not None:
            raise SignInStateReplayedError(f"this sign-in was already completed once: {self._again}")
        if pending.expires_at <= now:
            raise SignInStateExpiredError(f"this sign-in is older than 10 minutes: {self._again}")
        tombstone = replace(pending, flow="", consumed_at=now)
        if await self._store.replace(state, tombstone, entry.etag) is None:
            raise SignInStateReplayedError(f"this sign-in was completed concurrently: {self._again}")
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


class SignInFlow:
    """The admin's sign-in for the connection of one TokenManager, in that manager's process."""

    def __init__(self, pending: PendingSignIns, manager: TokenManager, *, named_state: bool = False) -> None:
        """`named_state`: states name the connection (connection_state), so the shared callback finds it; the
        settings' connection keeps MSAL's own states, as before connections existed."""
        parts = manager.parts
        self._named_state = named_state
        self._pending = pending
        self._connection = parts.connection
        self._mode = parts.mode
        self._identity = parts.identity
        self._leases = parts.leases
        self._health = parts.health
        self._clock = parts.clock
        self._holder = parts.holder
        self._in_process = manager.in_process

    async def start(self, redirect_uri: str) -> str:
        """Start a sign-in (delegated mode): keeps the flow server-side, returns Entra's URL."""
        if self._mode is not AuthMode.DELEGATED:
            raise AuthError("sign-in is only used in delegated mode (BC_AUTH_MODE=delegated)")
        state = connection_state(self._connection) if self._named_state else None
        start = await self._identity.start_sign_in(redirect_uri, state)
        await self._pending.remember(start)
        await self.purge_expired()
        logger.info("admin sign-in started", extra=self._log_fields("auth.sign_in_started"))
        return start.auth_uri

    async def finish(self, response: Mapping[str, str]) -> TokenSet:
        """Finish a sign-in from the callback's query and return the saved set; SignInNotSavedError when
        nothing was stored.

        Strict about saving: the sign-in is reported (logged, health OK, cached) only after its token set was
        really written; otherwise the admin would be told the connection works while the refresh token lives
        only in this process's memory.
        """
        pending = await self._pending.consume(response.get("state"))
        if "error" in response:
            code = "".join(ch for ch in response["error"] if ch.isalnum() or ch == "_")[:64]
            raise SignInRejectedError(f"Entra returned the sign-in with an error ({code})")
        grant = await self._identity.finish_sign_in(pending.flow, response)
        saved = await self._store(grant)
        logger.info(
            "admin sign-in completed",
            extra=self._log_fields(
                "auth.sign_in_completed", generation=str(saved.generation), account=saved.account or ""
            ),
        )
        return saved

    async def purge_expired(self) -> None:
        """Delete expired pending sign-ins (best effort: a store failure is logged, never raised)."""
        try:
            await self._pending.purge()
        except TokenStoreUnavailableError:
            logger.warning("could not purge old sign-ins", extra=self._log_fields("auth.purge_failed"))

    async def _store(self, grant: Grant) -> TokenSet:
        """Under the lock and the lease, a generation above the stored chain, written for real, or
        SignInNotSavedError; then the Entra gate opens and the health is OK."""
        async with self._in_process.lock:
            try:
                saved = await self._save(grant)
            except (TokenUnavailableError, StaleTokenSetError) as exc:
                raise SignInNotSavedError(_NOT_SAVED.format(reason=type(exc).__name__)) from exc
            self._in_process.entra_gate.open()
            await self._health.record_success()
            return saved

    async def _save(self, grant: Grant) -> TokenSet:
        cache = self._in_process.cache
        deadline = self._clock.now() + LEASE_WAIT_BUDGET
        lease = await self._leases.acquire_waiting(self._connection, self._holder, deadline)
        async with self._leases.holding(lease):
            newest = await cache.newest()
            generation = (newest.generation if newest else 0) + 1
            signed_in = first_token_set(self._connection, self._mode, grant, self._clock.now(), generation)
            if await self._leases.renew(lease, LEASE_TTL) is None:
                raise SignInNotSavedError(_NOT_SAVED.format(reason="refresh lease lost"))
            return await cache.save(signed_in)

    def _log_fields(self, event: str, **fields: str) -> dict[str, str]:
        """Structured log fields naming the connection and the event."""
        return {"connection": self._connection, "event": event, **fields}
