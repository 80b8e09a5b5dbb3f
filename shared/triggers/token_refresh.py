"""Timer: keep every connection's BC token in Key Vault fresh (hourly by default), one refresher per connection
across instances.

For every enabled connection (the settings' one and the registry's), through its own token manager and under its
own lease: purge its expired pending sign-ins, then refresh when due (shared.auth.scheduled, at most
REFRESH_CONCURRENCY at once). One connection's failure is its own: recorded on its record, logged with its
`connection`, never stopping the others; the run's summary (event auth.timer_summary) counts the outcomes.

The schedule is `%BC_TOKEN_REFRESH_SCHEDULE%` when that app setting exists, else the default expression itself
(shared.settings.refresh_schedule_binding): the documented default works without the setting.

A transient failure of any connection raises after all were tried, so the host's retry policy (declared in
shared.auth.timing) runs the timer again (connections refreshed meanwhile are then not due); an admin-needed
failure is recorded and alerted once by the connection's token manager and is not retried here. When the registry
cannot be read, the settings' connection is still refreshed and the run is retried.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.timing import (
    TIMER_RETRY_COUNT,
    TIMER_RETRY_MAX_INTERVAL,
    TIMER_RETRY_MIN_INTERVAL,
    TIMER_RETRY_STRATEGY,
)
from shared.errors import IntegrationError, SettingsError
from shared.settings import refresh_schedule_binding

if TYPE_CHECKING:
    from shared.auth import AuthServices
    from shared.auth.scheduled import RefreshSummary
    from shared.connections import Connection

bp = func.Blueprint()
logger = logging.getLogger(__name__)


class RefreshRetryNeededError(IntegrationError):
    """Some connections' refresh failed transiently (or the registry could not be read): the host retries."""


@bp.function_name("token_refresh")
@bp.retry(
    strategy=TIMER_RETRY_STRATEGY,
    max_retry_count=TIMER_RETRY_COUNT,
    minimum_interval=TIMER_RETRY_MIN_INTERVAL,
    maximum_interval=TIMER_RETRY_MAX_INTERVAL,
)
@bp.timer_trigger(
    arg_name="timer", schedule=refresh_schedule_binding(), run_on_startup=False, use_monitor=True
)
async def token_refresh(timer: func.TimerRequest) -> None:
    """Refresh every enabled connection when due; log one line per connection and a summary."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth import auth_services
    from shared.auth.scheduled import refresh_connection, refresh_every_connection

    try:
        services = await auth_services()
    except SettingsError as exc:  # logged at cold start too; a retry cannot help
        logger.error("token refresh cannot run: %s", exc, extra={"event": "auth.timer_settings_invalid"})
        return
    connections, registry_read = await _connections(services)
    summary = await refresh_every_connection(connections, functools.partial(refresh_connection, services))
    _log_summary(summary, timer.past_due, registry_read)
    if summary.transient or not registry_read:
        raise RefreshRetryNeededError(
            f"token refresh of {len(summary.transient)} connection(s) failed transiently"
            + ("" if registry_read else " and the connection registry could not be read")
            + "; the host retries the timer (see event auth.timer_failed for each connection)"
        )


async def _connections(services: AuthServices) -> tuple[list[Connection], bool]:
    """Every connection, and whether the registry was read (if not: the settings' connection only)."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.connections import RegistryUnavailableError, connection_from_settings
    from shared.connections.compose import registry_services

    try:
        return await (await registry_services(services.settings)).registry.all(), True
    except RegistryUnavailableError as exc:
        logger.error(
            "token refresh: %s; refreshing the settings' connection only",
            exc,
            extra={"event": "auth.timer_registry_unavailable"},
        )
        return [connection_from_settings(services.settings)], False


def _log_summary(summary: RefreshSummary, past_due: bool, registry_read: bool) -> None:
    counts = summary.counts
    logger.info(
        "token refresh timer: %d connection(s): %s",
        len(summary.outcomes),
        ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items())) or "none",
        extra={
            "event": "auth.timer_summary",
            "connections": len(summary.outcomes),
            "past_due": past_due,
            "registry_read": registry_read,
            **{f"outcome_{outcome}": count for outcome, count in counts.items()},
        },
    )
