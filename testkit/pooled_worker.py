"""The bench worker's identity pool (`python -m testkit.worker --identities N`, bench `identities`, issue 23).

The connection's pool holds the sandbox's primary app and N-1 of its extra app registrations (the sandbox started
with `--seed S --extra-clients N-1`; the same seed derives the same apps here), each with its own token, BC client
and shared throttle (its budget key, `Connection.budget_key_of`); every task runs "jobs" of `--job-requests` GETs,
each job on the identity the product's IdentityPool (shared/jobs/pool.py) chooses.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Sequence

from sandbox.config import SandboxConfig
from sandbox.entra.directory import AppRegistration, build_directory
from shared.auth import ConnectionStatus, Health
from shared.bc import BusinessCentralError, build_client
from shared.bc.factory import agent_for
from shared.bc.retry import RetryPolicy
from shared.bc.throttle import SharedThrottle, ThrottleConfig
from shared.bc.throttle.table_store import TableCoordinationStore, partition_key_for
from shared.clock import SystemClock
from shared.connections import Connection, Credential, Identity, connection_from_settings
from shared.jobs.lanes import Lane
from shared.jobs.pool import IdentityPool, PoolMember
from shared.jobs.runner import JobRunner
from shared.settings import Settings
from shared.tokens import AuthMode
from testkit.sandbox_tokens import SandboxTokenProvider
from testkit.worker import ITEMS, TimingRecorder, WorkerReport


async def run_pooled(
    args: argparse.Namespace, settings: Settings, store: TableCoordinationStore, config: ThrottleConfig
) -> WorkerReport:
    """Run jobs over the pool's identities from `args.tasks` tasks until the deadline; return the report."""
    connection = _pooled(settings, args.identities, args.seed)
    throttles = [
        SharedThrottle(store, partition_key_for(connection.budget_key_of(identity)), config)
        for identity in connection.pool
    ]
    report = WorkerReport(member_id=throttles[0].member_id)
    lanes = [
        _lane(connection, identity, _settings_of(settings, identity, args.seed), throttle, report)
        for identity, throttle in zip(connection.pool, throttles, strict=True)
    ]
    pool = IdentityPool(
        [PoolMember(lane, t, _healthy) for lane, t in zip(lanes, throttles, strict=True)], SystemClock()
    )
    try:
        await asyncio.gather(
            *(_drive(pool, args.stop_at, report, throttles, args.job_requests) for _ in range(args.tasks))
        )
    finally:
        for lane in lanes:
            await lane.runner.client.aclose()
        for throttle in throttles:
            await throttle.close()
        report.storage_transactions = store.transactions
        await store.close()
    return report


def _pooled(settings: Settings, identities: int, seed: int) -> Connection:
    """The settings' connection with the sandbox's first `identities - 1` extra apps as its pool's other
    identities (their budget keys as the product derives them)."""
    connection = connection_from_settings(settings)
    extra = [
        Identity.model_construct(
            name=f"extra{n}", client_id=app.client_id, credential=Credential.KEY_VAULT_SECRET
        )
        for n, app in enumerate(_extra_apps(settings, identities - 1, seed), start=1)
    ]
    return connection.model_copy(update={"identities": tuple(extra)})


def _extra_apps(settings: Settings, count: int, seed: int) -> list[AppRegistration]:
    """The sandbox's extra app registrations, derived from its seed (checked against the primary app's id)."""
    if count <= 0:
        return []
    directory = build_directory(SandboxConfig(seed=seed, extra_clients=count), random.Random(seed), b"")  # noqa: S311
    if directory.primary.client_id != settings.auth.client_id:
        raise RuntimeError(
            "the sandbox's directory is not the seeded one: start it with --seed and --extra-clients"
        )
    return list(directory.apps[1 : count + 1])


def _settings_of(settings: Settings, identity: Identity, seed: int) -> Settings:
    """The settings with the identity's client id and secret (the primary's: the settings as they are)."""
    if identity.primary:
        return settings
    apps = {app.client_id: app for app in _extra_apps(settings, 9, seed)}
    auth = settings.auth.model_copy(
        update={"client_id": identity.client_id, "client_secret": apps[identity.client_id].client_secret}
    )
    return settings.model_copy(update={"auth": auth})


def _lane(
    connection: Connection,
    identity: Identity,
    settings: Settings,
    throttle: SharedThrottle,
    report: WorkerReport,
) -> Lane:
    """One identity's lane: its own token provider and BC client on its own throttle."""
    tokens = SandboxTokenProvider(settings)
    # One attempt: every 429 the sandbox sends is counted once (pauses still apply).
    client = build_client(
        settings,
        tokens,
        throttle,
        recorder=TimingRecorder(report, identity.name),
        policy=RetryPolicy(max_tries=1),
        agent=agent_for(connection, identity),
    )
    return Lane(connection, JobRunner(client), tokens, throttle.await_slot, identity=identity.name)


async def _healthy() -> ConnectionStatus:
    """Every identity of the bench stays healthy (the pool reads this every HEALTH_TTL_SECONDS)."""
    return ConnectionStatus(
        "bench", AuthMode.CLIENT_CREDENTIALS, Health.OK, True, None, None, None, None, None, None, None, None,
        None, None,
    )  # fmt: skip


async def _drive(
    pool: IdentityPool,
    stop_at: float,
    report: WorkerReport,
    throttles: Sequence[SharedThrottle],
    job_requests: int,
) -> None:
    """Run jobs of `job_requests` single-page GETs until the deadline, each on the identity the pool chooses,
    counting errors by type."""
    while time.time() < stop_at:
        lane = await pool.choose()
        with lane.backlog.running():
            for _ in range(job_requests):
                try:
                    await lane.runner.client.list(ITEMS, limit=1)
                except BusinessCentralError as exc:
                    report.errors[type(exc).__name__] += 1
        report.fallback_seen = report.fallback_seen or any(t.share().fallback for t in throttles)
