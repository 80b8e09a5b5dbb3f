"""TokenManager: the token lifecycle of one BC connection, read top to bottom.

What callers ask for comes first (`token`, `refresh`, `scheduled_refresh`, the admin's sign-in, `status`); how a
token is served or renewed follows. The collaborators each hold one thing: the per-process cache backed by the
token store (shared.auth.cache), the refresh lease shared by all processes (shared.auth.leases), the in-process
gate after a transient failure (shared.auth.transient_gate), the connection record and its health
(shared.auth.health), pending sign-ins (shared.auth.signins) and Entra (shared.auth.identity).

Across all processes and instances one refresher at a time talks to Entra, under the lease and after re-reading
the store; the others pick up its result. A failed refresh keeps the still-valid cached token in service;
admin-needed failures stop calls to Entra until an admin acts or the probe backoff runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeGuard

from shared import telemetry
from shared.auth.cache import TokenCache
from shared.auth.causes import describe
from shared.auth.errors import (
    AuthError,
    CredentialsRejectedError,
    MinValidityTooLongError,
    NotAuthorizedError,
    ReauthorizationRequiredError,
    SignInNotSavedError,
    SignInRejectedError,
    StaleTokenSetError,
    TokenRefreshFailedError,
    TokenStoreUnavailableError,
    TokenUnavailableError,
)
from shared.auth.health import HealthRecorder, admin_error
from shared.auth.identity import IdentityProvider
from shared.auth.leases import LeaseKeeper
from shared.auth.models import (
    ConnectionRecord,
    ConnectionStatus,
    Grant,
    Health,
    Lease,
    TokenSet,
    Versioned,
    first_token_set,
)
from shared.auth.next_steps import next_step
from shared.auth.signins import PendingSignIns
from shared.auth.status import build_status
from shared.auth.stores import TokenStore
from shared.auth.timing import (
    LEASE_TTL,
    LEASE_WAIT_BUDGET,
    REFRESH_MIN_AGE,
    TIMER_REFRESH_HORIZON,
    TIMER_REFRESH_LIFETIME_SHARE,
    TRANSIENT_BACKOFF,
)
from shared.auth.transient_gate import TransientGate
from shared.clock import Clock
from shared.settings import AuthMode
from shared.tokens import DEFAULT_MIN_VALIDITY, AccessToken

__all__ = ["Collaborators", "ScheduledOutcome", "TokenManager"]

logger = logging.getLogger(__name__)

# After BC rejected a token, the replacement only has to outlive the retried request.
REJECTED_RETRY_VALIDITY = timedelta(minutes=1)

# Failures after which a still-valid cached token is served instead (a renewal forced by the caller never is).
_RECOVERABLE = (
    TokenUnavailableError,
    ReauthorizationRequiredError,
    CredentialsRejectedError,
    NotAuthorizedError,
)
_SIGN_IN_NOT_SAVED = (
    "the sign-in could not be saved ({reason}); nothing is stored: sign in again at /api/auth/login"
)


class ScheduledOutcome(StrEnum):
    """What a timer run did."""

    REFRESHED = "refreshed"
    NOT_DUE = "not_due"  # the stored token outlives the horizon
    BACKING_OFF = "backing_off"  # an admin must act; the next probe is later
    NOT_AUTHORIZED = "not_authorized"  # delegated mode and nobody signed in yet


@dataclass(frozen=True, slots=True)
class Collaborators:
    """What one connection's token lifecycle is wired from (built by shared.auth.compose, or by tests)."""

    connection: str
    mode: AuthMode
    identity: IdentityProvider
    tokens: TokenStore
    leases: LeaseKeeper
    sign_ins: PendingSignIns
    health: HealthRecorder
    clock: Clock
    holder: str  # this process's name on the refresh lease


