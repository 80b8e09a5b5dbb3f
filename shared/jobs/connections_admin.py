"""The connections API's collaborators for the running event loop: Key Vault, the jobs table, the registry.

The API's logic is shared/connections/admin.py (a leaf: it knows neither auth nor jobs); this composes it with
the Key Vault client the auth services already hold and the jobs table it counts pending jobs in, as
shared/jobs/compose.py composes the job pipeline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables.aio import TableClient
from azure.keyvault.secrets.aio import SecretClient

from bcjobs.common import jobs_table_name
from bcjobs.results import TERMINAL_STATES
from bcjobs.rows import JOB_ROW
from shared.auth.compose import AuthServices, auth_services
from shared.azure_clients import table_client
from shared.connections.admin import ConnectionsAdmin, VaultUnavailableError
from shared.connections.compose import registry_services
from shared.connections.connection import Connection, Identity
from shared.connections.errors import RegistryUnavailableError
from shared.errors import SettingsError
from shared.per_loop import PerLoop
from shared.settings import Settings, get_settings

# Key Vault SDK failures: service and network errors, and ValueError for a challenge it refuses (as in
# shared/auth/keyvault.py).
_SDK_FAILURES = (AzureError, ValueError)


class KeyVaultSecrets:
    """SecretVault over the auth services' SecretClient; failures become VaultUnavailableError (type names only)."""

    def __init__(self, client: SecretClient) -> None:
        self._client = client

    async def write(self, name: str, value: str, *, connection: str) -> str:
        try:
            return await self._set(name, value, connection)
        except ResourceExistsError:
            # 409: a secret of that name was soft-deleted (a connection deleted and registered again); recover
            # it, then write the new version (learn.microsoft.com/azure/key-vault/general/soft-delete-overview).
            try:
                await self._client.recover_deleted_secret(name)
                return await self._set(name, value, connection)
            except _SDK_FAILURES as exc:
                raise VaultUnavailableError(f"write secret {name}", type(exc).__name__) from None
        except _SDK_FAILURES as exc:
            raise VaultUnavailableError(f"write secret {name}", type(exc).__name__) from None

    async def _set(self, name: str, value: str, connection: str) -> str:
        written = await self._client.set_secret(
            name, value, content_type="text/plain", tags={"connection": connection}
        )
        if not written.properties.version:
            raise VaultUnavailableError(f"write secret {name}", "no version returned")
        return written.properties.version

    async def delete(self, name: str) -> None:
        try:
            await self._client.delete_secret(name)
        except ResourceNotFoundError:
            return
        except _SDK_FAILURES as exc:
            raise VaultUnavailableError(f"delete secret {name}", type(exc).__name__) from None


class AuthIdentityHealth:
    """IdentityHealth over the auth services: the identity's token manager's status (never a token)."""

    def __init__(self, auth: AuthServices) -> None:
        self._auth = auth

    async def status(self, connection: Connection, identity: Identity) -> dict[str, object]:
        status = await self._auth.for_identity(connection, identity).manager.status()
        return dict(status.to_json_dict())


class TablePendingJobs:
    """PendingJobs over the jobs table: job rows of the connection in a non-terminal state, only keys read."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    async def count(self, connection: str, limit: int) -> int:
        ended = sorted(state.value for state in TERMINAL_STATES)
        clauses = [
            "RowKey eq @row",
            "Connection eq @connection",
            *(f"State ne @s{i}" for i in range(len(ended))),
        ]
        parameters: dict[str, object] = {"row": JOB_ROW, "connection": connection}
        parameters.update({f"s{i}": state for i, state in enumerate(ended)})
        found = 0
        try:
            rows = self._table.query_entities(
                " and ".join(clauses), parameters=parameters, select=["PartitionKey"], results_per_page=limit
            )
            async for _ in rows:
                found += 1
                if found >= limit:
                    break
        except ResourceNotFoundError:
            return 0  # no jobs table yet: no job at all
        except AzureError as exc:
            raise RegistryUnavailableError(
                "count the pending jobs (jobs table)", type(exc).__name__
            ) from None
        return found


@dataclass
class _AdminServices:
    admin: ConnectionsAdmin
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


async def _build(settings: Settings) -> _AdminServices:
    auth = await auth_services(settings)
    if auth.shared is None:
        raise SettingsError("the connections API needs Key Vault (KEY_VAULT_URL)")
    registry = (await registry_services(settings)).registry
    jobs = table_client(settings.storage, jobs_table_name(settings.storage.table_prefix))
    admin = ConnectionsAdmin(
        registry,
        KeyVaultSecrets(auth.shared.secrets),
        TablePendingJobs(jobs.client),
        settings.auth.client_id,
        AuthIdentityHealth(auth),
    )
    return _AdminServices(admin, [jobs.close])


_per_loop: PerLoop[Settings, _AdminServices] = PerLoop(_build)


async def connections_admin(settings: Settings | None = None) -> ConnectionsAdmin:
    """The routes' collaborators for the running loop."""
    return (await _per_loop.get(settings or get_settings())).admin


async def close_connections_admin() -> None:
    """Close and forget the running loop's jobs table client (the registry and Key Vault close with theirs)."""
    await _per_loop.close()
