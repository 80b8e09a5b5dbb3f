"""The timer's refresh of every identity of every connection (`Connection.pool`): each through its own manager and
lease, a few at a time, each failure kept to its own identity.

    refresh_every_connection(connections, refresh_one)   at most REFRESH_CONCURRENCY at once
    └── _guarded(connection, identity)                    outcome, or the failure recorded and logged
        └── refresh_one(connection, identity)             the product's: refresh_connection(services, c, i)
            ├── SignInFlow.purge_expired()                 best effort, never raises
            └── TokenManager.refresh_if_due()              under the identity's own lease (lease-{auth name})

A client-credentials identity's refresh is a new token from Entra (there is no refresh token): with a secret, a
certificate or a federated credential alike (a federated one presents its managed identity's token as the assertion).
Outcomes are keyed by auth name (shared.auth.compose.auth_name): the connection's name for its primary identity,
`{connection}--{identity}` for the others.

One connection's dead refresh token, refused credentials or unreadable Key Vault secret ends as that connection's
outcome (on its own connection record, logged with its `connection`); the others go on. The summary counts the
outcomes; `transient` names the connections worth a retry of the whole run (refresh_if_due is idempotent: a
connection refreshed on the first try is `not_due` on the retry).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from shared.auth.compose import AuthServices, auth_name
from shared.auth.errors import (
    CredentialsRejectedError,
    NotAuthorizedError,
    ReauthorizationRequiredError,
    TokenRefreshFailedError,
    TokenUnavailableError,
)
from shared.auth.manager import ScheduledOutcome
from shared.connections import Connection
from shared.connections.connection import Identity

logger = logging.getLogger(__name__)

# Connections refreshed at once. Each refresh is one lease write, one Entra call and one Key Vault write, a few
# hundred milliseconds; 8 at a time refreshes 100 connections in a few seconds (bench: `python -m bench
# connections`), far inside the hourly period, while keeping this instance's sockets and Entra's per-app request
# rate (learn.microsoft.com/entra/identity-platform/reference-throttling) well below any limit.
REFRESH_CONCURRENCY = 8


class RunOutcome(StrEnum):
    """What the timer did for one connection (logged as `outcome` of event auth.timer, counted in the summary)."""

    REFRESHED = ScheduledOutcome.REFRESHED.value
    NOT_DUE = ScheduledOutcome.NOT_DUE.value
    BACKING_OFF = ScheduledOutcome.BACKING_OFF.value
    NOT_SIGNED_IN = ScheduledOutcome.NOT_SIGNED_IN.value
    ADMIN_NEEDED = "admin_needed"  # refused now: recorded on its record, its admin alerted once
    FAILED = "failed"  # transient (Entra, Key Vault, storage): retried with the run


@dataclass(frozen=True, slots=True)
class RefreshSummary:
    """Outcomes of one timer run, by connection."""

    outcomes: Mapping[str, RunOutcome]

    @property
    def counts(self) -> dict[str, int]:
        """How many connections ended with each outcome."""
        return dict(Counter(outcome.value for outcome in self.outcomes.values()))

    @property
    def transient(self) -> list[str]:
        """Connections whose refresh failed transiently (a retry of the run may help)."""
        return [name for name, outcome in self.outcomes.items() if outcome is RunOutcome.FAILED]


RefreshOne = Callable[[Connection, Identity], Awaitable[ScheduledOutcome]]


async def refresh_every_connection(
    connections: Iterable[Connection], refresh_one: RefreshOne, concurrency: int = REFRESH_CONCURRENCY
) -> RefreshSummary:
    """Run `refresh_one` for every identity of every enabled connection, at most `concurrency` at once; never
    raises for one."""
    gate = asyncio.Semaphore(concurrency)

    async def guarded(connection: Connection, identity: Identity) -> RunOutcome:
        async with gate:
            return await _guarded(connection, identity, refresh_one)

    units = [(c, identity) for c in connections if c.enabled for identity in c.pool]
    outcomes = await asyncio.gather(*(guarded(c, identity) for c, identity in units))
    return RefreshSummary(
        {auth_name(c, identity): outcome for (c, identity), outcome in zip(units, outcomes, strict=True)}
    )


async def _guarded(connection: Connection, identity: Identity, refresh_one: RefreshOne) -> RunOutcome:
    """One identity's outcome; its failure is logged with its names and goes no further."""
    fields = {"connection": connection.name, "identity": identity.name}
    try:
        outcome = RunOutcome(await refresh_one(connection, identity))
    except (ReauthorizationRequiredError, CredentialsRejectedError, NotAuthorizedError) as exc:
        logger.warning(
            "token refresh of connection '%s' (identity %s) needs an admin: %s (its status shows the next step)",
            connection.name,
            identity.name,
            type(exc).__name__,
            extra={**fields, "event": "auth.timer_blocked"},
        )
        return RunOutcome.ADMIN_NEEDED
    except Exception as exc:  # noqa: BLE001 - one connection's failure must not stop the others
        logger.warning(
            "token refresh of connection '%s' (identity %s) failed: %s; the timer's retry or next run tries again",
            connection.name,
            identity.name,
            type(exc).__name__,
            extra={**fields, "event": "auth.timer_failed"},
        )
        return RunOutcome.FAILED
    message = "token refresh of '%s' (identity %s): %s"
    logger.info(
        message, connection.name, identity.name, outcome.value, extra={**fields, "event": "auth.timer"}
    )
    return outcome


async def refresh_connection(
    services: AuthServices, connection: Connection, identity: Identity
) -> ScheduledOutcome:
    """The product's `refresh_one`: purge the identity's expired sign-ins, refresh its token when due.

    A failure the manager does not record itself (Key Vault unreadable for the identity's secret, the auth
    table down) is recorded on the identity's own record as degraded, so its status says so.
    """
    auth = services.for_identity(connection, identity)
    await auth.sign_in.purge_expired()  # best effort: never raises
    try:
        return await auth.manager.refresh_if_due()
    except TokenUnavailableError as exc:
        if not isinstance(exc, TokenRefreshFailedError):  # the manager recorded an Entra failure already
            await auth.manager.parts.health.record_transient(exc)
        raise
