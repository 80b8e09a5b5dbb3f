"""Connections: named links to one BC environment of one Entra tenant (docs/architecture.md, glossary).

The settings define one (`BC_CONNECTION_NAME`, default `default`); more live in the registry table and are managed
through `/api/connections` and `bcjobs connections`. Call tree of a job's connection:

    JobProcessor._handle ── Lanes.lane(job.connection) ── ConnectionRegistry.resolve(name)   (cached, see registry)
                                                      └── ConnectionServices (token manager, throttle, BC client)
"""

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
from shared.connections.registry import ConnectionRegistry, MemoryRegistryStore, RegistryStore

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
