"""TokenManager: the TokenProvider every worker uses, plus sign-in, scheduled refresh and status.

A thin facade keeping the public API in one place: the refresh path lives in shared.auth.refresher, admin
sign-in in shared.auth.signin and the status view in shared.auth.status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum

from shared.auth.components import Components
from shared.auth.errors import TokenStoreUnavailableError
from shared.auth.models import ConnectionState, ConnectionStatus, TokenSet
from shared.auth.refresher import Refresher, Want
from shared.auth.retry import REFRESH_MIN_AGE
from shared.auth.signin import SignIn
from shared.auth.status import build_status
from shared.settings import AuthMode
from shared.tokens import DEFAULT_MIN_VALIDITY, AccessToken

__all__ = ["Components", "ScheduledOutcome", "TokenManager"]

# After BC rejected a token, the replacement only has to outlive the retried request.
REJECTED_RETRY_VALIDITY = timedelta(minutes=1)


class ScheduledOutcome(StrEnum):
    """What a timer run did."""

    REFRESHED = "refreshed"
    NOT_DUE = "not_due"  # the stored token outlives the horizon
    BACKING_OFF = "backing_off"  # an admin must act; the next probe is later
    NOT_AUTHORIZED = "not_authorized"  # delegated mode and nobody signed in yet


class TokenManager:
    """Implements shared.tokens.TokenProvider for one BC connection."""

    def __init__(self, parts: Components) -> None:
        self._p = parts
        self._refresher = Refresher(parts)
        self._sign_in = SignIn(parts, self._refresher)
        self._refreshing: asyncio.Future[AccessToken] | None = None

    @property
    def connection(self) -> str:
        """The connection name this manager serves."""
        return self._p.connection

    async def has_token(self) -> bool:
        """True when an unexpired access token is known (cache or store)."""
        newest = await self._refresher.newest_or_cached()
        return newest is not None and newest.expires_on > self._p.clock.now()

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        """A token that stays valid at least `min_validity`, refreshing (once, across processes) if needed."""
        cached = self._refresher.cached
        if cached is not None and cached.access.valid_for(min_validity, self._p.clock.now()):
            return cached.access
        async with self._refresher.lock:
            return (await self._refresher.obtain(Want(min_validity), force=False)).access

    async def refresh(
        self, rejected: AccessToken | None = None, *, min_age: timedelta = REFRESH_MIN_AGE
    ) -> AccessToken:
        """A new token; with `rejected`, a newer token already available is returned instead.

        Without `rejected` ("refresh now"), refreshes coalesce: callers arriving while one runs share its outcome
        (token or error), and a set refreshed less than `min_age` ago (by any process) is returned as it is.
        """
        if rejected is not None:
            async with self._refresher.lock:
                want = Want(REJECTED_RETRY_VALIDITY, rejected=rejected.value)
                return (await self._refresher.obtain(want, force=False)).access
        running = self._refreshing
        if running is None or running.done():
            running = asyncio.ensure_future(self._refresh_now(min_age))
            running.add_done_callback(_retrieve)
            self._refreshing = running
        return await asyncio.shield(running)

    async def _refresh_now(self, min_age: timedelta) -> AccessToken:
        """One forced refresh, unless the newest set (cache, else store) was refreshed within `min_age`."""
        async with self._refresher.lock:
            young = self._young(self._refresher.cached, min_age)
            if young is not None:
                return young.access
            try:
                baseline = await self._refresher.newest_known()  # the store's generation, not a stale cache's
            except TokenStoreUnavailableError:
                baseline = self._refresher.cached
            young = self._young(baseline, min_age)
            if young is not None:
                return young.access
            want = Want(timedelta(0), after_generation=baseline.generation if baseline else 0)
            return (await self._refresher.obtain(want, force=True, just_read=True)).access

    def _young(self, token_set: TokenSet | None, min_age: timedelta) -> TokenSet | None:
        """`token_set` if it was refreshed (not signed in) less than `min_age` ago, is unexpired and is in the
        store (a set whose write failed is refreshed again, so that its successor gets saved)."""
        if token_set is None or token_set.from_sign_in or not self._refresher.is_stored(token_set):
            return None
        now = self._p.clock.now()
        return token_set if now - token_set.obtained_at < min_age and token_set.expires_on > now else None

    async def scheduled_refresh(self) -> ScheduledOutcome:
        """The timer's job: purge expired sign-ins, then refresh when the stored token would not outlive
        the horizon; honours backoff."""
        await self._sign_in.purge_expired()
        async with self._refresher.lock:
            newest = await self._refresher.newest_known()
            if newest is not None and not self._refresher.due(newest):
                return ScheduledOutcome.NOT_DUE
            if self._p.mode is AuthMode.DELEGATED and newest is None:
                return ScheduledOutcome.NOT_AUTHORIZED
            if self._p.states.blocks(await self._p.states.read(), newest):
                return ScheduledOutcome.BACKING_OFF
            want = Want(timedelta(0), after_generation=newest.generation if newest else 0)
            await self._refresher.obtain(want, force=True, just_read=True)
            return ScheduledOutcome.REFRESHED

    async def begin_authorization(self, redirect_uri: str) -> str:
        """Start an admin sign-in (delegated mode): keeps the flow server-side, returns Entra's URL."""
        return await self._sign_in.begin(redirect_uri)

    async def complete_authorization(self, response: Mapping[str, str]) -> ConnectionStatus:
        """Finish a sign-in from the callback's query; raises SignInNotSavedError when nothing was stored."""
        await self._sign_in.complete(response)
        return await self.status()

    async def status(self) -> ConnectionStatus:
        """Token health without the token: has one? until when? last refresh and error, next step."""
        problems: list[TokenStoreUnavailableError] = []
        try:
            newest = await self._refresher.newest_or_cached()
        except TokenStoreUnavailableError as exc:  # degraded, not failed: what is known is still shown
            newest = self._refresher.cached
            problems.append(exc)
        try:
            state = await self._p.states.read_strict()
        except TokenStoreUnavailableError as exc:
            state = ConnectionState(self._p.connection)
            problems.append(exc)
        status = build_status(self.connection, self._p.mode, newest, state, self._p.clock.now())
        return status.degraded_by(problems[0], self._p.clock.now()) if problems else status


def _retrieve(future: asyncio.Future[AccessToken]) -> None:
    """Mark a shared refresh's exception as retrieved (its callers may all have been cancelled)."""
    if not future.cancelled():
        future.exception()
