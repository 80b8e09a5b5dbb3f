"""The refresh path: per-process cache, store re-reads, one refresher at a time under the lease, fallbacks.

Reads are cheap and local: a token is served from the process cache while it outlives the caller's
`min_validity`; only then is Key Vault read (once per token lifetime per process in steady state). A refresh
happens under the connection's lease after re-reading the store, so across all processes and instances one
refresher talks to Entra and the others pick up its result. Failures keep the still-valid cached token in
service; admin-needed failures stop calls to Entra until an admin acts or the probe backoff runs out.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeGuard

from shared import telemetry
from shared.auth.causes import describe
from shared.auth.components import Components
from shared.auth.errors import (
    AuthError,
    CredentialsRejectedError,
    MinValidityTooLongError,
    NotAuthorizedError,
    ReauthorizationRequiredError,
    RefreshTimeoutError,
    StaleTokenSetError,
    TokenRefreshFailedError,
    TokenStoreUnavailableError,
    TokenUnavailableError,
)
from shared.auth.models import ConnectionState, Health, Lease, TokenSet, Versioned, first_token_set
from shared.auth.retry import (
    LEASE_TTL,
    LEASE_WAIT_BUDGET,
    TIMER_REFRESH_HORIZON,
    TIMER_REFRESH_LIFETIME_SHARE,
    TRANSIENT_BACKOFF,
)
from shared.auth.saving import save_newest
from shared.auth.states import next_step
from shared.settings import AuthMode
from shared.tokens import DEFAULT_MIN_VALIDITY

logger = logging.getLogger(__name__)

_RECOVERABLE = (
    TokenUnavailableError,
    ReauthorizationRequiredError,
    CredentialsRejectedError,
    NotAuthorizedError,
)


@dataclass(frozen=True, slots=True)
class Want:
    """What a caller needs from a token set."""

    min_validity: timedelta
    rejected: str | None = field(default=None, repr=False)  # an access token BC answered 401 to
    after_generation: int | None = None  # a forced refresh wants a set newer than this

    def satisfied_by(self, token_set: TokenSet | None, now: datetime) -> TypeGuard[TokenSet]:
        """True when `token_set` meets every condition of this want."""
        if token_set is None:
            return False
        if self.after_generation is not None and token_set.generation <= self.after_generation:
            return False
        if self.rejected is not None and token_set.access_token == self.rejected:
            return False
        return token_set.access.valid_for(self.min_validity, now)


class Refresher:
    """The cache, the in-process lock and the coordinated refresh of one connection."""

    def __init__(self, parts: Components) -> None:
        self._p = parts
        self.cached: TokenSet | None = None
        # The highest generation this process saw in the store (read back or written): a cached set above it
        # lives only in memory (its write failed).
        self.stored_generation = 0
        self.lock = asyncio.Lock()
        self._gate_until: datetime | None = None
        self._transient_failures = 0

    async def obtain(self, want: Want, force: bool, just_read: bool = False) -> TokenSet:
        """Store first (unless the caller `just_read` it), then if needed a coordinated refresh; falls back
        to the cached token on failure."""
        try:
            newest = self.cached if just_read else await self.newest_known()
            if want.satisfied_by(newest, self._p.clock.now()):
                return newest
            self._check_lifetime(want, newest)
            if not force:
                await self._check_gates(newest)
            return await self._coordinated(want, force)
        except _RECOVERABLE as exc:
            return self._fallback(want, force, exc)

    def _fallback(self, want: Want, force: bool, exc: AuthError) -> TokenSet:
        """The still-valid cached set after a recoverable failure, or a clear error."""
        fallback = None if force else self._servable(want)
        if fallback is None and isinstance(exc, TokenStoreUnavailableError):
            raise TokenStoreUnavailableError(
                f"token store unavailable and no unexpired cached token for '{self._p.connection}'; retry later "
                "(the app's log names the cause: event auth.dependency_failed)",
                retry_after=self._p.clock.now() + TRANSIENT_BACKOFF.first,
            ) from exc
        if fallback is None:
            raise exc
        logger.warning(
            "serving the cached token (valid until %s) after: %s",
            fallback.expires_on.isoformat(),
            type(exc).__name__,
            extra=self._p.log_fields("auth.serving_cached"),
        )
        return fallback

    async def _coordinated(self, want: Want, force: bool) -> TokenSet:
        """Refresh under the lease, or wait for whoever holds it and take their result."""
        deadline = self._p.clock.now() + LEASE_WAIT_BUDGET
        while True:
            lease = await self._p.leases.try_acquire(self._p.connection, self._p.holder, LEASE_TTL)
            if lease is not None:
                try:
                    return await self._refresh_holding(lease, want, force)
                finally:
                    await self._p.leases.release(lease)
            if not await self._p.leases.wait_until_free(self._p.connection, deadline):
                raise RefreshTimeoutError(
                    f"another process held the refresh lease of '{self._p.connection}' for too long",
                    retry_after=self._p.clock.now() + LEASE_TTL,
                )
            newest = await self.newest_known()
            if want.satisfied_by(newest, self._p.clock.now()):
                return newest

    async def _refresh_holding(self, lease: Versioned[Lease], want: Want, force: bool) -> TokenSet:
        """Holding the lease: re-read, re-check, call Entra once, save newest-wins, record the state."""
        newest = await self.newest_known()
        if want.satisfied_by(newest, self._p.clock.now()):
            return newest
        if not force:
            await self._check_gates(newest)
        try:
            candidate = await self._redeem(newest)
        except (ReauthorizationRequiredError, CredentialsRejectedError) as exc:
            telemetry.token_refresh(self._p.connection, "admin_needed")
            await self._p.states.record_admin_needed(exc, newest)
            raise
        except TokenRefreshFailedError as exc:
            telemetry.token_refresh(self._p.connection, "failed")
            await self._close_gate(exc)
            raise
        self.clear_gate()
        saved = await self._save(candidate, lease)
        telemetry.token_refresh(self._p.connection, "refreshed", saved.expires_on)
        await self._p.states.record_success()
        logger.info(
            "token refreshed",
            extra=self._p.log_fields(
                "auth.refreshed", generation=str(saved.generation), expires_on=saved.expires_on.isoformat()
            ),
        )
        return saved

    async def _redeem(self, newest: TokenSet | None) -> TokenSet:
        """One call to Entra: client credentials, or the newest refresh token (delegated)."""
        now = self._p.clock.now()  # before the call: the expiry we compute errs on the early side
        if self._p.mode is AuthMode.CLIENT_CREDENTIALS:
            grant = await self._p.identity.acquire_for_client()
            if newest is None:
                return first_token_set(self._p.connection, self._p.mode, grant, now, generation=1)
            return newest.successor(grant, now)
        if newest is None or not newest.refresh_token:
            raise NotAuthorizedError(
                f"connection '{self._p.connection}' has no refresh token: {next_step(Health.NOT_AUTHORIZED, self._p.mode)}"
            )
        grant = await self._p.identity.redeem_refresh_token(newest.refresh_token)
        return newest.successor(grant, now)

    async def _save(self, candidate: TokenSet, lease: Versioned[Lease]) -> TokenSet:
        """Persist under a still-held lease, newest wins; if the store is down, keep it in memory.

        Lenient on purpose: the refresh already happened at Entra, so a token that could not be saved is
        still served from this process's memory and saved by its next refresh (sign-in is strict instead).
        """
        if await self._p.leases.renew(lease, LEASE_TTL) is None:
            logger.warning(
                "refresh lease lost before saving; not writing", extra=self._p.log_fields("auth.lease_lost")
            )
            return candidate
        try:
            saved = await save_newest(self._p.tokens, candidate)
            self.mark_stored(saved)
        except StaleTokenSetError:
            logger.warning(
                "a newer token set was stored meanwhile; keeping it",
                extra=self._p.log_fields("auth.stale_write"),
            )
            newest = await self.newest_known()
            return newest if newest is not None else candidate
        except TokenStoreUnavailableError:
            logger.error(
                "token refreshed but not saved (token store unavailable); kept in memory",
                extra=self._p.log_fields("auth.save_failed", generation=str(candidate.generation)),
            )
            saved = candidate
        self.adopt(saved)
        return saved

    # -- gates and helpers ---------------------------------------------------------------------------

    async def _close_gate(self, exc: TokenRefreshFailedError) -> None:
        """After a transient failure: nobody in this process calls Entra again before the backoff ends."""
        self._transient_failures += 1
        self._gate_until = self._p.clock.now() + TRANSIENT_BACKOFF.delay(self._transient_failures)
        exc.retry_after = self._gate_until
        logger.warning(
            "refresh of '%s' failed (attempt %d in a row), next attempt after %s: %s. Check BC_AUTHORITY_HOST "
            "and the network path to Entra.",
            self._p.connection,
            self._transient_failures,
            self._gate_until.isoformat(),
            describe(exc),
            extra=self._p.log_fields("auth.refresh_failed"),
        )
        await self._p.states.record_transient(exc)

    async def _check_gates(self, newest: TokenSet | None) -> None:
        """Raise instead of calling Entra while this process backs off or an admin must act."""
        now = self._p.clock.now()
        if self._gate_until is not None and now < self._gate_until:
            raise TokenRefreshFailedError(
                f"refresh of '{self._p.connection}' is backing off after a transient failure",
                retry_after=self._gate_until,
            )
        state = await self._p.states.read()
        if self._p.states.blocks(state, newest):
            raise admin_error(state, self._p.mode)

    def _check_lifetime(self, want: Want, newest: TokenSet | None) -> None:
        if newest is not None and want.after_generation is None and want.min_validity >= newest.lifetime:
            raise MinValidityTooLongError(
                f"min_validity {want.min_validity} exceeds the token lifetime Entra issues ({newest.lifetime})"
            )

    def _servable(self, want: Want) -> TokenSet | None:
        """The cached set if it is still unexpired (and not the rejected one)."""
        cached = self.cached
        if cached is None or cached.expires_on <= self._p.clock.now():
            return None
        if want.rejected is not None and cached.access_token == want.rejected:
            return None
        return cached

    def due(self, token_set: TokenSet) -> bool:
        """True when `token_set` would not outlive the timer's horizon."""
        horizon = min(TIMER_REFRESH_HORIZON, token_set.lifetime * TIMER_REFRESH_LIFETIME_SHARE)
        return not token_set.access.valid_for(horizon, self._p.clock.now())

    async def acquire_lease_waiting(self) -> Versioned[Lease]:
        """The refresh lease, waiting (within the budget) for another holder to finish."""
        deadline = self._p.clock.now() + LEASE_WAIT_BUDGET
        while True:
            lease = await self._p.leases.try_acquire(self._p.connection, self._p.holder, LEASE_TTL)
            if lease is not None:
                return lease
            if not await self._p.leases.wait_until_free(self._p.connection, deadline):
                raise RefreshTimeoutError(f"the refresh lease of '{self._p.connection}' stayed busy")

    async def newest_known(self) -> TokenSet | None:
        """Read the store (one Key Vault read) and keep whichever of it and the cache is newer."""
        stored = await self._p.tokens.read(self._p.connection)
        if stored is not None:
            self.mark_stored(stored)
        self.adopt(stored)
        return self.cached

    def mark_stored(self, token_set: TokenSet) -> None:
        """Note that the store holds `token_set` (read back or written by this process)."""
        self.stored_generation = max(self.stored_generation, token_set.generation)

    def is_stored(self, token_set: TokenSet) -> bool:
        """True when the store is known to hold this generation or a newer one."""
        return token_set.generation <= self.stored_generation

    async def newest_or_cached(self) -> TokenSet | None:
        """The cached set while it is comfortably valid, else a store read (keeps Key Vault reads rare)."""
        cached = self.cached
        if cached is not None and cached.access.valid_for(DEFAULT_MIN_VALIDITY, self._p.clock.now()):
            return cached
        return await self.newest_known()

    def adopt(self, token_set: TokenSet | None) -> None:
        """Cache `token_set` if it is newer than the cached one."""
        if token_set is not None and token_set.is_newer_than(self.cached):
            self.cached = token_set

    def clear_gate(self) -> None:
        """Forget the transient-failure backoff (a refresh or sign-in succeeded)."""
        self._gate_until = None
        self._transient_failures = 0


def admin_error(state: ConnectionState, mode: AuthMode) -> AuthError:
    """The error a caller gets while an admin-needed state blocks refreshes."""
    step = next_step(state.health, mode)
    if state.health is Health.CREDENTIALS_REJECTED:
        return CredentialsRejectedError(
            f"Entra refused the application earlier: {step}", error_code=state.last_error_code
        )
    return ReauthorizationRequiredError(
        f"the refresh token was refused earlier: {step}", error_code=state.last_error_code
    )
