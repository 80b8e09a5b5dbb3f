"""A connection as a frozen value: what it links to and where its credential lives (never the credential).

Wire names are camelCase (the registry's HTTP API and its rows); the settings' connection is built from
BC_CONNECTION_NAME, BC_TENANT_ID, BC_ENVIRONMENT, ... by `connection_from_settings`, exactly as one deployment
behaved before connections existed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator, model_validator
from pydantic.alias_generators import to_camel

from shared.settings import Settings
from shared.tokens import AuthMode

CONNECTION_NAME_PATTERN = r"^[a-z0-9-]{1,40}$"
# A tenant id (GUID) or one of its domains (contoso.onmicrosoft.com); never common/organizations: client
# credentials need the tenant-specific authority (reference (b), B2 point 5).
_TENANT = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$"
_MULTI_TENANT_ALIASES = frozenset({"common", "organizations", "consumers"})
_GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# BC environment names: letters, digits, dash and underscore, at most 30 characters (Admin Center's rule).
_ENVIRONMENT = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,29}$"
# Key Vault object names: 1-127 letters, digits and dashes (learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates).
_VAULT_NAME = r"^[0-9A-Za-z-]{1,127}$"
# A Key Vault secret version id: 32 hex characters in Azure; any letters and digits accepted (the sandbox's own).
_VAULT_VERSION = r"^[0-9A-Za-z]{1,64}$"
_CUSTOM_API = r"^[A-Za-z_][A-Za-z0-9_]{0,79}/[A-Za-z_][A-Za-z0-9_]{0,79}/(v\d+\.\d+|beta)$"

ConnectionName = Annotated[str, StringConstraints(pattern=CONNECTION_NAME_PATTERN)]


class Credential(StrEnum):
    """Where a connection's app credential lives (the value is never in the registry)."""

    SETTINGS = (
        "settings"  # the deployment's own app registration: BC_CLIENT_SECRET or BC_CLIENT_CERTIFICATE_PATH
    )
    KEY_VAULT_SECRET = "key_vault_secret"  # a Key Vault secret named by `secretName`
    # No secret at all: a user-assigned managed identity's token for api://AzureADTokenExchange is the client
    # assertion (reference (d); learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity).
    FEDERATED = "federated"


IDENTITY_NAME_PATTERN = r"^[a-z0-9]{1,20}$"
PRIMARY_IDENTITY = "primary"
# Joins a connection's name and an identity's in storage names (shared.auth.compose.auth_name); a new connection
# name may not hold it (the connections API refuses one), so `{connection}--{identity}` names one thing only.
IDENTITY_SEPARATOR = "--"
# BC's limits are per identity; more identities only help while each has work, and an app registration holds at
# most 20 federated credentials (reference (d)): a pool of 10 is far beyond what one environment's jobs need.
MAX_IDENTITIES = 10


