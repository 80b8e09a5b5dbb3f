"""In-process gates after transient failures: nobody in this process calls a failing dependency before it opens.

The manager keeps one for Entra (closed after a failed refresh) and one for the token store (closed after a
failed Key Vault read). Callers meanwhile keep getting the still-valid cached token (the manager's fallback), so
an outage costs one attempt per backoff per process, not one per caller. The delays are
shared.auth.timing.TRANSIENT_BACKOFF; a success opens the gate again.
"""

from __future__ import annotations

from datetime import datetime

from shared.auth.errors import TokenRefreshFailedError, TokenUnavailableError
from shared.auth.timing import TRANSIENT_BACKOFF
from shared.clock import Clock


class TransientGate:
    """Closed for a backoff after each transient failure in a row; open again after a success."""

    def __init__(self, connection: str, clock: Clock) -> None:
        self._connection = connection
        self._clock = clock
        self._closed_until: datetime | None = None
        self.failures_in_a_row = 0

    def is_closed(self) -> bool:
        """True while the backoff after the last failure runs."""
        return self._closed_until is not None and self._clock.now() < self._closed_until

    def check(self) -> None:
        """Raise TokenRefreshFailedError (with its retry_after) while the gate is closed."""
        if self.is_closed():
            raise TokenRefreshFailedError(
                f"refresh of '{self._connection}' is backing off after a transient failure",
                retry_after=self._closed_until,
            )

    def close_after(self, failure: TokenUnavailableError) -> datetime:
        """Count `failure`, close the gate for the next backoff and tell the failure when to retry."""
        self.failures_in_a_row += 1
        self._closed_until = self._clock.now() + TRANSIENT_BACKOFF.delay(self.failures_in_a_row)
        failure.retry_after = self._closed_until
        return self._closed_until

    def open(self) -> None:
        """Forget the backoff: the dependency answered."""
        self._closed_until = None
        self.failures_in_a_row = 0
