"""TokenManager: serving and refreshing the tokens of one BC connection, read top to bottom.

What callers ask for comes first (`token`, `replacement_for`, `refresh_now`, `refresh_if_due`, `status`); how a
token set is served or refreshed follows. The admin's sign-in is shared.auth.sign_in::SignInFlow, which shares
this manager's `InProcess` (cache, Entra gate, lock). The collaborators each hold one thing: the per-process
cache backed by the token store (shared.auth.cache), the refresh lease shared by all processes
(shared.auth.leases), the two in-process gates after a transient failure, Entra's and the store's
(shared.auth.transient_gate), the connection record and its health (shared.auth.health) and Entra
(shared.auth.identity).

Verbs: *serve* = answer a caller from what is at hand (memory, then the store), refreshing only when nothing
there meets its `Demand`, and falling back to the cached set after a recoverable failure; *refresh* = obtain a
new set under the refresh lease, or take the one its holder obtained meanwhile; *redeem* = the one call to Entra
(client credentials, or the newest refresh token). A *forced* refresh (`refresh_now`, `refresh_if_due`) wants a
newer generation now: it probes past the backoffs and never falls back to the cached set.
Token sets: *cached* = the set in this process's memory (any age); *newest* = the newer of the store's set and
the cached one (one store read); *issued* = a set Entra just issued, not yet saved; *saved* = what the store
holds after the write; *recent* = refreshed less than `min_age` ago (forced refreshes return it as it is).

    token(min_validity)              the cached set if it lasts; else, under the lock:
    replacement_for(rejected)        under the lock:
    └── _serve(demand)               cached → store (unless its gate is closed) → refresh → cached fallback
        ├── _read_store()            newest; a failed read closes the store gate
        ├── _check_possible()        refuse a min_validity no token Entra issues can meet
        ├── _check_entra_allowed()   Entra gate closed, or an admin must act: raise instead
        └── _refresh(demand)         (below)
    refresh_now(min_age)             coalesced: callers arriving meanwhile share one outcome
    └── _refresh_unless_recent()     the recent set if there is one, else
        └── _refresh_forced(demand)  _refresh (below), with no cached fallback
    refresh_if_due()                 the timer: not due / not signed in / admin needed, else
    └── _refresh_forced(demand)      (as above)

    _refresh(demand)                 take the lease, or wait and take its holder's result; holding it:
    ├── newest                       someone else's set may meet the demand now (Key Vault only if the
    │                                lease row names a newer generation than the cached one)
    ├── _check_entra_allowed()       again, unless the demand is forced
    ├── _redeem(newest)              one Entra call; a failure is recorded (health, gate, telemetry)
    │   └── _successor(newest)       client credentials, or the newest refresh token
    ├── _save(issued, lease)         renew the lease claiming the generation (CAS: newest wins), write
    │                                without re-reading; store down: keep it in memory
    └── _record_refreshed(saved)     telemetry, health OK, log

Across all processes and instances one refresher at a time talks to Entra, under the lease and after checking
the store; the others pick up its result. The lease row names the *stored generation*, so a process reads Key
Vault only when the store holds a set newer than its cached one: about one read per token lifetime per process,
none for the refresher (shared.auth.cache gives the argument why no older set ever overwrites a newer one). A failed refresh keeps the still-valid cached token in service;
admin-needed failures stop calls to Entra until an admin acts or the probe backoff runs out.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
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
    Health,
    Lease,
    TokenSet,
    Versioned,
    first_token_set,
)
from shared.auth.next_steps import next_step
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
from shared.tokens import DEFAULT_MIN_VALIDITY, AccessToken, AuthMode, RefusedTokens, token_digest

__all__ = ["Collaborators", "Demand", "InProcess", "ScheduledOutcome", "TokenManager"]

logger = logging.getLogger(__name__)

# After BC rejected a token, the replacement only has to outlive the retried request.
REJECTED_RETRY_VALIDITY = timedelta(minutes=1)

# Failures after which a still-valid cached token is served instead (a forced refresh never is).
_RECOVERABLE = (
    TokenUnavailableError,
    ReauthorizationRequiredError,
    CredentialsRejectedError,
    NotAuthorizedError,
)


class ScheduledOutcome(StrEnum):
    """What a timer run did (the values are logged as the `outcome` field of event auth.timer)."""

    REFRESHED = "refreshed"
    NOT_DUE = "not_due"  # the stored token outlives the horizon
    BACKING_OFF = "backing_off"  # an admin must act; the next probe is later
    NOT_SIGNED_IN = "not_authorized"  # delegated mode and nobody signed in yet (value kept for log queries)


@dataclass(frozen=True, slots=True)
class Collaborators:
    """What one connection's token lifecycle is wired from (built by shared.auth.compose, or by tests)."""

    connection: str
    mode: AuthMode
    identity: IdentityProvider
    tokens: TokenStore
    leases: LeaseKeeper
    health: HealthRecorder
    clock: Clock
    holder: str  # this process's name on the refresh lease


