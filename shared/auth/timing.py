"""The token lifecycle's timing as frozen data: backoffs, the refresh lease, the timer's horizon and host retry.

- In-process gate after a transient refresh failure: callers keep getting the still-valid cached token and
  nobody calls Entra again before the gate opens. The first delay is 5 s because MSAL's ThrottledHttpClient
  replays a 5xx/429 answer for the same request for 5 s on confidential clients anyway
  (msal/throttled_http_client.py in github.com/AzureAD/microsoft-authentication-library-for-python).
- Admin-needed states (dead refresh token, rejected credentials): one probe after 1 h, doubling to 24 h, so
  the hourly timer does not hammer Entra with a grant that cannot come back.
- Waiting for another process's refresh: poll the lease row (cheap Table read), never Key Vault.
- Key Vault and Table calls: timeouts and SDK retries come from shared.azure_clients.SDK_OPTIONS, so one
  call (with its retries) ends well inside LEASE_TTL.
- The timer trigger's host-level retry (azure-functions @retry) for transient failures.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from shared.backoff import exponential_backoff


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full-range jitter of `jitter` (0..1) around the nominal delay."""

    first: timedelta
    cap: timedelta
    factor: float = 2.0
    jitter: float = 0.1

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """The wait after failure number `attempt` (1-based): first * factor**(attempt-1), capped, jittered."""
        seconds = exponential_backoff(
            attempt,
            self.first.total_seconds(),
            self.cap.total_seconds(),
            factor=self.factor,
            jitter=self.jitter,
            spread="around",
            rng=rng,
        )
        return timedelta(seconds=seconds)


TRANSIENT_BACKOFF = Backoff(first=timedelta(seconds=5), cap=timedelta(minutes=5))
ADMIN_NEEDED_BACKOFF = Backoff(first=timedelta(hours=1), cap=timedelta(hours=24), jitter=0.0)
LEASE_WAIT_POLL = Backoff(first=timedelta(milliseconds=100), cap=timedelta(seconds=2), factor=1.6, jitter=0.2)

# How long a refresher may hold the lease: well above one MSAL + Key Vault round trip; a crashed holder
# blocks others for at most this long.
LEASE_TTL = timedelta(seconds=60)
# How long a caller waits for another process's refresh before giving up with RefreshTimeoutError.
LEASE_WAIT_BUDGET = timedelta(seconds=30)

# "Refresh now" (POST /api/auth/refresh) returns a token set refreshed less than this long ago instead of calling
# Entra again; concurrent callers share one refresh whatever its age. A burst of admin clicks or scripted calls
# costs one Entra call and one Key Vault write. (A sign-in's set is not a refresh: refreshing right after one
# still redeems its refresh token.)
REFRESH_MIN_AGE = timedelta(seconds=30)

# The timer function's host retry (azure.functions retry decorator arguments; the timer raises on a
# transient failure). Numbers follow the transient gate: short enough to beat the token's expiry.
TIMER_RETRY_STRATEGY = "exponential_backoff"
TIMER_RETRY_COUNT = "3"
TIMER_RETRY_MIN_INTERVAL = "00:00:10"
TIMER_RETRY_MAX_INTERVAL = "00:05:00"

# The timer refreshes when the stored token would not outlive the next run (hourly) plus the default
# min_validity (5 min) — but never when it is younger than a quarter of its life (a worker just refreshed).
TIMER_REFRESH_HORIZON = timedelta(minutes=65)
TIMER_REFRESH_LIFETIME_SHARE = 0.75
