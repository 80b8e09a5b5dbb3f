"""The feed's timers' work over every connection: the subscription manager and reconciliation, each connection (and
each watch) on its own — a failure is recorded and the others go on — with at most CONCURRENCY at once, through each
connection's lane (its token manager and throttle: the same budget as its jobs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar

from shared import telemetry
from shared.bc import BusinessCentralClient
from shared.changes.directories import change_directories
from shared.changes.feed import ChangeFeed
from shared.changes.reconcile import ReconcilePolicy, Reconciler, WatchRun
from shared.changes.subscription_manager import ConnectionRun, Lapsing, SubscriptionManager
from shared.changes.subscriptions import SubscriptionStore
from shared.changes.watch import Watch
from shared.changes.watches import CachedWatches
from shared.clock import SystemClock
from shared.connections import Connection
from shared.errors import IntegrationError, SettingsError
from shared.jobs.compose import ConnectionLanes, job_services
from shared.jobs.lanes import Lanes
from shared.settings import Settings, notification_base

logger = logging.getLogger(__name__)

CONCURRENCY = 4
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One connection's (or watch's) result, or the error that stopped it (a safe message)."""

    connection: str
    subject: str
    result: ConnectionRun | WatchRun | Lapsing | None = None
    error: str | None = None
    reconciled: tuple[Outcome, ...] = ()  # the immediate reconciliations of re-created watches


async def bounded(items: Sequence[T], work: Callable[[T], Awaitable[Outcome]]) -> list[Outcome]:
    """`work` on every item, CONCURRENCY at a time, in the items' order."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: T) -> Outcome:
        async with gate:
            return await work(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


class FeedClients(Protocol):
    """A connection's BC client for the feed: its lane's token manager and throttle (ConnectionUnusableError for
    a connection that cannot be used)."""

    async def __call__(self, connection: str) -> BusinessCentralClient: ...


def lane_clients(lanes: Lanes) -> FeedClients:
    """The lanes' own clients, at the jobs' priority (tests and tools that build lanes by hand)."""

    async def client(connection: str) -> BusinessCentralClient:
        return (await lanes.lane(connection)).runner.client

    return client


def low_priority_clients(lanes: ConnectionLanes) -> FeedClients:
    """The feed's clients of the job pipeline's lanes (`ConnectionLanes.feed_client`): the same token manager and
    shared throttle, but only its low permits, never before a waiting job of this process (issue 22, point 6)."""

    async def client(connection: str) -> BusinessCentralClient:
        return (await lanes.feed_client(connection))[1]

    return client


class RetiringClients(Protocol):
    """A connection's BC client on its primary identity, as the connection is, enabled or not
    (ConnectionLanes.feed_client_of): its subscriptions are managed with it, and a disabled connection's deleted with
    its own token."""

    def __call__(self, connection: Connection) -> BusinessCentralClient: ...


@dataclass(frozen=True, slots=True)
class Upkeep:
    """What both timers work with."""

    watches: CachedWatches
    subscriptions: SubscriptionStore
    clients: FeedClients
    manager: SubscriptionManager | None  # None: no notification base URL (see notification_base)
    reconciler: Reconciler | None  # None: built without a change feed (tools, tests)
    retiring: RetiringClients | None = None  # None: a gone connection's subscriptions are left to lapse

    async def retirees(self, connections: Sequence[Connection]) -> list[tuple[str, Connection | None]]:
        """(name, connection) of every connection with subscription (or usage) rows that is disabled, or deleted
        (None)."""
        enabled = {connection.name for connection in connections if connection.enabled}
        known = {connection.name: connection for connection in connections}
        rows, usages = await self.subscriptions.everything()
        names = {row.connection for row in rows} | {usage.connection for usage in usages}
        return [(name, known.get(name)) for name in sorted(names - enabled)]

    async def retire(self, name: str, connection: Connection | None) -> Outcome:
        """Delete a disabled or deleted connection's subscriptions in BC while a token can; when none can (a
        deleted connection's token set went with it), record why and drop each row once BC's expiry passed."""
        if self.manager is None:
            return Outcome(name, "subscriptions", error=_NO_BASE)
        try:
            if connection is None or self.retiring is None:
                return Outcome(name, "subscriptions", result=await self.manager.drop_lapsed(name, _DELETED))
            try:
                run = _count(await self.manager.retire(name, self.retiring(connection)))
            except IntegrationError as exc:  # no token, BC unreachable: BC's expiry does the rest
                return Outcome(name, "subscriptions", result=await self.manager.drop_lapsed(name, str(exc)))
        except IntegrationError as exc:  # the rows could not be read or dropped: the next run tries again
            return Outcome(name, "subscriptions", error=str(exc))
        return Outcome(name, "subscriptions", result=run)

    async def manage(self, connection: Connection) -> Outcome:
        """Create, renew, re-create and delete the connection's subscriptions; reconcile re-created watches."""
        if self.manager is None:
            return Outcome(connection.name, "subscriptions", error=_NO_BASE)
        try:
            watches = await self.watches.fresh(connection.name)
            if not watches and not await self.subscriptions.all(connection.name):
                return Outcome(connection.name, "subscriptions")  # nothing to keep, nothing to clean up
            # BC records who created a subscription (`userId`, learn.microsoft.com/dynamics365/business-central/
            # dev-itpro/api-reference/v2.0/resources/dynamics_subscriptions): create, renew and delete them on the
            # connection's primary identity, whichever identity of its pool the feed's reads use (issue 23).
            client = self.retiring(connection) if self.retiring else await self.clients(connection.name)
            run = await self.manager.run(connection.name, watches, client)
        except IntegrationError as exc:
            return Outcome(connection.name, "subscriptions", error=str(exc))
        _count(run)
        again = [w for w in watches if w.name in run.recreated]
        # BC had deleted them: whatever changed meanwhile was not notified
        healed = await self.reconcile_all(connection, again) if again else []
        return Outcome(connection.name, "subscriptions", result=run, reconciled=tuple(healed))

    async def reconcile_all(
        self, connection: Connection, watches: list[Watch] | None = None
    ) -> list[Outcome]:
        """Reconcile the connection's enabled watches (all of them when `watches` is None)."""
        try:
            chosen = watches if watches is not None else await self.watches.watches(connection.name)
        except IntegrationError as exc:
            return [Outcome(connection.name, "watches", error=str(exc))]
        enabled = [watch for watch in chosen if watch.enabled]
        return await bounded(enabled, lambda watch: self.reconcile(connection, watch))

    async def reconcile(self, connection: Connection, watch: Watch) -> Outcome:
        """One watch's reconciliation, its failure its own."""
        if self.reconciler is None:
            return Outcome(connection.name, watch.name, error=_NO_FEED)
        try:
            client = await self.clients(connection.name)
            run = await self.reconciler.reconcile(watch, connection.environment, client)
        except IntegrationError as exc:
            return Outcome(connection.name, watch.name, error=str(exc))
        if run.lag is not None:
            telemetry.reconcile_lag(connection.name, watch.name, run.lag.total_seconds())
        return Outcome(connection.name, watch.name, result=run)


