"""Build the token lifecycle's object graph from Settings, once per process (per event loop).

The only module that constructs Azure SDK clients and credentials for shared.auth, all with the options of
shared.azure_clients (bounded timeouts and retries; the local CA only when LOCAL_CA_BUNDLE is set). Key Vault
credential: managed identity in Azure (the user-assigned identity JobsStorage__clientId names, else the
system one); the BC app registration's client secret against the local sandbox (KEY_VAULT_CREDENTIAL), unless the
settings' credential is federated (no secret: the managed identity, through the sandbox's endpoint locally).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from azure.core.pipeline.transport import AsyncHttpTransport
from azure.data.tables.aio import TableClient
from azure.identity import ManagedIdentityCredential as SyncManagedIdentityCredential
from azure.identity.aio import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.secrets.aio import SecretClient

from shared.auth.federated import ManagedIdentityAssertion
from shared.auth.health import HealthRecorder
from shared.auth.identity import IdentityProvider
from shared.auth.keyvault import KeyVaultTokenStore
from shared.auth.leases import LeaseKeeper
from shared.auth.manager import Collaborators, TokenManager
from shared.auth.msal_identity import ClientCertificate, MsalConfig, MsalIdentity
from shared.auth.notify import AdminNotifier, NoNotifier, WebhookNotifier
from shared.auth.sign_in import LOGIN_PATH, PendingSignIns, SignInFlow
from shared.auth.stores import TokenStore
from shared.auth.tables import LeaseCodec, RecordCodec, SignInCodec, TableRecordStore
from shared.auth.vault_credential import VaultSecretIdentity
from shared.azure_clients import httpx_verify, sdk_options, table_client
from shared.clock import Clock, SystemClock
from shared.connections.connection import (
    IDENTITY_SEPARATOR,
    Connection,
    Credential,
    Identity,
    connection_from_settings,
)
from shared.errors import SettingsError
from shared.per_loop import PerLoop
from shared.process import process_id
from shared.settings import Impact, Settings, get_settings, require

AUTH_TABLE_SUFFIX = "auth"


@runtime_checkable
class _Closable(Protocol):
    """An identity provider that can drop its MSAL application (MsalIdentity, VaultSecretIdentity)."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ConnectionAuth:
    """One connection's token manager and the admin's sign-in beside it."""

    connection: Connection
    manager: TokenManager
    sign_in: SignInFlow


@dataclass
class _Shared:
    """What every connection's token lifecycle shares in one process: Key Vault, the auth table, the alerts."""

    secrets: SecretClient
    table: TableClient
    clock: Clock
    notifier: AdminNotifier
    settings: Settings
    # One assertion per user-assigned identity in the process: identities federated through the same managed
    # identity share its exchange token (one managed-identity request per token lifetime, not one per identity).
    assertions: dict[str, ManagedIdentityAssertion] = field(default_factory=dict)


@dataclass
class AuthServices:
    """The settings' connection's token manager and sign-in, the other connections' built on demand, and the
    clients they own (closed together)."""

    manager: TokenManager  # the settings' connection (BC_CONNECTION_NAME)
    sign_in: SignInFlow
    settings: Settings
    tokens: TokenStore  # the Key Vault store, for tools and tests that inspect or repair a token set
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    shared: _Shared | None = None
    by_connection: dict[str, ConnectionAuth] = field(default_factory=dict)
    by_identity: dict[tuple[str, str], ConnectionAuth] = field(default_factory=dict)

    def for_connection(self, connection: Connection) -> ConnectionAuth:
        """That connection's manager and sign-in; built once per process, again when its definition changed (the
        old one stays open for runs still using it, and is closed with the rest)."""
        if connection.from_settings:
            return ConnectionAuth(connection, self.manager, self.sign_in)
        known = self.by_connection.get(connection.name)
        if known is not None and known.connection == connection:
            return known
        if self.shared is None:
            raise SettingsError("these auth services serve the settings' connection only")
        built = _connection_auth(self.settings, self.shared, self.tokens, connection, self.closers)
        self.by_connection[connection.name] = built
        return built

    def for_identity(self, connection: Connection, identity: Identity) -> ConnectionAuth:
        """One identity of the connection's pool: the primary one is `for_connection`; each other has its own token
        set, lease and health record under `auth_name` (built once per process, again when its definition changed)."""
        if identity.primary:
            return self.for_connection(connection)
        key = (connection.name, identity.name)
        known = self.by_identity.get(key)
        if known is not None and known.connection == connection:
            return known
        if self.shared is None:
            raise SettingsError("these auth services serve the settings' connection only")
        built = _connection_auth(self.settings, self.shared, self.tokens, connection, self.closers, identity)
        self.by_identity[key] = built
        return built

    async def forget_refusals(self, connection: Connection, identity: Identity | None = None) -> None:
        """Make the identity's (default: the primary one's) next token request reach Entra, after an admin fixed
        what Entra refused (consent).

        MSAL replays a 400 for the same request for 60 s (msal/throttled_http_client.py, MSAL Python), so a check
        right after the consent would be answered with the refusal from before it. Closing the identity drops its
        MSAL application (and that replay cache); the next request builds a new one."""
        provider = self.for_identity(connection, identity or connection.primary).manager.parts.identity
        if isinstance(provider, _Closable):
            await provider.close()

    def pending_consents(self, connection: str) -> PendingSignIns:
        """The admin consents started for `connection`: one-time, 10-minute states kept like pending sign-ins
        (without a flow), in partition `consent-{name}` of the auth table (shared.onboarding.consent)."""
        if self.shared is None:
            raise SettingsError("these auth services serve the settings' connection only")
        store = TableRecordStore(self.shared.table, f"consent-{connection}", SignInCodec())
        return PendingSignIns(store, self.shared.clock, f"/api/connections/{connection}/consent")

    async def aclose(self) -> None:
        """Close every SDK client and credential (aiohttp sessions)."""
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