class Identity(BaseModel):
    """One app registration (or signed-in user) a connection acts as, with where its credential lives.

    BC's budget is per identity and environment (reference (c)): a connection's *pool* is its identities, the
    primary one (the connection's own clientId and credential) first. The name becomes part of storage keys
    (token set, lease, health record): lower-case letters and digits, 20 at most."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")

    name: Annotated[str, StringConstraints(pattern=IDENTITY_NAME_PATTERN)]
    client_id: Annotated[str, StringConstraints(pattern=_GUID)]
    credential: Credential = Credential.SETTINGS
    secret_name: Annotated[str, StringConstraints(pattern=_VAULT_NAME)] | None = None
    secret_version: Annotated[str, StringConstraints(pattern=_VAULT_VERSION)] | None = None
    # `federated`: the user-assigned managed identity (its client id) whose token is the client assertion.
    managed_identity_client_id: Annotated[str, StringConstraints(pattern=_GUID)] | None = None

    @model_validator(mode="after")
    def _credential_is_named(self) -> Self:
        _check_credential(
            self.credential, self.secret_name, self.secret_version, self.managed_identity_client_id
        )
        return self

    @property
    def primary(self) -> bool:
        return self.name == PRIMARY_IDENTITY


class Connection(BaseModel):
    """A named link to one BC environment of one Entra tenant (docs/architecture.md, glossary)."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")

    name: ConnectionName
    tenant_id: Annotated[str, StringConstraints(pattern=_TENANT)]
    environment: Annotated[str, StringConstraints(pattern=_ENVIRONMENT)]
    mode: AuthMode = AuthMode.CLIENT_CREDENTIALS
    client_id: Annotated[str, StringConstraints(pattern=_GUID)]
    company_id: UUID | None = None
    company_name: Annotated[str, StringConstraints(min_length=1, max_length=250)] | None = None
    credential: Credential = Credential.SETTINGS
    secret_name: Annotated[str, StringConstraints(pattern=_VAULT_NAME)] | None = None
    # The secret's version written through PUT /api/connections/{name} (not a secret): a new client secret changes
    # the definition, so every process rebuilds the connection's token manager and reads the new value.
    secret_version: Annotated[str, StringConstraints(pattern=_VAULT_VERSION)] | None = None
    # None: any custom API (the settings' connection, as before); a tuple: only these publisher/group/version.
    custom_apis: tuple[Annotated[str, StringConstraints(pattern=_CUSTOM_API)], ...] | None = None
    # `credential` federated: the user-assigned managed identity whose token is the primary identity's assertion.
    managed_identity_client_id: Annotated[str, StringConstraints(pattern=_GUID)] | None = None
    # The pool beyond the primary identity (issue 23): each its own token set, health and BC budget.
    identities: tuple[Identity, ...] = ()
    enabled: bool = True
    disabled_reason: Annotated[str, StringConstraints(max_length=500)] | None = None
    from_settings: bool = False  # defined by the app settings: read-only through the registry

    @field_validator("tenant_id")
    @classmethod
    def _one_tenant(cls, value: str) -> str:
        if value.lower() in _MULTI_TENANT_ALIASES:
            raise ValueError(
                "name the customer's tenant (its id or domain), not common/organizations/consumers"
            )
        return value

    @model_validator(mode="after")
    def _credential_is_named(self) -> Self:
        _check_credential(
            self.credential, self.secret_name, self.secret_version, self.managed_identity_client_id
        )
        return self

    @model_validator(mode="after")
    def _pool_is_distinct(self) -> Self:
        names = [identity.name for identity in self.pool]
        if len(set(names)) != len(names):
            raise ValueError(f"identity names must differ (`{PRIMARY_IDENTITY}` is the connection's own)")
        if self.mode is AuthMode.CLIENT_CREDENTIALS:
            apps = [identity.client_id.lower() for identity in self.pool]
            if len(set(apps)) != len(apps):
                raise ValueError(
                    "two identities with one clientId share one BC budget: give each its own app"
                )
        if len(self.pool) > MAX_IDENTITIES:
            raise ValueError(f"at most {MAX_IDENTITIES} identities per connection")
        return self

    @property
    def primary(self) -> Identity:
        """The connection's own identity: its clientId and credential."""
        return Identity.model_construct(
            name=PRIMARY_IDENTITY,
            client_id=self.client_id,
            credential=self.credential,
            secret_name=self.secret_name,
            secret_version=self.secret_version,
            managed_identity_client_id=self.managed_identity_client_id,
        )

    @property
    def pool(self) -> tuple[Identity, ...]:
        """Every identity the connection may act as, the primary one first."""
        return (self.primary, *self.identities)

    def identity_key(self, identity: Identity) -> str:
        """Whose BC budget this is: the app for client credentials, a signed-in user for delegated (BC counts
        limits per user or app: learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/
        operational-limits-online). The primary delegated user keeps the key it had before pools existed."""
        if self.mode is AuthMode.CLIENT_CREDENTIALS:
            return f"app-{identity.client_id.lower()}"
        suffix = "" if identity.primary else f"-{identity.name}"
        return f"connection-{self.name}{suffix}"

    @property
    def identity(self) -> str:
        """The primary identity's key (`identity_key`)."""
        return self.identity_key(self.primary)

    def budget_key_of(self, identity: Identity) -> str:
        """The shared throttle's key, (environment, identity): BC's limits are per identity per environment, all
        companies of an environment sharing one budget (reference (b), B1 "Throttle scope"). The tenant is part of
        the environment's name: two tenants' `production` are two environments."""
        return f"{self.tenant_id.lower()}-{self.environment}-{self.identity_key(identity)}"

    @property
    def budget_key(self) -> str:
        """The primary identity's budget key (`budget_key_of`)."""
        return self.budget_key_of(self.primary)

    def allows_api(self, api: str | None) -> bool:
        """Whether a job may call this API (None: the standard api/v2.0, always allowed)."""
        return api is None or self.custom_apis is None or api in self.custom_apis


def _check_credential(
    credential: Credential, secret_name: str | None, secret_version: str | None, managed: str | None
) -> None:
    """Each credential names what it needs and nothing else (the same rule for a connection and an identity)."""
    if credential is Credential.KEY_VAULT_SECRET and not secret_name:
        raise ValueError("`credential` key_vault_secret needs `secretName` (the Key Vault secret's name)")
    if credential is not Credential.KEY_VAULT_SECRET and (secret_name or secret_version):
        raise ValueError("`secretName` and `secretVersion` belong to `credential` key_vault_secret")
    if credential is Credential.FEDERATED and not managed:
        raise ValueError(
            "`credential` federated needs `managedIdentityClientId`: the user-assigned managed identity that the "
            "app registration trusts as a federated credential"
        )
    if credential is not Credential.FEDERATED and managed:
        raise ValueError("`managedIdentityClientId` belongs to `credential` federated")


def connection_from_settings(settings: Settings) -> Connection:
    """The connection the app settings define (BC_CONNECTION_NAME), the only one before the registry existed."""
    auth, bc = settings.auth, settings.bc
    return Connection(
        name=auth.connection_name,
        tenant_id=auth.tenant_id or "unset",
        environment=bc.environment,
        mode=auth.mode,
        client_id=auth.client_id or "00000000-0000-0000-0000-000000000000",
        company_id=UUID(bc.company_id) if bc.company_id else None,
        company_name=bc.company_name,
        # BC_CREDENTIAL=federated: the primary identity's assertion is that managed identity's token (no secret).
        credential=Credential.FEDERATED if settings.federated else Credential.SETTINGS,
        managed_identity_client_id=settings.federated_identity_client_id if settings.federated else None,
        from_settings=True,
    )
