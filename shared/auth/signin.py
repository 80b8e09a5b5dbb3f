"""Admin sign-in (delegated mode): start with PKCE and a one-time state, finish by storing a new chain.

Strict about saving: the sign-in is reported (logged, state OK, cached, success page) only after its token
set was really written to the store. Otherwise the refresh token would live only in this process's memory
while the admin is told the connection works; SignInNotSavedError tells them to sign in again instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from shared.auth.components import Components
from shared.auth.errors import (
    AuthError,
    LoginRejectedError,
    SignInNotSavedError,
    StaleTokenSetError,
    TokenStoreUnavailableError,
    TokenUnavailableError,
)
from shared.auth.models import Grant, Lease, TokenSet, Versioned, first_token_set
from shared.auth.refresher import Refresher
from shared.auth.retry import LEASE_TTL
from shared.auth.saving import save_newest
from shared.settings import AuthMode

logger = logging.getLogger(__name__)

_NOT_SAVED = "the sign-in could not be saved ({reason}); nothing is stored: sign in again at /api/auth/login"


class SignIn:
    """Begins and completes admin sign-ins for one connection, sharing the refresher's cache and lock."""

    def __init__(self, parts: Components, refresher: Refresher) -> None:
        self._p = parts
        self._refresher = refresher

    async def begin(self, redirect_uri: str) -> str:
        """Keep the flow server-side (state, nonce, PKCE verifier); return Entra's authorize URL."""
        if self._p.mode is not AuthMode.DELEGATED:
            raise AuthError("sign-in is only used in delegated mode (BC_AUTH_MODE=delegated)")
        start = await self._p.identity.start_login(redirect_uri)
        await self._p.logins.remember(start)
        await self.purge_expired()
        logger.info("admin sign-in started", extra=self._p.log_fields("auth.login_started"))
        return start.auth_uri

    async def purge_expired(self) -> None:
        """Delete expired pending sign-ins (best effort: a store failure is logged, never raised)."""
        try:
            await self._p.logins.purge()
        except TokenStoreUnavailableError:
            logger.warning("could not purge old sign-ins", extra=self._p.log_fields("auth.purge_failed"))

    async def complete(self, response: Mapping[str, str]) -> TokenSet:
        """One-time state, code redeemed, a new generation written; raises SignInNotSavedError if not saved."""
        pending = await self._p.logins.consume(response.get("state"))
        if "error" in response:
            code = "".join(ch for ch in response["error"] if ch.isalnum() or ch == "_")[:64]
            raise LoginRejectedError(f"Entra returned the sign-in with an error ({code})")
        grant = await self._p.identity.finish_login(pending.flow, response)
        async with self._refresher.lock:
            try:
                saved = await self._store_under_lease(grant)
            except (TokenUnavailableError, StaleTokenSetError) as exc:
                raise SignInNotSavedError(_NOT_SAVED.format(reason=type(exc).__name__)) from exc
            self._refresher.mark_stored(saved)
            self._refresher.adopt(saved)
            self._refresher.clear_gate()
            await self._p.states.record_success()
        logger.info(
            "admin sign-in completed",
            extra=self._p.log_fields(
                "auth.login_completed", generation=str(saved.generation), account=saved.account or ""
            ),
        )
        return saved

    async def _store_under_lease(self, grant: Grant) -> TokenSet:
        """Under the lease: a generation above the stored chain, written for real (or an error)."""
        lease = await self._refresher.acquire_lease_waiting()
        try:
            newest = await self._refresher.newest_known()
            generation = (newest.generation if newest else 0) + 1
            fresh = first_token_set(self._p.connection, self._p.mode, grant, self._p.clock.now(), generation)
            await self._write(fresh, lease)
            return fresh
        finally:
            await self._release(lease)

    async def _release(self, lease: Versioned[Lease]) -> None:
        """Give the lease back; if the table is down it simply expires (the write outcome stands)."""
        try:
            await self._p.leases.release(lease)
        except TokenStoreUnavailableError:
            logger.warning(
                "refresh lease not released", extra=self._p.log_fields("auth.lease_release_failed")
            )

    async def _write(self, fresh: TokenSet, lease: Versioned[Lease]) -> None:
        """Write only while the lease is still ours; every skipped or failed write raises."""
        if await self._p.leases.renew(lease, LEASE_TTL) is None:
            raise SignInNotSavedError(_NOT_SAVED.format(reason="refresh lease lost"))
        await save_newest(self._p.tokens, fresh)