def auth_table_name(settings: Settings) -> str:
    """`{BC_TABLE_PREFIX}auth`: refresh leases, pending sign-ins and connection records."""
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
    """Wire TokenManager and SignInFlow to Key Vault, Table Storage, MSAL and the webhook, as the settings say.

    Refuses settings the token lifecycle cannot work with (InvalidSettingsError, see shared.settings.check_settings)
    before any client is built, so a malformed KEY_VAULT_URL or a stale LOCAL_CA_BUNDLE is named, not retried.

    `table_transport` replaces the Table client's aiohttp transport (an azure-core extension point; the
    test suite passes a recording one to check that no row ever holds a secret).
    """
    require(settings, Impact.TOKENS, Impact.STORAGE)  # InvalidSettingsError naming each setting and its fix
    clock = clock or SystemClock()
    closers: list[Callable[[], Awaitable[None]]] = []
    secrets = _secret_client(settings, closers)
    tokens = KeyVaultTokenStore(secrets, settings.auth.key_vault_url or "")
    extra = {"transport": table_transport} if table_transport is not None else {}
    table = table_client(settings.storage, auth_table_name(settings), **extra)
    closers.append(table.close)
    shared = _Shared(secrets, table.client, clock, _notifier(settings), settings)
    default = connection_from_settings(settings)
    identity = _identity_provider(msal_config(settings), shared, default.primary, default.name, closers)
    manager = TokenManager(_collaborators(shared, default, identity, tokens))
    sign_in = SignInFlow(_pending_sign_ins(shared, default.name), manager)
    return AuthServices(manager, sign_in, settings, tokens, closers, shared)


def auth_name(connection: Connection, identity: Identity) -> str:
    """The name an identity's token set, lease, health record and sign-ins are stored under: the connection's
    own for the primary identity (as before pools existed), `{connection}--{identity}` for the others.

    Unambiguous because identity names have no dash and the connections API refuses `--` in a new name."""
    return connection.name if identity.primary else f"{connection.name}{IDENTITY_SEPARATOR}{identity.name}"


def _connection_auth(
    settings: Settings,
    shared: _Shared,
    tokens: TokenStore,
    connection: Connection,
    closers: list[Callable[[], Awaitable[None]]],
    identity: Identity | None = None,
) -> ConnectionAuth:
    """A registered connection's (or one of its identities') manager and sign-in, on the process's shared clients."""
    acting = identity or connection.primary
    name = auth_name(connection, acting)
    config = dataclasses.replace(
        msal_config(settings), client_id=acting.client_id, tenant_id=connection.tenant_id
    )
    provider = _identity_provider(config, shared, acting, name, closers)
    manager = TokenManager(_collaborators(shared, connection, provider, tokens, name))
    restart = f"/api/connections/{connection.name}/sign-in"
    sign_in = SignInFlow(_pending_sign_ins(shared, name, restart), manager, named_state=True)
    return ConnectionAuth(connection, manager, sign_in)


def _identity_provider(
    config: MsalConfig,
    shared: _Shared,
    identity: Identity,
    name: str,
    closers: list[Callable[[], Awaitable[None]]],
) -> IdentityProvider:
    """MSAL with the credential the identity names: a Key Vault secret, a federated credential (a managed
    identity's token as the assertion), or the settings' own (their secret/certificate, or their federation)."""
    provider: VaultSecretIdentity | MsalIdentity
    federated = _assertion_identity(shared.settings, identity)
    if identity.credential is Credential.KEY_VAULT_SECRET and identity.secret_name:
        config = dataclasses.replace(config, client_secret=None, certificate=None)
        provider = VaultSecretIdentity(config, shared.secrets, identity.secret_name, name)
    elif federated is not None:
        assertion = _assertion(shared, federated, closers)
        provider = MsalIdentity(
            dataclasses.replace(config, client_secret=None, certificate=None, assertion=assertion)
        )
    else:
        provider = MsalIdentity(config)
    closers.append(provider.close)
    return provider


