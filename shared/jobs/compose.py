"""Build the job pipeline once per process (per event loop) and reuse it across invocations.

One TokenManager (shared.auth), one shared throttle and one BC client (one httpx connection pool) per identity of a
connection's pool, per process:
every job of the process runs on the same event loop and shares them, so BC's budget is the only bottleneck.
The Table and queue clients are aio clients bound to their loop, hence one set per running loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from bcjobs import JOBS_QUEUE
from bcjobs.common import audit_table_name, items_table_name, jobs_table_name
from shared import telemetry
from shared.auth import AuthServices, auth_services
from shared.azure_clients import queue_client, table_client
from shared.bc import SharedThrottle, build_client
from shared.bc.client import BusinessCentralClient
from shared.bc.factory import agent_for, endpoint_for, throttle_config_from_settings
from shared.bc.throttle.low_priority import LowPriority
from shared.bc.throttle.table_store import TableCoordinationStore, partition_key_for
from shared.changes.compose import echo_journal
from shared.clock import SystemClock
from shared.connections import Connection, ConnectionRegistry, Identity, RegistryUnavailableError
from shared.connections.compose import registry_services
from shared.jobs.audit import JobRecorder, TableAuditLog
from shared.jobs.deadletter import DeadLetters
from shared.jobs.fairness import BudgetBacklog, pool_key, pooled_share
from shared.jobs.lanes import Lane
from shared.jobs.policy import JobPolicy
from shared.jobs.pool import IdentityPool, PoolMember
from shared.jobs.processor import JobProcessor
from shared.jobs.queues import StorageJobQueues
from shared.jobs.records import TableJobStore
from shared.jobs.runner import JobRunner
from shared.per_loop import PerLoop
from shared.settings import Settings, get_settings


@dataclass
class JobServices:
    """The processor plus what it owns (closed together)."""

    settings: Settings
    processor: JobProcessor
    store: TableJobStore
    audit: TableAuditLog
    throttle: SharedThrottle
    dead_letters: DeadLetters
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    lanes: ConnectionLanes | None = None

    async def aclose(self) -> None:
        """Close every client (the token manager belongs to shared.auth and stays)."""
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


@dataclass
class _JobStorage:
    """The job pipeline's tables, queues and the throttle's coordination store."""

    store: TableJobStore
    audit: TableAuditLog
    queues: StorageJobQueues
    coordination: TableCoordinationStore


async def _storage(settings: Settings, closers: list[Callable[[], Awaitable[None]]]) -> _JobStorage:
    """Clients for the jobs tables (audit rows in the jobs table; the earlier audit table only read), the jobs and
    results queues, and the throttle row; all ensured."""
    prefix = settings.storage.table_prefix
    jobs_table = table_client(settings.storage, jobs_table_name(prefix))
    audit_table = table_client(settings.storage, audit_table_name(prefix))
    items_table = table_client(settings.storage, items_table_name(prefix))
    jobs_queue = queue_client(settings.storage, JOBS_QUEUE)
    reports_queue = queue_client(settings.storage, settings.jobs.results_queue)
    coordination = TableCoordinationStore.from_settings(settings.storage)
    closers += [
        jobs_table.close,
        audit_table.close,
        items_table.close,
        jobs_queue.close,
        reports_queue.close,
        coordination.close,
    ]
    parts = _JobStorage(
        TableJobStore(jobs_table.client),
        TableAuditLog(jobs_table.client, audit_table.client, items_table.client),
        StorageJobQueues(jobs_queue.client, reports_queue.client),
        coordination,
    )
    for part in (parts.store, parts.audit, parts.queues):
        await part.ensure()
    return parts


async def build_job_services(settings: Settings) -> JobServices:
    """Wire the pipeline from the settings; creates its tables and the results queue if they are missing.

    When a step fails (storage down while its tables are ensured), the clients made so far are closed: the
    poison handler retries this while storage is down, and each try would otherwise leave sessions open.
    """
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        return await _wire(settings, closers)
    except BaseException:
        for close in reversed(closers):
            with contextlib.suppress(Exception):  # the build's own failure is the one to report
                await close()
        raise


async def _wire(settings: Settings, closers: list[Callable[[], Awaitable[None]]]) -> JobServices:
    telemetry.set_default_dimensions(connection=settings.auth.connection_name)
    storage = await _storage(settings, closers)
    registry = (await registry_services(settings)).registry
    lanes = ConnectionLanes(settings, registry, await auth_services(settings), storage.coordination, closers)
    default = await lanes.lane(None)  # the settings' connection: built at once, as before connections
    processor = JobProcessor(
        store=storage.store,
        audit=storage.audit,
        queues=storage.queues,
        lanes=lanes,
        policy=JobPolicy.from_settings(settings.jobs),
        clock=SystemClock(),
        request_timeout=timedelta(seconds=settings.bc.request_timeout_seconds),
        journal=await echo_journal(settings, closers),  # the change feed's echoes (issue 22)
    )
    reports = telemetry.FinishedReports(storage.queues)  # counts each job the poison handler dead-letters
    dead_letters = DeadLetters(storage.store, reports, processor.clock)
    throttle = lanes.throttles[default.connection.name]
    return JobServices(
        settings, processor, storage.store, storage.audit, throttle, dead_letters, closers, lanes
    )


class ConnectionLanes:
    """Lanes built on first use from the registry: for each identity of a connection's pool (issue 23) its token
    manager (shared.auth), a shared throttle keyed by its budget (environment, identity: connections that share both
    share one budget) and a BC client for the connection's environment; the connection's IdentityPool chooses the
    identity of each job (shared/jobs/pool.py). A connection whose definition changed gets a new pool; the old
    lanes stay open for the runs still using them and are closed with the rest."""

    def __init__(
        self,
        settings: Settings,
        registry: ConnectionRegistry,
        auth: AuthServices,
        coordination: TableCoordinationStore,
        closers: list[Callable[[], Awaitable[None]]],
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._auth = auth
        self._coordination = coordination
        self._closers = closers
        self._pools: dict[str, tuple[Connection, IdentityPool]] = {}
        self.throttles: dict[str, SharedThrottle] = {}  # by connection name: its primary identity's
        self._by_budget: dict[str, SharedThrottle] = {}  # one per budget key in a process
        self._backlogs: dict[str, BudgetBacklog] = {}  # one per pool (shared/jobs/fairness.py, pool_key)
        # The change feed's clients (issue 22), one per identity of a connection: (connection, identity) -> ...
        self._feed: dict[tuple[str, str], tuple[Connection, BusinessCentralClient]] = {}

    @property
    def default(self) -> str:
        return self._registry.default.name

    async def lane(self, connection: str | None) -> Lane:
        """The lane of the identity the connection's pool chooses for a new job (held for the whole run)."""
        return await (await self.pool(connection)).choose()

    async def pool(self, connection: str | None) -> IdentityPool:
        """The connection's identity pool in this process (built on first use, again when its definition changed)."""
        found = await self._registry.resolve(connection)
        known = self._pools.get(found.name)
        if known is None or known[0] != found:
            known = self._pools[found.name] = (found, self._build(found))
        return known[1]

    def _build(self, connection: Connection) -> IdentityPool:
        throttles = [self._throttle(connection.budget_key_of(identity)) for identity in connection.pool]
        self.throttles[connection.name] = throttles[0]
        keys = [connection.budget_key_of(identity) for identity in connection.pool]
        backlog = self._backlogs.setdefault(
            pool_key(keys),
            BudgetBacklog(pooled_share([t.share for t in throttles]), self._contended, SystemClock()),
        )
        members = [
            self._member(connection, identity, throttle, backlog)
            for identity, throttle in zip(connection.pool, throttles, strict=True)
        ]
        return IdentityPool(members, SystemClock())

    def _member(
        self, connection: Connection, identity: Identity, throttle: SharedThrottle, backlog: BudgetBacklog
    ) -> PoolMember:
        manager = self._auth.for_identity(connection, identity).manager
        client = build_client(
            self._settings,
            manager,
            throttle,
            recorder=JobRecorder(),
            endpoint=endpoint_for(connection, self._settings),
            agent=agent_for(connection, identity),
        )
        self._closers.append(client.aclose)
        lane = Lane(
            connection, JobRunner(client), manager, throttle.await_slot, backlog, identity=identity.name
        )
        return PoolMember(lane, throttle, manager.status, manager.refresh_if_due)

    async def _contended(self) -> bool:
        """Whether the enabled connections have more than one budget (fairness matters only then); an unreadable
        registry answers no: the delivery runs here, as it would have before connections."""
        try:
            return len(await self._registry.budget_keys()) > 1
        except RegistryUnavailableError:
            return False

    def _throttle(self, key: str) -> SharedThrottle:
        if key not in self._by_budget:
            config = throttle_config_from_settings(self._settings)
            throttle = SharedThrottle(self._coordination, partition_key_for(key), config)
            self._by_budget[key] = throttle
            self._closers.append(throttle.close)
        return self._by_budget[key]

    async def feed_client(self, connection: str | None) -> tuple[Connection, BusinessCentralClient]:
        """The change feed's BC client of a connection (issue 22), on the identity its pool chooses now (per watch
        run, per expansion message: the feed's reads spread like the jobs): that identity's token manager and
        shared throttle, but only the throttle's low permits (LowPriority: never before a waiting job of this
        process)."""
        lane = await self.lane(connection)
        found = lane.connection
        return found, self._feed_client(found, _identity(found, lane.identity))

    def feed_client_of(self, connection: Connection) -> BusinessCentralClient:
        """`feed_client` of a Connection as it is, enabled or not, on its primary identity: a disabled connection's
        subscriptions are deleted with its own token while it still has one (shared/changes/upkeep.py, `retire`)."""
        return self._feed_client(connection, connection.primary)

    def _feed_client(self, connection: Connection, identity: Identity) -> BusinessCentralClient:
        key = (connection.name, identity.name)
        known = self._feed.get(key)
        if known is None or known[0] != connection:
            low = LowPriority(self._throttle(connection.budget_key_of(identity)))
            tokens = self._auth.for_identity(connection, identity).manager
            endpoint = endpoint_for(connection, self._settings)
            client = build_client(
                self._settings, tokens, low, endpoint=endpoint, agent=agent_for(connection, identity)
            )
            self._closers.append(client.aclose)
            known = self._feed[key] = (connection, client)
        return known[1]


def _identity(connection: Connection, name: str) -> Identity:
    return next(identity for identity in connection.pool if identity.name == name)


_per_loop: PerLoop[Settings, JobServices] = PerLoop(build_job_services)


async def job_services(settings: Settings | None = None) -> JobServices:
    """The process's pipeline for the running loop, built on first use (concurrent first calls build once)."""
    return await _per_loop.get(settings or get_settings())


async def close_job_services() -> None:
    """Close and forget the running loop's pipeline (tests, local host shutdown)."""
    await _per_loop.close()
