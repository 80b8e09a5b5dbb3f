"""`python -m bench connections`: the scale figures of many BC connections in one deployment (issue 21, point 8).

On the local world (Azurite, the sandbox process), in this process with the product's own code and settings
(client credentials, tables of its own), N connections (default 100) registered beside the settings' one, each
with its own Key Vault-held client secret name, token set, lease and connection record:

- `timer`: the hourly timer function (shared/triggers/token_refresh.py) run once with every token due (none
  stored yet): seconds to refresh all, token calls, Key Vault writes; then again with none due. The sandbox's
  Entra adds no latency of its own (its HTTPS round trip only), so `projected_seconds_at_entra_latency` adds a
  stated Entra latency per refresh over the timer's REFRESH_CONCURRENCY.
- `status_page`: GET /api/status's work (shared.ops.status_page, the 5 s snapshot cache emptied before each
  read): seconds to answer with N + 1 connections, warm (managers built by the timer, as on an instance that ran
  it) and cold (auth services closed first: every manager built, every token set read from Key Vault).
- `registry_lookups`: ConnectionRegistry.resolve over the real table store behind a counting proxy, on a manual
  clock: storage reads for N x 100 lookups in steady state, and after STALENESS_SECONDS.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.functions.timer import TimerRequest

from bench.world import BenchWorld, unique_prefix
from shared import ops
from shared.auth import auth_services, close_auth_services
from shared.auth.scheduled import REFRESH_CONCURRENCY
from shared.connections import Connection, ConnectionRegistry, Credential
from shared.connections.compose import close_registry_services, registry_services
from shared.connections.registry import STALENESS_SECONDS, RegistryStore
from shared.ops.per_connection import VIEW_CONCURRENCY
from shared.settings import Settings, get_settings
from shared.triggers import token_refresh
from testkit.clock import ManualClock

CONNECTIONS_RESULTS = Path(__file__).resolve().parent / "results" / "connections.json"
SECRET_NAME = "bench-connections-secret"
PAGE_READS = 5
LOOKUPS_PER_CONNECTION = 100
ENTRA_LATENCY_SECONDS = 0.5  # a slow Entra token call, for the projection (real ones are mostly faster)


class CountingStore:
    """RegistryStore that counts the reads of the store it wraps."""

    def __init__(self, inner: RegistryStore) -> None:
        self.inner = inner
        self.reads = 0

    async def all(self) -> list[Connection]:
        self.reads += 1
        return await self.inner.all()

    async def put(self, connection: Connection) -> None:
        await self.inner.put(connection)

    async def delete(self, name: str) -> bool:
        return await self.inner.delete(name)


def connection_scale(world: BenchWorld, count: int = 100) -> dict[str, Any]:
    """The figures (keys in the module docstring)."""
    world.reset(rate_limit=6000, window_seconds=300)
    env = world.app_settings(unique_prefix("n"), proxied=False)
    load = [round(x, 2) for x in os.getloadavg()]
    with _environment(env):
        get_settings.cache_clear()
        try:
            figures = asyncio.run(_measure(world, get_settings(), count))
        finally:
            get_settings.cache_clear()
    return {
        **figures,
        "load_average_at_start": load,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


async def _measure(world: BenchWorld, settings: Settings, count: int) -> dict[str, Any]:
    try:
        names = await _register(settings, count)
        timer = await _timer(world, count)
        page = await _status_page(settings, count)
        lookups = await _lookups(settings, names)
    finally:
        await close_registry_services()
        await close_auth_services()
    return {"connections": count + 1, "timer": timer, "status_page": page, "registry_lookups": lookups}


async def _register(settings: Settings, count: int) -> list[str]:
    """N connections on the sandbox's tenant and environment, their client secret in Key Vault under one name."""
    auth = await auth_services(settings)
    if auth.shared is None:
        raise RuntimeError("the auth services were built without their shared clients")
    await auth.shared.secrets.set_secret(SECRET_NAME, settings.auth.client_secret or "")
    registry = (await registry_services(settings)).registry
    names = [f"bench-{n:03d}" for n in range(count)]
    for name in names:
        await registry.put(
            Connection(
                name=name,
                tenant_id=settings.auth.tenant_id or "",
                environment=settings.bc.environment,
                client_id=settings.auth.client_id or "",
                company_id=settings.bc.company_id,
                credential=Credential.KEY_VAULT_SECRET,
                secret_name=SECRET_NAME,
            )
        )
    return names


