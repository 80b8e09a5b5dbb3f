"""Timers of the change feed (issue 22): the subscription manager and reconciliation, each over every enabled
connection (the settings' one and the registry's), one connection's failure its own (shared/changes/upkeep.py).

Schedules: `%BC_SUBSCRIPTIONS_SCHEDULE%`, `%BC_RECONCILE_SCHEDULE%` and `%BC_RETENTION_SCHEDULE%` when those app
settings exist, else the defaults (every 15 minutes; the retention daily at 03:40 UTC; shared.settings.schedule_binding, as the token refresh timer). Timer triggers run on one
instance at a time (the host's singleton lock), so one manager creates each connection's notification secret.
One log line per connection (event changes.subscriptions: created/renewed/kept/deleted, ours/total/limit of BC's
200 per environment) and per watch (event changes.reconciled: read/published/seen/deleted, lag in seconds). Alerts
(ERROR): changes.watch_unsubscribed (a watch without a live subscription after a run) and changes.reconcile_behind
(a watch's previous completed reconciliation older than RECONCILE_BEHIND).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import azure.functions as func

from shared.errors import IntegrationError, SettingsError
from shared.settings import (
    DEFAULT_RECONCILE_SCHEDULE,
    DEFAULT_RETENTION_SCHEDULE,
    DEFAULT_SUBSCRIPTIONS_SCHEDULE,
    RECONCILE_SCHEDULE_SETTING,
    RETENTION_SCHEDULE_SETTING,
    SUBSCRIPTIONS_SCHEDULE_SETTING,
    get_settings,
    schedule_binding,
)

if TYPE_CHECKING:
    from shared.changes.retention import SweepRun
    from shared.changes.subscription_manager import ConnectionRun, Lapsing
    from shared.changes.upkeep import Outcome, Upkeep
    from shared.connections import Connection

bp = func.Blueprint()
logger = logging.getLogger(__name__)

# A watch whose previous completed reconciliation is older than this (four default intervals) is behind: alert.
RECONCILE_BEHIND = timedelta(hours=1)


@bp.function_name("change_subscriptions")
@bp.timer_trigger(
    arg_name="timer",
    schedule=schedule_binding(SUBSCRIPTIONS_SCHEDULE_SETTING, DEFAULT_SUBSCRIPTIONS_SCHEDULE),
    run_on_startup=False,
    use_monitor=True,
)
async def change_subscriptions(timer: func.TimerRequest) -> None:
    """Create, renew, re-create and clean up every connection's BC webhook subscriptions."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.upkeep import bounded

    upkeep, connections = await _prepare("subscriptions")
    if upkeep is None:
        return
    for outcome in await bounded([c for c in connections if c.enabled], upkeep.manage):
        _log_subscriptions(outcome)
        for reconciled in outcome.reconciled:
            _log_reconciled(reconciled)
    await _retire(upkeep, connections)


async def _retire(upkeep: Upkeep, connections: list[Connection]) -> None:
    """Deleted and disabled connections' subscriptions: deleted in BC, or left to lapse (logged)."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.upkeep import bounded

    try:
        retirees = await upkeep.retirees(connections)
    except IntegrationError as exc:
        logger.error(
            "subscriptions of gone connections: %s", exc, extra={"event": "changes.subscriptions_failed"}
        )
        return
    for outcome in await bounded(retirees, lambda pair: upkeep.retire(*pair)):
        _log_subscriptions(outcome)


@bp.function_name("change_reconcile")
@bp.timer_trigger(
    arg_name="timer",
    schedule=schedule_binding(RECONCILE_SCHEDULE_SETTING, DEFAULT_RECONCILE_SCHEDULE),
    run_on_startup=False,
    use_monitor=True,
)
async def change_reconcile(timer: func.TimerRequest) -> None:
    """Reconcile every enabled watch of every connection: publish what the webhooks missed."""
    upkeep, connections = await _prepare("reconciliation")
    if upkeep is None:
        return
    for connection in [c for c in connections if c.enabled]:
        for outcome in await upkeep.reconcile_all(connection):
            _log_reconciled(outcome)


@bp.function_name("change_retention")
@bp.timer_trigger(
    arg_name="timer",
    schedule=schedule_binding(RETENTION_SCHEDULE_SETTING, DEFAULT_RETENTION_SCHEDULE),
    run_on_startup=False,
    use_monitor=True,
)
async def change_retention(timer: func.TimerRequest) -> None:
    """Delete the change log's rows older than BC_CHANGES_RETENTION_DAYS and the expired echoes."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.retention import retention_sweep

    try:
        runs = await retention_sweep(get_settings())
    except (SettingsError, IntegrationError) as exc:
        logger.error("change feed retention cannot run: %s", exc, extra={"event": "changes.timer_failed"})
        return
    for run in runs:
        _log_retention(run)


