"""The change feed's stores for the running event loop: watches, subscription rows, notification secrets and
watermarks, one Table client each (tables created when missing), per process and loop like the registry
(shared/connections/compose.py). The receiver, the expansion and the timers all take them from here; the secrets
use the auth services' Key Vault client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from azure.data.tables.aio import TableClient

from shared.auth import auth_services
from shared.azure_clients import table_client
from shared.changes.secrets import KeyVaultNotifySecrets
from shared.changes.subscriptions import SUBSCRIPTIONS_TABLE_SUFFIX, TableSubscriptionStore
from shared.changes.watch_admin import WatchesAdmin
from shared.changes.watches import WATCHES_TABLE_SUFFIX, CachedWatches, TableWatchStore
from shared.changes.watermarks import WATERMARKS_TABLE_SUFFIX, TableWatermarkStore
from shared.clock import SystemClock
from shared.connections.compose import registry_services
from shared.errors import SettingsError
from shared.per_loop import PerLoop
from shared.settings import Settings, get_settings


@dataclass
class ChangeDirectories:
    """Where the feed's definitions and progress live."""

    settings: Settings
    watches: CachedWatches
    subscriptions: TableSubscriptionStore
    secrets: KeyVaultNotifySecrets
    watermarks: TableWatermarkStore
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


def change_table_name(settings: Settings, suffix: str) -> str:
    """`{BC_TABLE_PREFIX}{suffix}`."""
    return f"{settings.storage.table_prefix}{suffix}"


async def build_change_directories(settings: Settings) -> ChangeDirectories:
    """Every store over its table (created when missing); a failed build closes what it opened."""
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        return await _wire(settings, closers)
    except BaseException:
        for close in reversed(closers):
            with contextlib.suppress(Exception):  # the build's own failure is the one to report
                await close()
        raise


async def _wire(settings: Settings, closers: list[Callable[[], Awaitable[None]]]) -> ChangeDirectories:
    tables: dict[str, TableClient] = {}
    for suffix in (WATCHES_TABLE_SUFFIX, SUBSCRIPTIONS_TABLE_SUFFIX, WATERMARKS_TABLE_SUFFIX):
        owned = table_client(settings.storage, change_table_name(settings, suffix))
        closers.append(owned.close)
        tables[suffix] = owned.client
    watches = TableWatchStore(tables[WATCHES_TABLE_SUFFIX])
    subscriptions = TableSubscriptionStore(tables[SUBSCRIPTIONS_TABLE_SUFFIX])
    watermarks = TableWatermarkStore(tables[WATERMARKS_TABLE_SUFFIX])
    for store in (watches, subscriptions, watermarks):
        await store.ensure()
    auth = await auth_services(settings)
    if auth.shared is None:
        raise SettingsError("the change feed needs Key Vault (KEY_VAULT_URL) for its notification secrets")
    clock = SystemClock()
    secrets = KeyVaultNotifySecrets(auth.shared.secrets, clock)
    return ChangeDirectories(
        settings, CachedWatches(watches, clock), subscriptions, secrets, watermarks, closers
    )


_per_loop: PerLoop[Settings, ChangeDirectories] = PerLoop(build_change_directories)


async def change_directories(settings: Settings | None = None) -> ChangeDirectories:
    """The process's change-feed stores for the running loop."""
    return await _per_loop.get(settings or get_settings())


async def close_change_directories() -> None:
    """Close and forget the running loop's stores (tests, local host shutdown)."""
    await _per_loop.close()


async def watches_admin(settings: Settings | None = None) -> WatchesAdmin:
    """The watches API's collaborators: the connection registry and the watch directory."""
    settings = settings or get_settings()
    registry = (await registry_services(settings)).registry
    directories = await change_directories(settings)
    return WatchesAdmin(registry, directories.watches, directories.watermarks)