@dataclass(frozen=True, slots=True)
class InProcess:
    """What serving and the admin's sign-in share inside one process for one connection."""

    cache: TokenCache
    entra_gate: TransientGate  # closed after a transient Entra failure; a refresh or a sign-in opens it
    lock: asyncio.Lock  # one caller at a time reads the store, refreshes or saves a sign-in, in this process

    @classmethod
    def of(cls, parts: Collaborators) -> InProcess:
        """An empty cache, an open gate and a free lock."""
        cache = TokenCache(parts.tokens, parts.connection, parts.clock, board=parts.leases)
        return cls(cache, TransientGate(parts.connection, parts.clock), asyncio.Lock())


@dataclass(frozen=True, slots=True)
class Demand:
    """What a caller needs from a token set; each constructor names one caller's demand."""

    min_validity: timedelta
    # Digests of the access tokens BC answered 401 to (shared.tokens.RefusedTokens): no set holding one meets it.
    refused: frozenset[str] = field(default=frozenset(), repr=False)
    after_generation: int | None = None  # a forced refresh wants a set newer than this

    @classmethod
    def replacing(cls, refused: frozenset[str]) -> Demand:
        """Any set but those BC refused, valid long enough for the retried request."""
        return cls(REJECTED_RETRY_VALIDITY, refused=refused)

    @classmethod
    def newer_than(cls, known: TokenSet | None) -> Demand:
        """A set of a later generation than `known` (a forced refresh)."""
        return cls(timedelta(0), after_generation=known.generation if known else 0)

    @property
    def forced(self) -> bool:
        """True for a forced refresh: it probes past the backoffs and never gets the cached set as fallback."""
        return self.after_generation is not None

    def met_by(self, token_set: TokenSet | None, now: datetime) -> TypeGuard[TokenSet]:
        """True when `token_set` meets every condition of this demand."""
        if token_set is None:
            return False
        if self.after_generation is not None and token_set.generation <= self.after_generation:
            return False
        if self.refuses(token_set):
            return False
        return token_set.access.valid_for(self.min_validity, now)

    def refuses(self, token_set: TokenSet) -> bool:
        """True when BC refused this set's access token (it can serve no caller, not even as a fallback)."""
        return bool(self.refused) and token_digest(token_set.access_token) in self.refused


