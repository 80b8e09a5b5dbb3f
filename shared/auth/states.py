"""The connection's shared refresh state (one Table row): health, last refresh, last error, backoff.

Transitions are compare-and-swap, so among all instances exactly one records that a grant died: that one
logs it at error level with the admin's next step and sends the webhook; everyone else stays quiet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from shared.auth.errors import AuthError, CredentialsRejectedError, TokenStoreUnavailableError
from shared.auth.models import DEGRADED_NEXT_STEP, NEEDS_ADMIN, ConnectionState, Health, TokenSet
from shared.auth.notify import AdminAlert, AdminNotifier
from shared.auth.retry import ADMIN_NEEDED_BACKOFF
from shared.auth.stores import RecordStore
from shared.clock import Clock
from shared.redaction import redact
from shared.settings import AuthMode

logger = logging.getLogger(__name__)

_CAS_ATTEMPTS = 5
_MESSAGE_LIMIT = 300

_REFRESH = "POST /api/auth/refresh (function key)"
_NEXT_STEPS: dict[AuthMode, dict[Health, str]] = {
    AuthMode.DELEGATED: {
        Health.NOT_AUTHORIZED: "open /api/auth/login (function key) and sign in as the BC integration user",
        Health.REAUTHORIZATION_REQUIRED: "open /api/auth/login (function key) and sign in again as the BC integration user",
        Health.CREDENTIALS_REJECTED: f"fix the app registration's secret/certificate or consent, then {_REFRESH}",
    },
    AuthMode.CLIENT_CREDENTIALS: {
        Health.NOT_AUTHORIZED: (
            f"{_REFRESH} to get the first token; if Entra refuses it, check BC_TENANT_ID, BC_CLIENT_ID and "
            "BC_CLIENT_SECRET (or BC_CLIENT_CERTIFICATE_PATH), and that the app is on BC's 'Microsoft Entra "
            "applications' page"
        ),
        Health.REAUTHORIZATION_REQUIRED: (
            f"grant admin consent to the app registration's Business Central API permission, then {_REFRESH}"
        ),
        Health.CREDENTIALS_REJECTED: (
            "fix the app registration's secret/certificate (BC_CLIENT_SECRET, BC_CLIENT_CERTIFICATE_PATH), its "
            f"Business Central API permission or its consent, then {_REFRESH}"
        ),
    },
}


def next_step(health: Health, mode: AuthMode) -> str | None:
    """What the admin should do about `health` in this auth mode (None when nothing is needed)."""
    if health is Health.DEGRADED:
        return DEGRADED_NEXT_STEP
    return _NEXT_STEPS[mode].get(health)


class StateBook:
    """Reads and records a connection's refresh state; store failures never break token serving."""

    def __init__(
        self,
        connection: str,
        store: RecordStore[ConnectionState],
        clock: Clock,
        notifier: AdminNotifier,
        mode: AuthMode = AuthMode.DELEGATED,
    ) -> None:
        self._connection = connection
        self._mode = mode
        self._store = store
        self._clock = clock
        self._notifier = notifier

    async def read(self) -> ConnectionState:
        """The current state; a fresh OK state when absent or unreadable (never blocks a refresh; the table
        store logs the cause once)."""
        try:
            return await self.read_strict()
        except TokenStoreUnavailableError:
            logger.debug(
                "connection state unreadable; assuming ok", extra=self._extra("auth.state_unreadable")
            )
            return ConnectionState(self._connection)

    async def read_strict(self) -> ConnectionState:
        """The current state (a fresh OK one when absent); raises TokenStoreUnavailableError when unreadable."""
        entry = await self._store.get(self._connection)
        return entry.value if entry else ConnectionState(self._connection)

    def blocks(self, state: ConnectionState, newest: TokenSet | None) -> bool:
        """True while an admin-needed state applies to `newest` and its probe backoff has not run out."""
        if state.health not in NEEDS_ADMIN:
            return False
        if (
            newest is not None
            and state.failed_generation is not None
            and newest.generation > state.failed_generation
        ):
            return False  # someone signed in again since the failure
        return state.backoff_until is None or self._clock.now() < state.backoff_until

    async def record_success(self) -> None:
        """A refresh or sign-in succeeded: back to OK, errors cleared."""
        now = self._clock.now()
        await self._update(lambda s: ConnectionState(self._connection, Health.OK, last_refresh_at=now))

    async def record_transient(self, error: AuthError) -> None:
        """A refresh failed transiently: DEGRADED (unless an admin-needed state is already recorded)."""
        now = self._clock.now()

        def change(s: ConnectionState) -> ConnectionState:
            if s.health in NEEDS_ADMIN:
                return s
            return replace(
                s,
                health=Health.DEGRADED,
                last_error_code=type(error).__name__,
                last_error_message=_safe(error),
                last_error_at=now,
                consecutive_failures=s.consecutive_failures + 1,
            )

        await self._update(change)

    async def record_admin_needed(self, error: AuthError, newest: TokenSet | None) -> None:
        """The grant or the app was refused: record it once per generation, alert once, back off probes."""
        health = (
            Health.CREDENTIALS_REJECTED
            if isinstance(error, CredentialsRejectedError)
            else Health.REAUTHORIZATION_REQUIRED
        )
        generation = newest.generation if newest else None
        now = self._clock.now()
        first = False

        def change(s: ConnectionState) -> ConnectionState:
            nonlocal first
            first = not (s.health == health and s.failed_generation == generation)
            failures = 1 if first else s.consecutive_failures + 1
            return replace(
                s,
                health=health,
                last_error_code=getattr(error, "error_code", None) or type(error).__name__,
                last_error_message=_safe(error),
                last_error_at=now,
                consecutive_failures=failures,
                backoff_until=now + ADMIN_NEEDED_BACKOFF.delay(failures),
                failed_generation=generation,
            )

        written = await self._update(change)
        if written and first:
            await self._alert(health, error, newest)

    async def _alert(self, health: Health, error: AuthError, newest: TokenSet | None) -> None:
        step = next_step(health, self._mode) or ""
        logger.error(
            "BC connection '%s' needs an admin (%s): %s. Until then, workers get the current access token "
            "until it expires at %s, then fail with %s.",
            self._connection,
            getattr(error, "error_code", None) or type(error).__name__,
            step,
            newest.expires_on.isoformat() if newest else "(none stored)",
            type(error).__name__,
            extra=self._extra("auth.admin_needed", state=health.value),
        )
        alert = AdminAlert(
            connection=self._connection,
            state=health.value,
            error_code=getattr(error, "error_code", None),
            detected_at=self._clock.now(),
            next_step=step,
            account=newest.account if newest else None,
            tenant_id=newest.tenant_id if newest else None,
        )
        await self._notifier.notify(alert)

    async def _update(self, change: Callable[[ConnectionState], ConnectionState]) -> bool:
        """Compare-and-swap `change` onto the row; True when this call wrote it."""
        try:
            for _ in range(_CAS_ATTEMPTS):
                entry = await self._store.get(self._connection)
                current = entry.value if entry else ConnectionState(self._connection)
                wanted = change(current)
                if entry is not None and wanted == current:
                    return False
                if entry is None:
                    written = await self._store.create(self._connection, wanted)
                else:
                    written = await self._store.replace(self._connection, wanted, entry.etag)
                if written is not None:
                    return True
        except TokenStoreUnavailableError:  # the table store logged the cause once
            logger.debug(
                "connection state not recorded (store unavailable)",
                extra=self._extra("auth.state_unwritable"),
            )
        return False

    def _extra(self, event: str, **fields: str) -> dict[str, str]:
        return {"connection": self._connection, "event": event, **fields}


def _safe(error: Exception) -> str:
    """An error message fit for a Table row: redacted and bounded."""
    return redact(str(error))[:_MESSAGE_LIMIT]
