"""Connections: named links to one BC environment of one Entra tenant (docs/architecture.md, glossary).

The settings define one (`BC_CONNECTION_NAME`, default `default`); more live in the registry table and are managed
through `/api/connections` and `bcjobs connections`. Call tree of a job's connection:

    JobProcessor._handle ── Lanes.lane(job.connection) ── ConnectionRegistry.resolve(name)   (cached, see registry)
                                                      └── ConnectionServices (token manager, throttle, BC client)
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from shared.connections.connection import (
    CONNECTION_NAME_PATTERN,
    Connection,
    Credential,
    Identity,
    connection_from_settings,
)
from shared.connections.errors import (
    ConnectionDisabledError,
    ConnectionUnusableError,
    RegistryUnavailableError,
    UnknownConnectionError,
)

# Lazy (PEP 562): the registry brings the Table SDK, which only a running function needs; the trigger modules
# imported at every cold start (the host indexes every function) use the connection model and the errors.
if TYPE_CHECKING:
    from shared.connections.registry import ConnectionRegistry, MemoryRegistryStore, RegistryStore

_REGISTRY = ("ConnectionRegistry", "MemoryRegistryStore", "RegistryStore")


def __getattr__(name: str) -> Any:
    """The registry's public names, imported on first use."""
    if name not in _REGISTRY:
        raise AttributeError(f"module 'shared.connections' has no attribute {name!r}")
    value = getattr(import_module("shared.connections.registry"), name)
    globals()[name] = value
    return value


__all__ = [
    "CONNECTION_NAME_PATTERN",
    "Connection",
    "ConnectionDisabledError",
    "ConnectionRegistry",
    "ConnectionUnusableError",
    "Credential",
    "Identity",
    "MemoryRegistryStore",
    "RegistryStore",
    "RegistryUnavailableError",
    "UnknownConnectionError",
    "connection_from_settings",
]
