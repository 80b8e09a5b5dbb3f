"""Build the token lifecycle's object graph from Settings, once per process (per event loop).

The only module that constructs Azure SDK clients and credentials for shared.auth. Key Vault credential:
managed identity in Azure (the user-assigned identity JobsStorage__clientId names, else the system one);
the BC app registration's client secret against the local sandbox (KEY_VAULT_CREDENTIAL, see settings).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from azure.core.pipeline.transport import AsyncHttpTransport
from azure.data.tables.aio import TableServiceClient
from azure.identity.aio import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.secrets.aio import SecretClient

from shared.auth.clock import Clock, SystemClock
from shared.auth.keyvault import KeyVaultTokenStore
from shared.auth.leases import LeaseKeeper
from shared.auth.logins import LoginBook
from shared.auth.manager import Components, TokenManager
from shared.auth.msal_identity import ClientCertificate, MsalConfig, MsalIdentity
from shared.auth.notify import AdminNotifier, NoNotifier, WebhookNotifier
from shared.auth.retry import SDK_RETRY
from shared.auth.states import StateBook
from shared.auth.stores import TokenStore
from shared.auth.tables import LeaseCodec, LoginCodec, StateCodec, TableRecordStore
from shared.errors import SettingsError
from shared.redaction import install_redaction
from shared.settings import Settings, get_settings

AUTH_TABLE_SUFFIX = "auth"


@dataclass
class AuthServices:
    """The token manager plus the clients it owns (closed together)."""

    manager: TokenManager
    settings: Settings
    tokens: TokenStore  # the Key Vault store, for tools and tests that inspect or repair a token set
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        """Close every SDK client and credential (aiohttp sessions)."""
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


def auth_table_name(settings: Settings) -> str:
    """`{BC_TABLE_PREFIX}auth`: leases, pending sign-ins and connection state."""
    return f"{settings.storage.table_prefix}{AUTH_TABLE_SUFFIX}"


def msal_config(settings: Settings) -> MsalConfig:
    """MSAL's view of the auth settings; refuses to start without tenant and client id."""
    auth = settings.auth
    if not auth.tenant_id or not auth.client_id:
        raise SettingsError("BC_TENANT_ID and BC_CLIENT_ID are required for the token lifecycle")
    certificate = (
        ClientCertificate(auth.client_certificate_path, auth.client_certificate_password)
        if auth.client_certificate_path
        else None
    )
    return MsalConfig(
        client_id=auth.client_id,
        tenant_id=auth.tenant_id,
        authority_host=auth.authority_host,
        scope=auth.scope,
        client_secret=auth.client_secret,
        certificate=certificate,
        ca_bundle=settings.local.ca_bundle,
    )


def build_auth_services(
    settings: Settings,
    clock: Clock | None = None,
    table_transport: AsyncHttpTransport[Any, Any] | None = None,
) -> AuthServices:
    """Wire TokenManager to Key Vault, Table Storage, MSAL and the webhook, as the settings say.

    `table_transport` replaces the Table client's aiohttp transport (an azure-core extension point; the
    test suite passes a recording one to check that no row ever holds a secret).
    """
    install_redaction()
    clock = clock or SystemClock()
    auth = settings.auth
    closers: list[Callable[[], Awaitable[None]]] = []
    vault_credential = _key_vault_credential(settings)
    secrets = SecretClient(
        _required(auth.key_vault_url, "KEY_VAULT_URL"),
        vault_credential,
        verify_challenge_resource=auth.key_vault_verify_challenge_resource,
        **_sdk_kwargs(settings),
    )
    closers += [vault_credential.close, secrets.close]
    tables, table_closers = _table_service(settings, table_transport)
    closers += table_closers
    table = tables.get_table_client(auth_table_name(settings))
    closers.append(table.close)
    connection = auth.connection_name
    tokens = KeyVaultTokenStore(secrets)
    identity = MsalIdentity(msal_config(settings))
    closers.append(identity.close)
    parts = Components(
        connection=connection,
        mode=auth.mode,
        identity=identity,
        tokens=tokens,
        leases=LeaseKeeper(TableRecordStore(table, f"lease-{connection}", LeaseCodec()), clock),
        logins=LoginBook(TableRecordStore(table, f"login-{connection}", LoginCodec()), clock),
        states=StateBook(
            connection,
            TableRecordStore(table, f"state-{connection}", StateCodec()),
            clock,
            _notifier(settings),
        ),
        clock=clock,
        holder=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
    )
    return AuthServices(manager=TokenManager(parts), settings=settings, tokens=tokens, closers=closers)


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AuthServices] = weakref.WeakKeyDictionary()


async def auth_services(settings: Settings | None = None) -> AuthServices:
    """The process's services for the running event loop (aio clients are bound to their loop)."""
    settings = settings or get_settings()
    loop = asyncio.get_running_loop()
    current = _per_loop.get(loop)
    if current is None or current.settings != settings:
        if current is not None:
            await current.aclose()
        current = build_auth_services(settings)
        _per_loop[loop] = current
    return current


async def close_auth_services() -> None:
    """Close and forget the running loop's services (tests, local host shutdown)."""
    current = _per_loop.pop(asyncio.get_running_loop(), None)
    if current is not None:
        await current.aclose()


def _key_vault_credential(settings: Settings) -> ClientSecretCredential | ManagedIdentityCredential:
    auth = settings.auth
    choice = auth.key_vault_credential or (
        "client_secret" if settings.local.ca_bundle else "managed_identity"
    )
    if choice == "managed_identity":
        return ManagedIdentityCredential(client_id=settings.storage.managed_identity_client_id)
    return ClientSecretCredential(
        _required(auth.tenant_id, "BC_TENANT_ID"),
        _required(auth.client_id, "BC_CLIENT_ID"),
        _required(auth.client_secret, "BC_CLIENT_SECRET"),
        authority=auth.authority_host,
        **_sdk_kwargs(settings),
    )


def _table_service(
    settings: Settings, transport: AsyncHttpTransport[Any, Any] | None
) -> tuple[TableServiceClient, list[Callable[[], Awaitable[None]]]]:
    storage = settings.storage
    extra: dict[str, Any] = {**SDK_RETRY, **({"transport": transport} if transport is not None else {})}
    if storage.connection_string:
        service = TableServiceClient.from_connection_string(storage.connection_string, **extra)
        return service, [service.close]
    endpoint = _required(storage.table_service_uri, "JobsStorage or JobsStorage__tableServiceUri")
    credential = ManagedIdentityCredential(client_id=storage.managed_identity_client_id)
    service = TableServiceClient(endpoint, credential=credential, **extra)
    return service, [credential.close, service.close]


def _notifier(settings: Settings) -> AdminNotifier:
    url = settings.auth.reauth_webhook_url
    if not url:
        return NoNotifier()
    ca = settings.local.ca_bundle
    return WebhookNotifier(url, verify=ssl.create_default_context(cafile=str(ca)) if ca else True)


def _sdk_kwargs(settings: Settings) -> dict[str, Any]:
    """Azure SDK kwargs: bounded retries; trust the local CA only when LOCAL_CA_BUNDLE is set."""
    ca = settings.local.ca_bundle
    return {**SDK_RETRY, "connection_verify": str(ca)} if ca else dict(SDK_RETRY)


def _required(value: str | None, name: str) -> str:
    if not value:
        raise SettingsError(f"{name} is required for the token lifecycle")
    return value