@dataclass(frozen=True, slots=True)
class Need:
    """What a caller needs from a token set; each constructor names one caller's need."""

    min_validity: timedelta
    rejected: str | None = field(default=None, repr=False)  # an access token BC answered 401 to
    after_generation: int | None = None  # a renewal wants a set newer than this

    @classmethod
    def replacing(cls, rejected: AccessToken) -> Need:
        """Any set but the one BC rejected, valid long enough for the retried request."""
        return cls(REJECTED_RETRY_VALIDITY, rejected=rejected.value)

    @classmethod
    def newer_than(cls, known: TokenSet | None) -> Need:
        """A set of a later generation than `known` (a renewal)."""
        return cls(timedelta(0), after_generation=known.generation if known else 0)

    def met_by(self, token_set: TokenSet | None, now: datetime) -> TypeGuard[TokenSet]:
        """True when `token_set` meets every condition of this need."""
        if token_set is None:
            return False
        if self.after_generation is not None and token_set.generation <= self.after_generation:
            return False
        if self.rejected is not None and token_set.access_token == self.rejected:
            return False
        return token_set.access.valid_for(self.min_validity, now)


class TokenManager:
    """Implements shared.tokens.TokenProvider for one BC connection, plus sign-in, the timer's refresh and status."""

    def __init__(self, parts: Collaborators) -> None:
        self._connection = parts.connection
        self._mode = parts.mode
        self._identity = parts.identity
        self._leases = parts.leases
        self._sign_ins = parts.sign_ins
        self._health = parts.health
        self._clock = parts.clock
        self._holder = parts.holder
        self._cache = TokenCache(parts.tokens, parts.connection, parts.clock)
        self._gate = TransientGate(parts.connection, parts.clock)  # Entra
        self._store_gate = TransientGate(parts.connection, parts.clock)  # the token store's reads
        self._lock = asyncio.Lock()  # one caller at a time reads the store or refreshes, in this process
        self._refreshing: asyncio.Future[AccessToken] | None = None

    # -- what callers ask for ------------------------------------------------------------------------------

    @property
    def connection(self) -> str:
        """The connection name this manager serves."""
        return self._connection

    async def has_token(self) -> bool:
        """True when an unexpired access token is known (cache or store)."""
        newest = await self._cache.newest(max_age=DEFAULT_MIN_VALIDITY)
        return newest is not None and newest.expires_on > self._clock.now()

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        """A token that stays valid at least `min_validity`, refreshing (once, across processes) if needed."""
        fresh = self._cache.fresh(min_validity)
        if fresh is not None:
            return fresh.access
        async with self._lock:  # whoever held it may have refreshed or read what we need
            return (await self._serve(Need(min_validity))).access

    async def replacement_for(self, rejected: AccessToken) -> AccessToken:
        """A token other than `rejected` (BC answered 401 to it): one already at hand, else a refreshed one."""
        async with self._lock:
            return (await self._serve(Need.replacing(rejected))).access

    async def refresh_now(self, *, min_age: timedelta = REFRESH_MIN_AGE) -> AccessToken:
        """A new token (POST /api/auth/refresh); probes past the backoffs.

        Refreshes coalesce: callers arriving while one runs share its outcome (token or error), and a set
        refreshed less than `min_age` ago (by any process) is returned as it is.
        """
        running = self._refreshing
        if running is None or running.done():
            running = asyncio.ensure_future(self._refresh_now(min_age))
            running.add_done_callback(_retrieve)
            self._refreshing = running
        return await asyncio.shield(running)

    async def scheduled_refresh(self) -> ScheduledOutcome:
        """The timer's job: purge expired sign-ins, then renew when the stored token would not outlive the
        horizon; honours the admin-needed backoff."""
        await self._purge_expired_sign_ins()
        async with self._lock:
            newest = await self._cache.newest()
            if newest is not None and not self._due(newest):
                return ScheduledOutcome.NOT_DUE
            if self._mode is AuthMode.DELEGATED and newest is None:
                return ScheduledOutcome.NOT_AUTHORIZED
            if self._health.blocks(await self._health.read(), newest):
                return ScheduledOutcome.BACKING_OFF
            await self._renew(Need.newer_than(newest))
            return ScheduledOutcome.REFRESHED

    async def begin_authorization(self, redirect_uri: str) -> str:
        """Start an admin sign-in (delegated mode): keeps the flow server-side, returns Entra's URL."""
        if self._mode is not AuthMode.DELEGATED:
            raise AuthError("sign-in is only used in delegated mode (BC_AUTH_MODE=delegated)")
        start = await self._identity.start_sign_in(redirect_uri)
        await self._sign_ins.remember(start)
        await self._purge_expired_sign_ins()
        logger.info("admin sign-in started", extra=self._log_fields("auth.sign_in_started"))
        return start.auth_uri

    async def complete_authorization(self, response: Mapping[str, str]) -> ConnectionStatus:
        """Finish a sign-in from the callback's query; raises SignInNotSavedError when nothing was stored.

        Strict about saving: the sign-in is reported (logged, health OK, cached) only after its token set was
        really written; otherwise the admin would be told the connection works while the refresh token lives
        only in this process's memory.
        """
        pending = await self._sign_ins.consume(response.get("state"))
        if "error" in response:
            code = "".join(ch for ch in response["error"] if ch.isalnum() or ch == "_")[:64]
            raise SignInRejectedError(f"Entra returned the sign-in with an error ({code})")
        grant = await self._identity.finish_sign_in(pending.flow, response)
        saved = await self._store_sign_in(grant)
        logger.info(
            "admin sign-in completed",
            extra=self._log_fields(
                "auth.sign_in_completed", generation=str(saved.generation), account=saved.account or ""
            ),
        )
        return await self.status()

    async def status(self) -> ConnectionStatus:
        """Token health without the token: has one? until when? last refresh and error, next step.

        An unreadable store degrades the answer rather than failing it: what is known is still shown.
        """
        problems: list[TokenStoreUnavailableError] = []
        try:
            newest = await self._cache.newest(max_age=DEFAULT_MIN_VALIDITY)
        except TokenStoreUnavailableError as exc:
            newest = self._cache.current
            problems.append(exc)
        try:
            record = await self._health.read_strict()
        except TokenStoreUnavailableError as exc:
            record = ConnectionRecord(self.connection)
            problems.append(exc)
        problem = problems[0] if problems else None
        return build_status(self.connection, self._mode, newest, record, self._clock.now(), problem)

    # -- serving: the store first, then a coordinated refresh, the cached token as the fallback -------------

    async def _serve(self, need: Need) -> TokenSet:
        """A set meeting `need`: the cached one, else the store's, else one refreshed under the lease; on a
        recoverable failure, or while the store backs off after one, the still-valid cached set."""
        if need.met_by(self._cache.current, self._clock.now()):
            return self._cache.current
        if self._store_gate.is_closed() and (cached := self._cache.unexpired(besides=need.rejected)):
            return cached
        try:
            newest = await self._read_store()
            if need.met_by(newest, self._clock.now()):
                return newest
            self._check_possible(need, newest)
            await self._check_gates(newest)
            return await self._refresh_coordinated(need, gated=True)
        except _RECOVERABLE as exc:
            return self._fall_back(need, exc, serve_cached=True)

    async def _read_store(self) -> TokenSet | None:
        """The newest set, read from the store; a failed read closes the store's gate for a backoff."""
        try:
            newest = await self._cache.newest()
        except TokenStoreUnavailableError as exc:
            self._store_gate.close_after(exc)
            raise
        self._store_gate.open()
        return newest

    async def _refresh_now(self, min_age: timedelta) -> AccessToken:
        """One renewal, unless the newest set (cache, else store) was refreshed within `min_age`."""
        async with self._lock:
            young = self._young(self._cache.current, min_age)
            if young is not None:
                return young.access
            try:
                baseline = await self._cache.newest()  # the store's generation, not a stale cache's
            except TokenStoreUnavailableError:
                baseline = self._cache.current
            young = self._young(baseline, min_age)
            if young is not None:
                return young.access
            return (await self._renew(Need.newer_than(baseline))).access

    async def _renew(self, need: Need) -> TokenSet:
        """A set meeting `need` from Entra (or from whoever refreshed meanwhile); no gate, no cached fallback."""
        try:
            return await self._refresh_coordinated(need, gated=False)
        except _RECOVERABLE as exc:
            return self._fall_back(need, exc, serve_cached=False)

    def _fall_back(self, need: Need, exc: AuthError, *, serve_cached: bool) -> TokenSet:
        """The still-valid cached set after a recoverable failure, or a clear error."""
        cached = self._cache.unexpired(besides=need.rejected) if serve_cached else None
        if cached is None and isinstance(exc, TokenStoreUnavailableError):
            raise TokenStoreUnavailableError(
                f"token store unavailable and no unexpired cached token for '{self.connection}'; retry later "
                "(the app's log names the cause: event auth.dependency_failed)",
                retry_after=self._clock.now() + TRANSIENT_BACKOFF.first,
            ) from exc
        if cached is None:
            raise exc
        logger.warning(
            "serving the cached token (valid until %s) after: %s",
            cached.expires_on.isoformat(),
            type(exc).__name__,
            extra=self._log_fields("auth.serving_cached"),
        )
        return cached

    # -- refreshing under the lease ------------------------------------------------------------------------

    async def _refresh_coordinated(self, need: Need, *, gated: bool) -> TokenSet:
        """Refresh under the lease, or wait for whoever holds it and take their result."""
        deadline = self._clock.now() + LEASE_WAIT_BUDGET
        while (lease := await self._leases.acquire_or_wait(self.connection, self._holder, deadline)) is None:
            newest = await self._cache.newest()  # the holder finished: did it make what we need?
            if need.met_by(newest, self._clock.now()):
                return newest
        async with self._holding(lease):
            return await self._refresh_holding(lease, need, gated=gated)

    async def _refresh_holding(self, lease: Versioned[Lease], need: Need, *, gated: bool) -> TokenSet:
        """Holding the lease: re-read, re-check, call Entra once, save newest-wins, record the health."""
        newest = await self._cache.newest()
        if need.met_by(newest, self._clock.now()):
            return newest
        if gated:
            await self._check_gates(newest)
        candidate = await self._redeem(newest)
        self._gate.open()
        saved = await self._save_refreshed(candidate, lease)
        telemetry.token_refresh(self.connection, "refreshed", saved.expires_on)
        await self._health.record_success()
        logger.info(
            "token refreshed",
            extra=self._log_fields(
                "auth.refreshed", generation=str(saved.generation), expires_on=saved.expires_on.isoformat()
            ),
        )
        return saved

    async def _redeem(self, newest: TokenSet | None) -> TokenSet:
        """One call to Entra; a failure is recorded (health, gate, telemetry) before it is raised."""
        try:
            return await self._call_entra(newest)
        except (ReauthorizationRequiredError, CredentialsRejectedError) as exc:
            telemetry.token_refresh(self.connection, "admin_needed")
            await self._health.record_admin_needed(exc, newest)
            raise
        except TokenRefreshFailedError as exc:
            telemetry.token_refresh(self.connection, "failed")
            await self._close_gate(exc)
            raise

    async def _call_entra(self, newest: TokenSet | None) -> TokenSet:
        """Client credentials, or the newest refresh token (delegated)."""
        now = self._clock.now()  # before the call: the expiry we compute errs on the early side
        if self._mode is AuthMode.CLIENT_CREDENTIALS:
            grant = await self._identity.acquire_for_client()
            if newest is None:
                return first_token_set(self.connection, self._mode, grant, now, generation=1)
            return newest.successor(grant, now)
        if newest is None or not newest.refresh_token:
            step = next_step(Health.NOT_AUTHORIZED, self._mode)
            raise NotAuthorizedError(f"connection '{self.connection}' has no refresh token: {step}")
        grant = await self._identity.redeem_refresh_token(newest.refresh_token)
        return newest.successor(grant, now)

    async def _save_refreshed(self, candidate: TokenSet, lease: Versioned[Lease]) -> TokenSet:
        """Persist under a still-held lease, newest wins; if the store is down, keep it in memory.

        Lenient on purpose: the refresh already happened at Entra, so a token that could not be saved is
        still served from this process's memory and saved by its next refresh (sign-in is strict instead).
        """
        if await self._leases.renew(lease, LEASE_TTL) is None:
            logger.warning(
                "refresh lease lost before saving; not writing", extra=self._log_fields("auth.lease_lost")
            )
            return candidate
        try:
            return await self._cache.save(candidate)
        except StaleTokenSetError:
            logger.warning(
                "a newer token set was stored meanwhile; keeping it",
                extra=self._log_fields("auth.stale_write"),
            )
            newest = await self._cache.newest()
            return newest if newest is not None else candidate
        except TokenStoreUnavailableError:
            logger.error(
                "token refreshed but not saved (token store unavailable); kept in memory",
                extra=self._log_fields("auth.save_failed", generation=str(candidate.generation)),
            )
            self._cache.adopt(candidate)
            return candidate

    @asynccontextmanager
    async def _holding(self, lease: Versioned[Lease]) -> AsyncIterator[None]:
        """Give the lease back afterwards; if the table is down it simply expires (the outcome stands)."""
        try:
            yield
        finally:
            try:
                await self._leases.release(lease)
            except TokenStoreUnavailableError:
                logger.warning(
                    "refresh lease not released", extra=self._log_fields("auth.lease_release_failed")
                )

    # -- the admin's sign-in -------------------------------------------------------------------------------

    async def _store_sign_in(self, grant: Grant) -> TokenSet:
        """Under the lease, a generation above the stored chain, written for real, or SignInNotSavedError."""
        async with self._lock:
            try:
                saved = await self._save_sign_in(grant)
            except (TokenUnavailableError, StaleTokenSetError) as exc:
                raise SignInNotSavedError(_SIGN_IN_NOT_SAVED.format(reason=type(exc).__name__)) from exc
            self._gate.open()
            await self._health.record_success()
            return saved

    async def _save_sign_in(self, grant: Grant) -> TokenSet:
        deadline = self._clock.now() + LEASE_WAIT_BUDGET
        lease = await self._leases.acquire_waiting(self.connection, self._holder, deadline)
        async with self._holding(lease):
            newest = await self._cache.newest()
            generation = (newest.generation if newest else 0) + 1
            fresh = first_token_set(self.connection, self._mode, grant, self._clock.now(), generation)
            if await self._leases.renew(lease, LEASE_TTL) is None:
                raise SignInNotSavedError(_SIGN_IN_NOT_SAVED.format(reason="refresh lease lost"))
            return await self._cache.save(fresh)

    async def _purge_expired_sign_ins(self) -> None:
        """Delete expired pending sign-ins (best effort: a store failure is logged, never raised)."""
        try:
            await self._sign_ins.purge()
        except TokenStoreUnavailableError:
            logger.warning("could not purge old sign-ins", extra=self._log_fields("auth.purge_failed"))

    # -- rules ---------------------------------------------------------------------------------------------

    async def _check_gates(self, newest: TokenSet | None) -> None:
        """Raise instead of calling Entra while this process backs off or an admin must act."""
        self._gate.check()
        record = await self._health.read()
        if self._health.blocks(record, newest):
            raise admin_error(record, self._mode)

    async def _close_gate(self, exc: TokenRefreshFailedError) -> None:
        """After a transient failure: nobody in this process calls Entra again before the backoff ends."""
        reopens = self._gate.close_after(exc)
        logger.warning(
            "refresh of '%s' failed (attempt %d in a row), next attempt after %s: %s. Check BC_AUTHORITY_HOST "
            "and the network path to Entra.",
            self.connection,
            self._gate.failures_in_a_row,
            reopens.isoformat(),
            describe(exc),
            extra=self._log_fields("auth.refresh_failed"),
        )
        await self._health.record_transient(exc)

    def _check_possible(self, need: Need, newest: TokenSet | None) -> None:
        """Refuse a min_validity no token Entra issues can meet (refreshing would not help)."""
        if newest is not None and need.after_generation is None and need.min_validity >= newest.lifetime:
            raise MinValidityTooLongError(
                f"min_validity {need.min_validity} exceeds the token lifetime Entra issues ({newest.lifetime})"
            )

    def _young(self, token_set: TokenSet | None, min_age: timedelta) -> TokenSet | None:
        """`token_set` if it was refreshed (not signed in) less than `min_age` ago, is unexpired and is in the
        store (a set whose write failed is refreshed again, so that its successor gets saved)."""
        if token_set is None or token_set.from_sign_in or not self._cache.is_stored(token_set):
            return None
        now = self._clock.now()
        return token_set if now - token_set.obtained_at < min_age and token_set.expires_on > now else None

    def _due(self, token_set: TokenSet) -> bool:
        """True when `token_set` would not outlive the timer's horizon."""
        horizon = min(TIMER_REFRESH_HORIZON, token_set.lifetime * TIMER_REFRESH_LIFETIME_SHARE)
        return not token_set.access.valid_for(horizon, self._clock.now())

    def _log_fields(self, event: str, **fields: str) -> dict[str, str]:
        """Structured log fields naming the connection and the event."""
        return {"connection": self.connection, "event": event, **fields}


def _retrieve(future: asyncio.Future[AccessToken]) -> None:
    """Mark a shared refresh's exception as retrieved (its callers may all have been cancelled)."""
    if not future.cancelled():
        future.exception()