class TokenManager:
    """Implements shared.tokens.TokenProvider for one BC connection, plus forced refreshes and the status."""

    def __init__(self, parts: Collaborators) -> None:
        self._parts = parts
        self._in_process = InProcess.of(parts)
        self._connection = parts.connection
        self._mode = parts.mode
        self._identity = parts.identity
        self._leases = parts.leases
        self._health = parts.health
        self._clock = parts.clock
        self._holder = parts.holder
        self._cache = self._in_process.cache
        self._entra_gate = self._in_process.entra_gate
        self._store_gate = TransientGate(parts.connection, parts.clock)  # closed after a failed store read
        self._lock = self._in_process.lock
        self._refreshing: asyncio.Future[AccessToken] | None = None
        self._refused = RefusedTokens()  # access tokens BC answered 401 to, by digest: never served again

    # -- what callers ask for ------------------------------------------------------------------------------

    @property
    def connection(self) -> str:
        """The connection name this manager serves."""
        return self._connection

    @property
    def parts(self) -> Collaborators:
        """What this manager is wired from (a SignInFlow beside it uses the same)."""
        return self._parts

    @property
    def in_process(self) -> InProcess:
        """The cache, Entra gate and lock a SignInFlow beside this manager shares."""
        return self._in_process

    async def has_token(self) -> bool:
        """True when an unexpired access token is known (cache or store)."""
        newest = await self._cache.newest(max_age=DEFAULT_MIN_VALIDITY)
        return newest is not None and newest.expires_on > self._clock.now()

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        """A token that stays valid at least `min_validity`, refreshing (once, across processes) if needed."""
        cached = self._cache.valid_for(min_validity)
        if cached is not None and cached.access not in self._refused:
            return cached.access
        async with self._lock:  # whoever held it may have refreshed or read what we need
            return (await self._serve(Demand(min_validity, refused=self._refused.digests()))).access

    async def replacement_for(self, rejected: AccessToken) -> AccessToken:
        """A token other than `rejected` (BC answered 401 to it): one already at hand, else a refreshed one.

        The refused token is remembered (by digest) before waiting for the lock, so no caller is served it again,
        and the callers that wait meanwhile share the first one's replacement: one store read and at most one
        refresh per refusal in this process, however many requests BC refused.
        """
        self._refused.note(rejected)
        async with self._lock:
            return (await self._serve(Demand.replacing(self._refused.digests()))).access

    async def refresh_now(self, *, min_age: timedelta = REFRESH_MIN_AGE) -> AccessToken:
        """A new token (POST /api/auth/refresh); probes past the backoffs.

        Refreshes coalesce: callers arriving while one runs share its outcome (token or error), and a set
        refreshed less than `min_age` ago (by any process) is returned as it is.
        """
        running = self._refreshing
        if running is None or running.done():
            running = asyncio.ensure_future(self._refresh_unless_recent(min_age))
            running.add_done_callback(_retrieve)
            self._refreshing = running
        return await asyncio.shield(running)

    async def refresh_if_due(self) -> ScheduledOutcome:
        """The timer's refresh: when the stored token would not outlive the horizon; honours the admin-needed
        backoff. (The timer also purges expired sign-ins: SignInFlow.purge_expired.)"""
        async with self._lock:
            newest = await self._cache.newest()
            if newest is not None and not self._due(newest):
                return ScheduledOutcome.NOT_DUE
            if self._mode is AuthMode.DELEGATED and newest is None:
                return ScheduledOutcome.NOT_SIGNED_IN
            if self._health.blocks(await self._health.read(), newest):
                return ScheduledOutcome.BACKING_OFF
            await self._refresh_forced(Demand.newer_than(newest))
            return ScheduledOutcome.REFRESHED

    async def status(self) -> ConnectionStatus:
        """Token health without the token: has one? until when? last refresh and error, next step.

        The token set and the connection record are read at once (the status page reads every connection's).
        An unreadable store degrades the answer rather than failing it: what is known is still shown.
        """
        (newest, token_problem), (record, record_problem) = await asyncio.gather(
            self._newest_for_status(), self._record_for_status()
        )
        problem = token_problem or record_problem
        now = self._clock.now()
        return build_status(
            self.connection, self._mode, newest, record, now, problem, self._health.registered
        )

    async def _newest_for_status(self) -> tuple[TokenSet | None, TokenStoreUnavailableError | None]:
        try:
            return await self._cache.newest(max_age=DEFAULT_MIN_VALIDITY), None
        except TokenStoreUnavailableError as exc:
            return self._cache.cached, exc

    async def _record_for_status(self) -> tuple[ConnectionRecord, TokenStoreUnavailableError | None]:
        try:
            return await self._health.read_strict(), None
        except TokenStoreUnavailableError as exc:
            return ConnectionRecord(self.connection), exc

    # -- serving: the store first, then a refresh under the lease, the cached set as the fallback ------------

    async def _serve(self, demand: Demand) -> TokenSet:
        """A set meeting `demand`: the cached one, else the store's, else one refreshed under the lease; on a
        recoverable failure, or while the store gate is closed, the still-valid cached set."""
        if demand.met_by(self._cache.cached, self._clock.now()):
            return self._cache.cached
        if self._store_gate.is_closed() and (cached := self._unrefused_cached(demand)):
            return cached
        if self._store_gate.is_closed() and demand.refused:
            # After a refusal, a failing store is read once per backoff, not once per caller.
            return self._fall_back(
                demand, TokenStoreUnavailableError(f"store of '{self.connection}' failing")
            )
        try:
            newest = await self._read_store()
            if demand.met_by(newest, self._clock.now()):
                return newest
            self._check_possible(demand, newest)
            await self._check_entra_allowed(newest)
            return await self._refresh(demand)
        except _RECOVERABLE as exc:
            return self._fall_back(demand, exc)

    async def _read_store(self) -> TokenSet | None:
        """The newest set, read from the store; a failed read closes the store gate for a backoff."""
        try:
            newest = await self._cache.newest()
        except TokenStoreUnavailableError as exc:
            self._store_gate.close_after(exc)
            raise
        self._store_gate.open()
        return newest

    async def _refresh_unless_recent(self, min_age: timedelta) -> AccessToken:
        """One forced refresh, unless the newest set (cache, else store) was refreshed within `min_age`."""
        async with self._lock:
            recent = self._recent(self._cache.cached, min_age)
            if recent is not None:
                return recent.access
            try:
                known = await self._cache.newest()  # the store's generation, not a stale cache's
            except TokenStoreUnavailableError:
                known = self._cache.cached
            recent = self._recent(known, min_age)
            if recent is not None:
                return recent.access
            return (await self._refresh_forced(Demand.newer_than(known))).access

    async def _refresh_forced(self, demand: Demand) -> TokenSet:
        """A set meeting a forced `demand`, from Entra (or from whoever refreshed meanwhile); no cached fallback."""
        try:
            return await self._refresh(demand)
        except _RECOVERABLE as exc:
            return self._fall_back(demand, exc)

    def _unrefused_cached(self, demand: Demand) -> TokenSet | None:
        """The cached set while its access token is unexpired and BC has not refused it."""
        cached = self._cache.unexpired()
        return None if cached is None or demand.refuses(cached) else cached

    def _fall_back(self, demand: Demand, exc: AuthError) -> TokenSet:
        """The still-valid cached set after a recoverable failure (never for a forced refresh), or a clear error."""
        cached = None if demand.forced else self._unrefused_cached(demand)
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

    async def _refresh(self, demand: Demand) -> TokenSet:
        """Under the lease: re-read, re-check (unless forced), redeem once, save newest-wins, record the health;
        or wait for whoever holds the lease and take their result."""
        deadline = self._clock.now() + LEASE_WAIT_BUDGET
        while (lease := await self._leases.acquire_or_wait(self.connection, self._holder, deadline)) is None:
            newest = await self._cache.newest()  # the holder finished: did it make what we need?
            if demand.met_by(newest, self._clock.now()):
                return newest
        async with self._leases.holding(lease):
            newest = await self._cache.newest()
            if demand.met_by(newest, self._clock.now()):
                return newest
            if not demand.forced:
                await self._check_entra_allowed(newest)
            issued = _above_claimed(await self._redeem(newest), lease)
            self._entra_gate.open()
            saved = await self._save(issued, lease)
            await self._record_refreshed(saved)
            return saved

    async def _redeem(self, newest: TokenSet | None) -> TokenSet:
        """One call to Entra; a failure is recorded (health, gate, telemetry) before it is raised."""
        try:
            return await self._successor(newest)
        except (ReauthorizationRequiredError, CredentialsRejectedError) as exc:
            telemetry.token_refresh(self.connection, "admin_needed")
            await self._health.record_admin_needed(exc, newest)
            raise
        except TokenRefreshFailedError as exc:
            telemetry.token_refresh(self.connection, "failed")
            await self._close_entra_gate(exc)
            raise

    async def _successor(self, newest: TokenSet | None) -> TokenSet:
        """The set Entra issues after `newest`: client credentials, or the newest refresh token (delegated)."""
        now = self._clock.now()  # before the call: the expiry we compute errs on the early side
        if self._mode is AuthMode.CLIENT_CREDENTIALS:
            grant = await self._identity.acquire_for_client()
            if newest is None:
                return first_token_set(self.connection, self._mode, grant, now, generation=1)
            return newest.successor(grant, now)
        if newest is None or not newest.refresh_token:
            step = next_step(Health.NOT_AUTHORIZED, self._mode, self._health.registered)
            raise NotAuthorizedError(f"connection '{self.connection}' has no refresh token: {step}")
        grant = await self._identity.redeem_refresh_token(newest.refresh_token)
        return newest.successor(grant, now)

    async def _save(self, issued: TokenSet, lease: Versioned[Lease]) -> TokenSet:
        """Claim its generation while renewing the lease (one CAS: newest wins), then write it without
        re-reading the store (shared.auth.cache says why that suffices); if the store is down, keep it in memory.

        Lenient on purpose: the refresh already happened at Entra, so a set that could not be saved is
        still served from this process's memory and saved by its next refresh (sign-in is strict instead).
        """
        try:
            renewed = await self._leases.renew(lease, LEASE_TTL, generation=issued.generation)
        except StaleTokenSetError:
            return await self._newer_stored(issued)
        if renewed is None:
            logger.warning(
                "refresh lease lost before saving; not writing", extra=self._log_fields("auth.lease_lost")
            )
            return issued
        try:
            return await self._cache.write_claimed(issued)
        except TokenStoreUnavailableError:
            logger.error(
                "token refreshed but not saved (token store unavailable); kept in memory",
                extra=self._log_fields("auth.save_failed", generation=str(issued.generation)),
            )
            self._cache.adopt(issued)
            return issued

    async def _newer_stored(self, issued: TokenSet) -> TokenSet:
        """The set stored meanwhile, whose generation the lease row names above `issued`'s."""
        logger.warning(
            "a newer token set was stored meanwhile; keeping it", extra=self._log_fields("auth.stale_write")
        )
        newest = await self._cache.newest()
        return newest if newest is not None else issued

    async def _record_refreshed(self, saved: TokenSet) -> None:
        """Telemetry, health and the log line of a successful refresh."""
        telemetry.token_refresh(self.connection, "refreshed", saved.expires_on)
        await self._health.record_success()
        logger.info(
            "token refreshed",
            extra=self._log_fields(
                "auth.refreshed", generation=str(saved.generation), expires_on=saved.expires_on.isoformat()
            ),
        )

    # -- rules ---------------------------------------------------------------------------------------------

    async def _check_entra_allowed(self, newest: TokenSet | None) -> None:
        """Raise instead of calling Entra while the Entra gate is closed or an admin must act (health record)."""
        self._entra_gate.check()
        record = await self._health.read()
        if self._health.blocks(record, newest):
            raise admin_error(record, self._mode, self._health.registered)

    async def _close_entra_gate(self, exc: TokenRefreshFailedError) -> None:
        """After a transient failure: nobody in this process calls Entra again before the backoff ends."""
        reopens = self._entra_gate.close_after(exc)
        logger.warning(
            "refresh of '%s' failed (attempt %d in a row), next attempt after %s: %s. Check BC_AUTHORITY_HOST "
            "and the network path to Entra.",
            self.connection,
            self._entra_gate.failures_in_a_row,
            reopens.isoformat(),
            describe(exc),
            extra=self._log_fields("auth.refresh_failed"),
        )
        await self._health.record_transient(exc)

    def _check_possible(self, demand: Demand, newest: TokenSet | None) -> None:
        """Refuse a min_validity no token Entra issues can meet (refreshing would not help)."""
        if newest is not None and not demand.forced and demand.min_validity >= newest.lifetime:
            raise MinValidityTooLongError(
                f"min_validity {demand.min_validity} exceeds the token lifetime Entra issues ({newest.lifetime})"
            )

    def _recent(self, token_set: TokenSet | None, min_age: timedelta) -> TokenSet | None:
        """`token_set` if it was refreshed (not signed in) less than `min_age` ago, is unexpired, is in the
        store (a set whose write failed is refreshed again, so that its successor gets saved) and BC has not
        refused it (an admin's check right after a new consent must redeem, not get the dead token back)."""
        if token_set is None or token_set.from_sign_in or not self._cache.is_stored(token_set):
            return None
        if token_set.access in self._refused:
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


def _above_claimed(issued: TokenSet, lease: Versioned[Lease]) -> TokenSet:
    """`issued`, numbered above the generation the lease row names: a claim whose write failed leaves the row
    above the store, and the next set must not reuse that generation (shared.auth.cache)."""
    claimed = lease.value.generation
    if claimed is None or issued.generation > claimed:
        return issued
    return replace(issued, generation=claimed + 1)


def _retrieve(future: asyncio.Future[AccessToken]) -> None:
    """Mark a shared refresh's exception as retrieved (its callers may all have been cancelled)."""
    if not future.cancelled():
        future.exception()