_NO_BASE = (
    "no notification URL: set BC_NOTIFICATION_BASE_URL (or run where WEBSITE_HOSTNAME is set) so BC can reach "
    "/api/notifications/"
)


def _count(run: ConnectionRun) -> ConnectionRun:
    """The run's metrics (shared/telemetry: bc.subscriptions.*); `created` includes the re-created ones."""
    actions = {
        "created": max(0, run.created - len(run.recreated)),
        "recreated": len(run.recreated),
        "renewed": run.renewed,
        "deleted": run.deleted,
        "failed": len(run.failures),
    }
    earliest = min((expiry for _, expiry in run.expiries), default=None)
    telemetry.subscriptions_managed(run.connection, actions, run.ours, run.total, earliest)
    return run


_DELETED = (
    "the connection was deleted and its token with it: BC lets its subscriptions lapse (3 days at most)"
)
_NO_FEED = "these timers were built without a change feed; reconciliation has nowhere to publish"


async def build_upkeep(settings: Settings, feed: ChangeFeed | None = None) -> Upkeep:
    """The timers' collaborators for the running loop: the change-feed stores, the job pipeline's lanes, the
    manager (when a notification base is known) and the reconciler (when a feed is given)."""
    directories = await change_directories(settings)
    lanes = (await job_services(settings)).lanes
    if lanes is None:
        raise SettingsError("the job pipeline was built without connection lanes")
    clock = SystemClock()
    base = notification_base(settings)
    manager = (
        None
        if base is None
        else SubscriptionManager(directories.subscriptions, directories.secrets, base, clock)
    )
    reconciler = (
        None if feed is None else Reconciler(feed, directories.watermarks, reconcile_policy(settings), clock)
    )
    clients = low_priority_clients(lanes)
    subscriptions = directories.subscriptions
    return Upkeep(directories.watches, subscriptions, clients, manager, reconciler, lanes.feed_client_of)


def reconcile_policy(settings: Settings) -> ReconcilePolicy:
    """BC_RECONCILE_OVERLAP_SECONDS and BC_RECONCILE_DELETES_HOURS."""
    changes = settings.changes
    return ReconcilePolicy(
        overlap=timedelta(seconds=changes.reconcile_overlap_seconds),
        deletes_every=timedelta(hours=changes.reconcile_deletes_hours),
    )
