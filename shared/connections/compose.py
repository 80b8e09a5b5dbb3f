"""The connection registry for the running event loop: one Table client, one cache, per process and loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shared.azure_clients import table_client
from shared.clock import Clock, SystemClock
from shared.connections.connection import connection_from_settings
from shared.connections.registry import REGISTRY_TABLE_SUFFIX, ConnectionRegistry, TableRegistryStore
from shared.per_loop import PerLoop
from shared.settings import Settings, get_settings


@dataclass
class RegistryServices:
    """The registry and the Table client it owns."""

    registry: ConnectionRegistry
    store: TableRegistryStore
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


def registry_table_name(settings: Settings) -> str:
    """`{BC_TABLE_PREFIX}connections`."""
    return f"{settings.storage.table_prefix}{REGISTRY_TABLE_SUFFIX}"


async def build_registry_services(settings: Settings, clock: Clock | None = None) -> RegistryServices:
    """The registry over its table (created when missing)."""
    table = table_client(settings.storage, registry_table_name(settings))
    store = TableRegistryStore(table.client)
    try:
        await store.ensure()
    except BaseException:
        await table.close()
        raise
    registry = ConnectionRegistry(connection_from_settings(settings), store, clock or SystemClock())
    return RegistryServices(registry, store, [table.close])


_per_loop: PerLoop[Settings, RegistryServices] = PerLoop(build_registry_services)


async def registry_services(settings: Settings | None = None) -> RegistryServices:
    """The process's registry for the running loop."""
    return await _per_loop.get(settings or get_settings())


async def close_registry_services() -> None:
    """Close and forget the running loop's registry (tests, local host shutdown)."""
    await _per_loop.close()
