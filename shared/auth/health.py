"""The connection's health, kept in its connection record (one Table row shared by all instances).

The record holds the health, the last refresh, the last error and the probe backoff. Transitions are
compare-and-swap, so among all instances exactly one records that a grant died: that one logs it at error level
with the admin's next step and sends the webhook; everyone else stays quiet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from shared.auth.errors import (
    AuthError,
    CredentialsRejectedError,
    ReauthorizationRequiredError,
    TokenStoreUnavailableError,
)
from shared.auth.models import NEEDS_ADMIN, ConnectionRecord, Health, TokenSet
from shared.auth.next_steps import next_step
from shared.auth.notify import AdminAlert, AdminNotifier
from shared.auth.stores import RecordStore, compare_and_swap
from shared.auth.timing import ADMIN_NEEDED_BACKOFF
from shared.clock import Clock
from shared.redaction import redact
from shared.tokens import AuthMode

logger = logging.getLogger(__name__)

_MESSAGE_LIMIT = 300


class HealthRecorder:
    """Reads and records a connection's health in its connection record; store failures never break token serving."""

    def __init__(
        self,
        connection: str,
        store: RecordStore[ConnectionRecord],
        clock: Clock,
        notifier: AdminNotifier,
        mode: AuthMode = AuthMode.DELEGATED,
        *,
        registered: bool = False,
    ) -> None:
        """`registered`: a connection of the registry (its next steps name its own routes), not the settings'."""
        self.registered = connection if registered else None
        self._connection = connection
        self._mode = mode
        self._store = store
        self._clock = clock
        self._notifier = notifier

    async def read(self) -> ConnectionRecord:
        """The connection record; a fresh OK one when absent or unreadable (never blocks a refresh; the table
        store logs the cause once)."""
        try:
            return await self.read_strict()
        except TokenStoreUnavailableError:
            logger.debug(
                "connection record unreadable; assuming ok", extra=self._extra("auth.record_unreadable")
            )
            return ConnectionRecord(self._connection)

    async def read_strict(self) -> ConnectionRecord:
        """The connection record (a fresh OK one when absent); raises TokenStoreUnavailableError when unreadable."""
        entry = await self._store.get(self._connection)
        return entry.value if entry else ConnectionRecord(self._connection)

    def blocks(self, record: ConnectionRecord, newest: TokenSet | None) -> bool:
        """True while an admin-needed health applies to `newest` and its probe backoff has not run out."""
        if record.health not in NEEDS_ADMIN:
            return False
        if (
            newest is not None
            and record.failed_generation is not None
            and newest.generation > record.failed_generation
        ):
            return False  # someone signed in again since the failure
        return record.backoff_until is None or self._clock.now() < record.backoff_until

    async def record_success(self) -> None:
        """A refresh or sign-in succeeded: back to OK, errors cleared."""
        now = self._clock.now()

        def change(s: ConnectionRecord) -> ConnectionRecord:  # the consent outcome stays: it is not health
            return ConnectionRecord(
                self._connection, Health.OK, last_refresh_at=now, consent=s.consent, consent_at=s.consent_at
            )

        await self._update(change)

    async def record_consent(self, outcome: str) -> bool:
        """The admin-consent callback's outcome ("granted" or Entra's error code); True when written."""
        now = self._clock.now()
        return await self._update(lambda s: replace(s, consent=outcome, consent_at=now))

    async def record_transient(self, error: AuthError) -> None:
        """A refresh failed transiently: DEGRADED (unless an admin-needed health is already recorded)."""
        now = self._clock.now()

        def change(s: ConnectionRecord) -> ConnectionRecord:
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

        def change(s: ConnectionRecord) -> ConnectionRecord:
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
        step = next_step(health, self._mode, self.registered) or ""
        logger.error(
            "BC connection '%s' needs an admin (%s): %s. Until then, jobs run on the cached access token "
            "until it expires at %s; after that they wait (%s), not fail, until an admin fixes the connection.",
            self._connection,
            getattr(error, "error_code", None) or type(error).__name__,
            step,
            newest.expires_on.isoformat() if newest else "(none stored)",
            type(error).__name__,
            extra=self._extra("auth.admin_needed", health=health.value),
        )
        alert = AdminAlert(
            connection=self._connection,
            health=health.value,
            error_code=getattr(error, "error_code", None),
            detected_at=self._clock.now(),
            next_step=step,
            account=newest.account if newest else None,
            tenant_id=newest.tenant_id if newest else None,
        )
        await self._notifier.notify(alert)

    async def _update(self, change: Callable[[ConnectionRecord], ConnectionRecord]) -> bool:
        """Compare-and-swap `change` onto the record; True when this call wrote it."""
        try:
            return await compare_and_swap(
                self._store, self._connection, change, ConnectionRecord(self._connection)
            )
        except TokenStoreUnavailableError:  # the table store logged the cause once
            logger.debug(
                "connection record not written (store unavailable)",
                extra=self._extra("auth.record_unwritable"),
            )
        return False

    def _extra(self, event: str, **fields: str) -> dict[str, str]:
        return {"connection": self._connection, "event": event, **fields}


def _safe(error: Exception) -> str:
    """An error message fit for a Table row: redacted and bounded."""
    return redact(str(error))[:_MESSAGE_LIMIT]


def admin_error(record: ConnectionRecord, mode: AuthMode, registered: str | None = None) -> AuthError:
    """The error a caller gets while an admin-needed health blocks refreshes (`registered`: see next_step)."""
    step = next_step(record.health, mode, registered)
    if record.health is Health.CREDENTIALS_REJECTED:
        return CredentialsRejectedError(
            f"Entra refused the application earlier: {step}", error_code=record.last_error_code
        )
    return ReauthorizationRequiredError(
        f"the refresh token was refused earlier: {step}", error_code=record.last_error_code
    )
