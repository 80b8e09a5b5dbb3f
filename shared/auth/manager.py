"""TokenManager: the TokenProvider every worker uses, plus sign-in, scheduled refresh and status.

Reads are cheap and local: a token is served from the process cache while it outlives the caller's
`min_validity`; only then is Key Vault read (once per token lifetime per process in steady state). A refresh
happens under the connection's lease after re-reading the store, so across all processes and instances one
refresher talks to Entra and the others pick up its result. Failures keep the still-valid cached token in
service; admin-needed failures stop calls to Entra until an admin acts or the probe backoff runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeGuard

from shared.auth.clock import Clock
from shared.auth.errors import (
    AuthError,
    CredentialsRejectedError,
    LoginRejectedError,
    MinValidityTooLongError,
    NotAuthorizedError,
    ReauthorizationRequiredError,
    RefreshTimeoutError,
    StaleTokenSetError,
    TokenRefreshFailedError,
    TokenStoreUnavailableError,
    TokenUnavailableError,
)
from shared.auth.identity import IdentityProvider
from shared.auth.leases import LeaseKeeper
from shared.auth.logins import LoginBook
from shared.auth.models import (
    NEEDS_ADMIN,
    ConnectionState,
    ConnectionStatus,
    Health,
    Lease,
    TokenSet,
    Versioned,
    first_token_set,
)
from shared.auth.retry import (
    LEASE_TTL,
    LEASE_WAIT_BUDGET,
    TIMER_REFRESH_HORIZON,
    TIMER_REFRESH_LIFETIME_SHARE,
    TRANSIENT_BACKOFF,
)
from shared.auth.saving import save_newest
from shared.auth.states import NEXT_STEPS, StateBook
from shared.auth.stores import TokenStore
from shared.settings import AuthMode
from shared.tokens import DEFAULT_MIN_VALIDITY, AccessToken

logger = logging.getLogger(__name__)

# After BC rejected a token, the replacement only has to outlive the retried request.
REJECTED_RETRY_VALIDITY = timedelta(minutes=1)
_RECOVERABLE = (
    TokenUnavailableError,
    ReauthorizationRequiredError,
    CredentialsRejectedError,
    NotAuthorizedError,
)


@dataclass(frozen=True, slots=True)
class _Want:
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


class ScheduledOutcome(StrEnum):
    """What a timer run did."""

    REFRESHED = "refreshed"
    NOT_DUE = "not_due"  # the stored token outlives the horizon
    BACKING_OFF = "backing_off"  # an admin must act; the next probe is later
    NOT_AUTHORIZED = "not_authorized"  # delegated mode and nobody signed in yet


@dataclass(frozen=True, slots=True)
class Components:
    """The collaborators a TokenManager is wired from (built by shared.auth.compose)."""

    connection: str
    mode: AuthMode
    identity: IdentityProvider
    tokens: TokenStore
    leases: LeaseKeeper
    logins: LoginBook
    states: StateBook
    clock: Clock
    holder: str


class TokenManager:
    """Implements shared.tokens.TokenProvider for one BC connection."""

    def __init__(self, parts: Components) -> None:
        self._p = parts
        self._cached: TokenSet | None = None
        self._lock = asyncio.Lock()
        self._gate_until: datetime | None = None
        self._transient_failures = 0

    @property
    def connection(self) -> str:
        """The connection name this manager serves."""
        return self._p.connection

    async def has_token(self) -> bool:
        """True when an unexpired access token is known (cache or store)."""
        newest = await self._newest_or_cached()
        return newest is not None and newest.expires_on > self._p.clock.now()

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        """A token that stays valid at least `min_validity`, refreshing (once, across processes) if needed."""
        cached = self._cached
        if cached is not None and cached.access.valid_for(min_validity, self._p.clock.now()):
            return cached.access
        async with self._lock:
            return (await self._obtain(_Want(min_validity), force=False)).access

    async def refresh(self, rejected: AccessToken | None = None) -> AccessToken:
        """A new token; with `rejected`, a newer token already available is returned instead."""
        async with self._lock:
            if rejected is not None:
                want = _Want(REJECTED_RETRY_VALIDITY, rejected=rejected.value)
                return (await self._obtain(want, force=False)).access
            try:
                baseline = await self._newest_known()  # the store's generation, not a stale cache's
            except TokenStoreUnavailableError:
                baseline = self._cached
            want = _Want(timedelta(0), after_generation=baseline.generation if baseline else 0)
            return (await self._obtain(want, force=True)).access

    async def scheduled_refresh(self) -> ScheduledOutcome:
        """The timer's job: refresh when the stored token would not outlive the horizon; honours backoff."""
        async with self._lock:
            newest = await self._newest_known()
            if newest is not None and not self._due(newest):
                return ScheduledOutcome.NOT_DUE
            if self._p.mode is AuthMode.DELEGATED and newest is None:
                return ScheduledOutcome.NOT_AUTHORIZED
            if self._p.states.blocks(await self._p.states.read(), newest):
                return ScheduledOutcome.BACKING_OFF
            baseline = newest.generation if newest else 0
            await self._obtain(_Want(timedelta(0), after_generation=baseline), force=True, just_read=True)
            return ScheduledOutcome.REFRESHED

    async def begin_authorization(self, redirect_uri: str) -> str:
        """Start an admin sign-in (delegated mode): keeps the flow server-side, returns Entra's URL."""
        if self._p.mode is not AuthMode.DELEGATED:
            raise AuthError("sign-in is only used in delegated mode (BC_AUTH_MODE=delegated)")
        start = await self._p.identity.start_login(redirect_uri)
        await self._p.logins.remember(start)
        try:
            await self._p.logins.purge()
        except TokenStoreUnavailableError:
            logger.warning("could not purge old sign-ins", extra=self._extra("auth.purge_failed"))
        logger.info("admin sign-in started", extra=self._extra("auth.login_started"))
        return start.auth_uri

    async def complete_authorization(self, response: Mapping[str, str]) -> ConnectionStatus:
        """Finish a sign-in from the callback's query: one-time state, code redeemed, token set stored."""
        pending = await self._p.logins.consume(response.get("state"))
        if "error" in response:
            code = "".join(ch for ch in response["error"] if ch.isalnum() or ch == "_")[:64]
            raise LoginRejectedError(f"Entra returned the sign-in with an error ({code})")
        grant = await self._p.identity.finish_login(pending.flow, response)
        async with self._lock:
            lease = await self._acquire_lease_waiting()
            try:
                stored = await self._newest_known()
                generation = (stored.generation if stored else 0) + 1
                now = self._p.clock.now()
                fresh = first_token_set(self.connection, self._p.mode, grant, now, generation)
                await self._save(fresh, lease)
                await self._p.states.record_success()
                self._clear_gate()
            finally:
                await self._p.leases.release(lease)
        logger.info(
            "admin sign-in completed",
            extra=self._extra(
                "auth.login_completed", generation=str(generation), account=fresh.account or ""
            ),
        )
        return await self.status()

    async def status(self) -> ConnectionStatus:
        """Token health without the token: has one? until when? last refresh and error, next step."""
        try:
            newest = await self._newest_or_cached()
        except TokenStoreUnavailableError:
            newest = self._cached
        state = await self._p.states.read()
        now = self._p.clock.now()
        has_token = newest is not None and newest.expires_on > now
        health = state.health
        if newest is None and health not in NEEDS_ADMIN:
            health = Health.NOT_AUTHORIZED
        return ConnectionStatus(
            connection=self.connection,
            mode=self._p.mode,
            state=health,
            has_token=has_token,
            expires_on=newest.expires_on if newest else None,
            account=newest.account if newest else None,
            tenant_id=newest.tenant_id if newest else None,
            generation=newest.generation if newest else None,
            last_refresh_at=state.last_refresh_at,
            last_error_code=state.last_error_code,
            last_error_message=state.last_error_message,
            last_error_at=state.last_error_at,
            backoff_until=state.backoff_until,
            next_step=NEXT_STEPS.get(health),
        )

    # -- the refresh path ----------------------------------------------------------------------------

    async def _obtain(self, want: _Want, force: bool, just_read: bool = False) -> TokenSet:
        """Store first (unless the caller `just_read` it), then if needed a coordinated refresh; falls back
        to the cached token on failure."""
        try:
            newest = self._cached if just_read else await self._newest_known()
            if want.satisfied_by(newest, self._p.clock.now()):
                return newest
            self._check_lifetime(want, newest)
            if not force:
                await self._check_gates(newest)
            return await self._coordinated(want, force)
        except _RECOVERABLE as exc:
            fallback = None if force else self._servable(want)
            if fallback is None and isinstance(exc, TokenStoreUnavailableError):
                raise TokenStoreUnavailableError(
                    f"token store unavailable and no unexpired cached token for '{self.connection}'; retry later",
                    retry_after=self._p.clock.now() + TRANSIENT_BACKOFF.first,
                ) from exc
            if fallback is None:
                raise
            logger.warning(
                "serving the cached token (valid until %s) after: %s",
                fallback.expires_on.isoformat(),
                type(exc).__name__,
                extra=self._extra("auth.serving_cached"),
            )
            return fallback

    async def _coordinated(self, want: _Want, force: bool) -> TokenSet:
        """Refresh under the lease, or wait for whoever holds it and take their result."""
        deadline = self._p.clock.now() + LEASE_WAIT_BUDGET
        while True:
            lease = await self._p.leases.try_acquire(self.connection, self._p.holder, LEASE_TTL)
            if lease is not None:
                try:
                    return await self._refresh_holding(lease, want, force)
                finally:
                    await self._p.leases.release(lease)
            if not await self._p.leases.wait_until_free(self.connection, deadline):
                raise RefreshTimeoutError(
                    f"another process held the refresh lease of '{self.connection}' for too long",
                    retry_after=self._p.clock.now() + LEASE_TTL,
                )
            newest = await self._newest_known()
            if want.satisfied_by(newest, self._p.clock.now()):
                return newest

    async def _refresh_holding(self, lease: Versioned[Lease], want: _Want, force: bool) -> TokenSet:
        """Holding the lease: re-read, re-check, call Entra once, save newest-wins, record the state."""
        newest = await self._newest_known()
        if want.satisfied_by(newest, self._p.clock.now()):
            return newest
        if not force:
            await self._check_gates(newest)
        try:
            candidate = await self._redeem(newest)
        except (ReauthorizationRequiredError, CredentialsRejectedError) as exc:
            await self._p.states.record_admin_needed(exc, newest)
            raise
        except TokenRefreshFailedError as exc:
            self._transient_failures += 1
            self._gate_until = self._p.clock.now() + TRANSIENT_BACKOFF.delay(self._transient_failures)
            exc.retry_after = self._gate_until
            await self._p.states.record_transient(exc)
            raise
        self._clear_gate()
        saved = await self._save(candidate, lease)
        await self._p.states.record_success()
        logger.info(
            "token refreshed",
            extra=self._extra(
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
                return first_token_set(self.connection, self._p.mode, grant, now, generation=1)
            return newest.successor(grant, now)
        if newest is None or not newest.refresh_token:
            raise NotAuthorizedError(
                f"connection '{self.connection}' has no refresh token: {NEXT_STEPS[Health.NOT_AUTHORIZED]}"
            )
        grant = await self._p.identity.redeem_refresh_token(newest.refresh_token)
        return newest.successor(grant, now)

    async def _save(self, candidate: TokenSet, lease: Versioned[Lease]) -> TokenSet:
        """Persist under a still-held lease, newest wins; if the store is down, keep it in memory."""
        if await self._p.leases.renew(lease, LEASE_TTL) is None:
            logger.warning(
                "refresh lease lost before saving; not writing", extra=self._extra("auth.lease_lost")
            )
            return candidate
        try:
            saved = await save_newest(self._p.tokens, candidate)
        except StaleTokenSetError:
            logger.warning(
                "a newer token set was stored meanwhile; keeping it", extra=self._extra("auth.stale_write")
            )
            newest = await self._newest_known()
            return newest if newest is not None else candidate
        except TokenStoreUnavailableError:
            logger.error(
                "token refreshed but not saved (token store unavailable); kept in memory",
                extra=self._extra("auth.save_failed", generation=str(candidate.generation)),
            )
            saved = candidate
        self._adopt(saved)
        return saved

    # -- gates and helpers ---------------------------------------------------------------------------

    async def _check_gates(self, newest: TokenSet | None) -> None:
        """Raise instead of calling Entra while this process backs off or an admin must act."""
        now = self._p.clock.now()
        if self._gate_until is not None and now < self._gate_until:
            raise TokenRefreshFailedError(
                f"refresh of '{self.connection}' is backing off after a transient failure",
                retry_after=self._gate_until,
            )
        state = await self._p.states.read()
        if self._p.states.blocks(state, newest):
            raise _admin_error(state)

    def _check_lifetime(self, want: _Want, newest: TokenSet | None) -> None:
        if newest is not None and want.after_generation is None and want.min_validity >= newest.lifetime:
            raise MinValidityTooLongError(
                f"min_validity {want.min_validity} exceeds the token lifetime Entra issues ({newest.lifetime})"
            )

    def _servable(self, want: _Want) -> TokenSet | None:
        """The cached set if it is still unexpired (and not the rejected one)."""
        cached = self._cached
        if cached is None or cached.expires_on <= self._p.clock.now():
            return None
        if want.rejected is not None and cached.access_token == want.rejected:
            return None
        return cached

    def _due(self, token_set: TokenSet) -> bool:
        horizon = min(TIMER_REFRESH_HORIZON, token_set.lifetime * TIMER_REFRESH_LIFETIME_SHARE)
        return not token_set.access.valid_for(horizon, self._p.clock.now())

    async def _acquire_lease_waiting(self) -> Versioned[Lease]:
        deadline = self._p.clock.now() + LEASE_WAIT_BUDGET
        while True:
            lease = await self._p.leases.try_acquire(self.connection, self._p.holder, LEASE_TTL)
            if lease is not None:
                return lease
            if not await self._p.leases.wait_until_free(self.connection, deadline):
                raise RefreshTimeoutError(f"the refresh lease of '{self.connection}' stayed busy")

    async def _newest_known(self) -> TokenSet | None:
        """Read the store (one Key Vault read) and keep whichever of it and the cache is newer."""
        self._adopt(await self._p.tokens.read(self.connection))
        return self._cached

    async def _newest_or_cached(self) -> TokenSet | None:
        """The cached set while it is comfortably valid, else a store read (keeps Key Vault reads rare)."""
        cached = self._cached
        if cached is not None and cached.access.valid_for(DEFAULT_MIN_VALIDITY, self._p.clock.now()):
            return cached
        return await self._newest_known()

    def _adopt(self, token_set: TokenSet | None) -> None:
        if token_set is not None and token_set.is_newer_than(self._cached):
            self._cached = token_set

    def _clear_gate(self) -> None:
        self._gate_until = None
        self._transient_failures = 0

    def _extra(self, event: str, **fields: str) -> dict[str, str]:
        return {"connection": self.connection, "event": event, **fields}


def _admin_error(state: ConnectionState) -> AuthError:
    """The error a caller gets while an admin-needed state blocks refreshes."""
    step = NEXT_STEPS[state.health]
    if state.health is Health.CREDENTIALS_REJECTED:
        return CredentialsRejectedError(
            f"Entra refused the application earlier: {step}", error_code=state.last_error_code
        )
    return ReauthorizationRequiredError(
        f"the refresh token was refused earlier: {step}", error_code=state.last_error_code
    )