def _log_retention(run: SweepRun) -> None:
    level = logging.ERROR if run.failures else logging.INFO
    logger.log(
        level, "retention of %s: %d rows deleted%s%s", run.table, run.deleted,
        "; more left for the next run" if run.limited else "",
        "; failed: " + "; ".join(run.failures) + " (retried next run)" if run.failures else "",
        extra={"event": "changes.retention", "table": run.table, "deleted": run.deleted, "limited": run.limited,
               "failed": len(run.failures)},
    )  # fmt: skip


async def _prepare(what: str) -> tuple[Upkeep | None, list[Connection]]:
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.compose import change_services
    from shared.changes.upkeep import build_upkeep
    from shared.connections import RegistryUnavailableError
    from shared.connections.compose import registry_services

    try:
        settings = get_settings()
        upkeep = await build_upkeep(settings, (await change_services(settings)).feed)
        connections = await (await registry_services(settings)).registry.all()
    except (SettingsError, RegistryUnavailableError, IntegrationError) as exc:
        logger.error("change feed %s cannot run: %s", what, exc, extra={"event": "changes.timer_failed"})
        return None, []
    return upkeep, connections  # every one: a disabled connection's subscriptions are deleted


def _log_subscriptions(outcome: Outcome) -> None:
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.subscription_manager import ConnectionRun, Lapsing

    run = outcome.result
    if outcome.error is not None:
        logger.error(
            "subscriptions of connection %s: %s", outcome.connection, outcome.error,
            extra={"event": "changes.subscriptions_failed", "connection": outcome.connection},
        )  # fmt: skip
    if isinstance(run, Lapsing):
        _log_lapsing(run)
    if not isinstance(run, ConnectionRun):
        return  # failed, lapsing, or a connection without watches or subscriptions
    logger.info(
        "subscriptions of connection %s: %d created, %d renewed, %d kept, %d deleted, %d failed; %d ours of %d/%d",
        run.connection, run.created, run.renewed, run.kept, run.deleted, len(run.failures), run.ours, run.total,
        run.limit,
        extra={
            "event": "changes.subscriptions", "connection": run.connection, "subs_created": run.created,
            "subs_renewed": run.renewed, "subs_kept": run.kept, "subs_deleted": run.deleted, "failed": len(run.failures),
            "ours": run.ours, "total": run.total, "limit": run.limit, "recreated": ",".join(run.recreated),
        },
    )  # fmt: skip
    _log_run_problems(run)


def _log_run_problems(run: ConnectionRun) -> None:
    for watch in run.unsubscribed:  # no doorbell: only reconciliation sees this watch's changes now
        logger.error(
            "watch %s/%s has no live BC subscription; see the failures above (event changes.subscription_failed)",
            run.connection, watch,
            extra={"event": "changes.watch_unsubscribed", "connection": run.connection, "watch": watch},
        )  # fmt: skip
    for failure in run.failures:
        logger.warning("subscription of connection %s: %s", run.connection, failure,
                       extra={"event": "changes.subscription_failed", "connection": run.connection})  # fmt: skip


def _log_lapsing(run: Lapsing) -> None:
    logger.warning(
        "subscriptions of connection %s cannot be deleted (%s): %d rows dropped after BC's expiry, %d lapse by %s",
        run.connection, run.reason, run.dropped, run.left, run.until,
        extra={"event": "changes.subscriptions_lapsing", "connection": run.connection, "dropped": run.dropped,
               "left": run.left},
    )  # fmt: skip


def _log_reconciled(outcome: Outcome) -> None:
    if outcome.error is not None:
        logger.error(
            "reconciliation of watch %s/%s: %s", outcome.connection, outcome.subject, outcome.error,
            extra={"event": "changes.reconcile_failed", "connection": outcome.connection, "watch": outcome.subject},
        )  # fmt: skip
        return
    run = outcome.result
    lag = getattr(run, "lag", None)
    since_last = getattr(run, "since_last", None)
    if since_last is not None and since_last > RECONCILE_BEHIND:
        logger.error(
            "reconciliation of watch %s/%s had not completed for %s (more than %s): gaps healed late; see "
            "changes.reconcile_failed", outcome.connection, outcome.subject, since_last, RECONCILE_BEHIND,
            extra={"event": "changes.reconcile_behind", "connection": outcome.connection, "watch": outcome.subject},
        )  # fmt: skip
    logger.info(
        "reconciliation of watch %s/%s: %s", outcome.connection, outcome.subject, run,
        extra={
            "event": "changes.reconciled", "connection": outcome.connection, "watch": outcome.subject,
            "lag_seconds": None if lag is None else lag.total_seconds(),
        },
    )  # fmt: skip
