"""How every part of the package reaches Azure services and the local sandbox: trust, timeouts, storage clients.

One place decides (a) which CA to trust — the system store in Azure, LOCAL_CA_BUNDLE only in the local world —
and (b) the Azure SDK's timeouts and retries. The SDK defaults (300 s connect/read timeouts, 3+ retries with
backoff) would hold a worker, a lease or a heartbeat far longer than the callers can wait; callers fail fast
and fall back (cached token, local throttle share) instead.
"""

from __future__ import annotations

import importlib.util
import ssl
import sys
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from azure.data.tables.aio import TableClient
from azure.identity.aio import ManagedIdentityCredential
from azure.storage.queue.aio import QueueClient

from shared.errors import SettingsError
from shared.settings import LocalSettings, StorageSettings

ClientT = TypeVar("ClientT", TableClient, QueueClient)

# Bounded SDK behaviour for every azure.* client of this package (timeouts in seconds).
SDK_OPTIONS: dict[str, Any] = {
    "connection_timeout": 5,
    "read_timeout": 10,
    "retry_total": 2,
    "retry_backoff_factor": 0.4,
    "retry_backoff_max": 2,
}
# The storage queue SDK keeps its own retry policy (ExponentialRetry: 15 s initial backoff, base 3) that the
# azure-core `retry_backoff_*` options above do not reach; without these a send to an unreachable queue would wait
# ~40 s. About 1.5 s per retry instead.
QUEUE_RETRY: dict[str, Any] = {"initial_backoff": 0.5, "increment_base": 1, "random_jitter_range": 0.25}


def env_options(proxies: Mapping[str, str]) -> dict[str, Any]:
    """`use_env_settings=False` for an azure.* client unless `proxies` (urllib's getproxies()) names a proxy.

    Why: azure-core's aiohttp transport opens its session with `trust_env=use_env_settings` (default True), and
    aiohttp then reads `~/.netrc` and the proxy variables on every request, each in a thread hop
    (aiohttp/client.py `_request`: `run_in_executor(_get_netrc_auth)`, `asyncio.to_thread(get_env_proxy_for_url)`):
    two thread hops per storage call (issue 24). With HTTPS_PROXY (or any *_proxy variable) set, the SDK default
    stays, so a proxied deployment keeps working exactly as before (NO_PROXY and netrc included). The variables
    are read through urllib, the same function aiohttp uses (helpers.proxies_from_env), not as app settings: they
    are the platform's, not the app's ("no" is NO_PROXY, not a proxy).
    """
    if names_proxy(proxies):
        return {}
    return {"use_env_settings": False}


def names_proxy(proxies: Mapping[str, str]) -> bool:
    """Whether `proxies` (urllib's getproxies()) names a proxy; "no" is NO_PROXY, not a proxy."""
    return any(scheme != "no" and url for scheme, url in proxies.items())


def _env_options() -> dict[str, Any]:
    return env_options(urllib.request.getproxies())


# Optional modules that httpx's transport tries to import on every request when they are absent (see below).
HTTPX_OPTIONAL_MODULES = ("sniffio",)


def remember_missing(names: tuple[str, ...], modules: MutableMapping[str, Any]) -> None:
    """Mark each of `names` that is not installed as missing in `modules` (sys.modules): `None` there makes a later
    `import` fail at once with ModuleNotFoundError instead of searching every sys.path entry again
    (docs.python.org/3/reference/import.html#the-module-cache). An installed module is left alone.

    Why: httpcore 1.0.9 runs `import sniffio` inside `current_async_library()`, each time one of its async locks,
    semaphores or events is set up (httpcore/_synchronization.py): about 6 times per BC request. anyio 4 no longer
    requires sniffio, so it is absent here and each failed import walks sys.path: ~80 µs, about 0.5 ms of worker
    CPU per job, the largest single cost in the capacity bench's profile (issue 24, bench/results/profile_*.txt).
    """
    for name in names:
        if name not in modules and importlib.util.find_spec(name) is None:
            modules[name] = None


def httpx_verify(local: LocalSettings) -> ssl.SSLContext | bool:
    """`verify=` for httpx: the local CA when LOCAL_CA_BUNDLE is set, else the system trust store.

    Every httpx client of the package is built with it, so it also spares httpx's transport its per-request
    import of absent optional modules (remember_missing)."""
    remember_missing(HTTPX_OPTIONAL_MODULES, sys.modules)
    if local.ca_bundle is None:
        return True
    return ssl.create_default_context(cafile=str(local.ca_bundle))


def sdk_options(local: LocalSettings, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for an azure.* client: bounded timeouts/retries, plus the local CA when set."""
    options = {**SDK_OPTIONS, **_env_options(), **overrides}
    if local.ca_bundle is not None:
        options["connection_verify"] = str(local.ca_bundle)
    return options


@dataclass
class OwnedClient(Generic[ClientT]):
    """An SDK client plus the credential it was built with; `close()` releases both aiohttp sessions."""

    client: ClientT
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        """Close the client, then its credential."""
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


OwnedTableClient = OwnedClient[TableClient]
OwnedQueueClient = OwnedClient[QueueClient]


def table_client(storage: StorageSettings, table_name: str, **options: Any) -> OwnedTableClient:
    """A TableClient from the JobsStorage connection string (local) or its service URI + managed identity (Azure)."""
    kwargs = {**SDK_OPTIONS, **_env_options(), **options}
    if storage.connection_string:
        client = TableClient.from_connection_string(storage.connection_string, table_name, **kwargs)
        return OwnedClient(client, [client.close])
    if not storage.table_service_uri:
        raise SettingsError(
            "table storage is not configured: set JobsStorage or JobsStorage__tableServiceUri"
        )
    credential = ManagedIdentityCredential(client_id=storage.managed_identity_client_id)
    client = TableClient(storage.table_service_uri, table_name, credential=credential, **kwargs)
    return OwnedClient(client, [credential.close, client.close])


def queue_client(storage: StorageSettings, queue_name: str, **options: Any) -> OwnedQueueClient:
    """A QueueClient (plain text: callers send text that is already base64) from the connection string or the
    queue service URI + managed identity."""
    kwargs = {**SDK_OPTIONS, **_env_options(), **QUEUE_RETRY, **options}
    if storage.connection_string:
        client = QueueClient.from_connection_string(storage.connection_string, queue_name, **kwargs)
        return OwnedClient(client, [client.close])
    if not storage.queue_service_uri:
        raise SettingsError(
            "queue storage is not configured: set JobsStorage or JobsStorage__queueServiceUri"
        )
    credential = ManagedIdentityCredential(client_id=storage.managed_identity_client_id)
    client = QueueClient(storage.queue_service_uri, queue_name, credential=credential, **kwargs)
    return OwnedClient(client, [credential.close, client.close])