def _assertion_identity(settings: Settings, identity: Identity) -> str | None:
    """The managed identity whose token is this identity's assertion; None for a secret or certificate."""
    if identity.credential is Credential.FEDERATED:
        if not identity.managed_identity_client_id:
            raise SettingsError(f"identity '{identity.name}': federated without managedIdentityClientId")
        return identity.managed_identity_client_id
    if identity.credential is Credential.SETTINGS and settings.federated:
        return settings.federated_identity_client_id
    return None


def _assertion(
    shared: _Shared, client_id: str, closers: list[Callable[[], Awaitable[None]]]
) -> ManagedIdentityAssertion:
    """The process's assertion for that user-assigned identity (built once; closed with the services)."""
    known = shared.assertions.get(client_id)
    if known is None:
        # The sync credential: MSAL calls the assertion on its worker thread (shared.auth.federated).
        options = sdk_options(shared.settings.local)
        known = ManagedIdentityAssertion(
            lambda: SyncManagedIdentityCredential(client_id=client_id, **options), client_id
        )
        shared.assertions[client_id] = known
        closers.append(known.close)
    return known


def _secret_client(settings: Settings, closers: list[Callable[[], Awaitable[None]]]) -> SecretClient:
    """The Key Vault client and its credential, with bounded timeouts; both closers are appended."""
    credential = _key_vault_credential(settings)
    secrets = SecretClient(
        _required(settings.auth.key_vault_url, "KEY_VAULT_URL"),
        credential,
        verify_challenge_resource=settings.auth.key_vault_verify_challenge_resource,
        **sdk_options(settings.local),
    )
    closers += [credential.close, secrets.close]
    return secrets


def _collaborators(
    shared: _Shared,
    connection: Connection,
    identity: IdentityProvider,
    tokens: TokenStore,
    name: str | None = None,
) -> Collaborators:
    """One connection's collaborators; its lease and record share the auth table with the pending sign-ins. The
    partition names are stored data ("state-" predates the word record): renaming them would orphan rows."""
    name = name or connection.name
    return Collaborators(
        connection=name,
        mode=connection.mode,
        identity=identity,
        tokens=tokens,
        leases=LeaseKeeper(TableRecordStore(shared.table, f"lease-{name}", LeaseCodec()), shared.clock),
        health=_health(shared, connection, name),
        clock=shared.clock,
        # process_id() names the process; the suffix keeps apart the managers one process builds per event loop:
        # each has its own lock, so they must not pass for one holder (LeaseKeeper lets a holder retake its lease).
        holder=f"{process_id()}:{uuid.uuid4().hex[:8]}",
    )


def _health(shared: _Shared, connection: Connection, name: str) -> HealthRecorder:
    """The connection record of `name` (a connection, or one identity of its pool: shared.auth.compose.auth_name)."""
    return HealthRecorder(
        name,
        TableRecordStore(shared.table, f"state-{name}", RecordCodec()),
        shared.clock,
        shared.notifier,
        connection.mode,
        registered=not connection.from_settings,
    )


def _pending_sign_ins(shared: _Shared, connection: str, restart: str = LOGIN_PATH) -> PendingSignIns:
    """The connection's pending sign-ins in the auth table ("login-" predates the word sign-in: stored data)."""
    store = TableRecordStore(shared.table, f"login-{connection}", SignInCodec())
    return PendingSignIns(store, shared.clock, restart)


async def _build_for_loop(settings: Settings) -> AuthServices:
    return build_auth_services(settings)


_per_loop: PerLoop[Settings, AuthServices] = PerLoop(_build_for_loop)


async def auth_services(settings: Settings | None = None) -> AuthServices:
    """The process's services for the running event loop (aio clients are bound to their loop)."""
    return await _per_loop.get(settings or get_settings())


async def close_auth_services() -> None:
    """Close and forget the running loop's services (tests, local host shutdown)."""
    await _per_loop.close()


def _key_vault_credential(settings: Settings) -> ClientSecretCredential | ManagedIdentityCredential:
    auth = settings.auth
    if settings.vault_credential == "managed_identity":
        return ManagedIdentityCredential(
            client_id=settings.storage.managed_identity_client_id, **sdk_options(settings.local)
        )
    return ClientSecretCredential(
        _required(auth.tenant_id, "BC_TENANT_ID"),
        _required(auth.client_id, "BC_CLIENT_ID"),
        _required(auth.client_secret, "BC_CLIENT_SECRET"),
        authority=auth.authority_host,
        **sdk_options(settings.local),
    )


def _notifier(settings: Settings) -> AdminNotifier:
    url = settings.auth.reauth_webhook_url
    if not url:
        return NoNotifier()
    return WebhookNotifier(url, verify=httpx_verify(settings.local))


def _required(value: str | None, name: str) -> str:
    if not value:
        raise SettingsError(f"{name} is required for the token lifecycle")
    return value
