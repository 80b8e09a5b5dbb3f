"""Why a connection cannot be used.

IntegrationError
 └── ConnectionUnusableError       a job or a request names a connection that cannot serve it
      ├── UnknownConnectionError   no connection of that name (settings or registry)
      └── ConnectionDisabledError  registered but disabled by an admin (the reason is theirs)
 └── RegistryUnavailableError      the registry table failed (storage): retry, nothing is decided

Messages name the connection and the next step; they never hold a secret (a registry row never has one).
"""

from __future__ import annotations

from shared.errors import IntegrationError


class ConnectionUnusableError(IntegrationError):
    """The named connection cannot serve this job or request; `reason` says why and what to do."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(reason)


class UnknownConnectionError(ConnectionUnusableError):
    """No connection of that name."""

    def __init__(self, name: str) -> None:
        super().__init__(
            name,
            f"connection '{name}' does not exist; register it (PUT /api/connections/{name} or "
            "`bcjobs connections put`) or send the job to an existing connection (`bcjobs connections list`)",
        )


class ConnectionDisabledError(ConnectionUnusableError):
    """The connection is disabled; its jobs are rejected until an admin enables it again."""

    def __init__(self, name: str, why: str | None) -> None:
        because = f" ({why})" if why else ""
        super().__init__(
            name,
            f"connection '{name}' is disabled{because}; an admin enables it again with "
            f'PUT /api/connections/{name} and "enabled": true, or send the job to another connection',
        )


class RegistryUnavailableError(IntegrationError):
    """The registry table could not be read or written; `cause` names the storage error's type."""

    def __init__(self, operation: str, cause: str) -> None:
        self.cause = cause
        super().__init__(
            f"the connection registry could not {operation} ({cause}); check JobsStorage and BC_TABLE_PREFIX"
        )