async def _timer(world: BenchWorld, count: int) -> dict[str, Any]:
    """The timer with every token due, then with none due."""
    before = world.sandbox.stats()
    started = time.monotonic()
    await token_refresh.token_refresh(_timer_request())
    seconds = time.monotonic() - started
    after = world.sandbox.stats()
    started = time.monotonic()
    await token_refresh.token_refresh(_timer_request())
    idle_seconds = time.monotonic() - started
    calls = _delta(before["entra"]["token_calls"], after["entra"]["token_calls"])
    rounds = -(-(count + 1) // REFRESH_CONCURRENCY)
    return {
        "seconds_all_due": round(seconds, 2),
        "seconds_none_due": round(idle_seconds, 2),
        "period_seconds": 3600,
        "share_of_period": round(seconds / 3600, 5),
        "concurrency": REFRESH_CONCURRENCY,
        "token_calls": calls,
        "key_vault_writes": int(after["vault"]["writes"]) - int(before["vault"]["writes"]),
        "entra_latency_configured_ms": 0,
        "projected_seconds_at_entra_latency": round(seconds + rounds * ENTRA_LATENCY_SECONDS, 1),
        "projection_entra_latency_seconds": ENTRA_LATENCY_SECONDS,
    }


async def _status_page(settings: Settings, count: int) -> dict[str, Any]:
    """Warm reads (managers built), then one cold read (auth services closed first)."""
    warm = [await _one_page(settings, count) for _ in range(PAGE_READS)]
    await close_auth_services()
    cold = await _one_page(settings, count)
    return {
        "warm_seconds_median": round(statistics.median(warm), 3),
        "warm_seconds_max": round(max(warm), 3),
        "cold_seconds": round(cold, 3),
        "reads_in_flight_at_most": VIEW_CONCURRENCY,
        "snapshot_kept_seconds": ops.SNAPSHOT_SECONDS,
        "target_seconds": 1.0,
    }


async def _one_page(settings: Settings, count: int) -> float:
    ops._kept.clear()
    started = time.monotonic()
    reply = await ops.status_page(settings)
    seconds = time.monotonic() - started
    body = str(reply.body)
    if f"Connections ({count + 1})" not in body:
        raise RuntimeError("the status page does not list every connection")
    return seconds


async def _lookups(settings: Settings, names: list[str]) -> dict[str, Any]:
    """Storage reads of resolve() in steady state and after the staleness bound."""
    store = CountingStore((await registry_services(settings)).store)
    clock = ManualClock(datetime.now(UTC))
    registry = ConnectionRegistry((await registry_services(settings)).registry.default, store, clock)
    await registry.resolve(names[0])  # the first lookup of a process reads the table
    warm_reads = store.reads
    for _ in range(LOOKUPS_PER_CONNECTION):
        for name in names:
            await registry.resolve(name)
    steady = store.reads - warm_reads
    clock.advance(timedelta(seconds=STALENESS_SECONDS + 1))
    for name in names:
        await registry.resolve(name)
    return {
        "lookups": LOOKUPS_PER_CONNECTION * len(names),
        "storage_reads_steady_state": steady,
        "storage_reads_first_lookup": warm_reads,
        "storage_reads_after_staleness": store.reads - warm_reads - steady,
        "staleness_seconds": STALENESS_SECONDS,
    }


def _timer_request() -> TimerRequest:
    now = datetime.now(UTC).isoformat()
    return TimerRequest(
        past_due=False, schedule_status={"Last": now, "Next": now, "LastUpdated": now}, schedule={}
    )


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: int(v) - int(before.get(k, 0)) for k, v in after.items() if int(v) - int(before.get(k, 0))}


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """The app's settings in os.environ for the product's get_settings(), restored afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
