"""Who exists in the sandbox tenants: the app registrations (multi-tenant, home = the primary tenant), each
tenant's admin user, and the site's managed identities."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from sandbox.config import SandboxConfig
from sandbox.ids import guid, secret


@dataclass(frozen=True, slots=True)
class AppRegistration:
    """A confidential client: its id, secret (None: the app holds none and authenticates only with a client
    assertion, e.g. a federated credential), the service principal's object id and an optional certificate key."""

    client_id: str
    client_secret: str | None
    service_principal_oid: str
    certificate_public_key_pem: bytes | None = None

    def __repr__(self) -> str:
        shown = "None" if self.client_secret is None else "'***'"
        return f"AppRegistration(client_id={self.client_id!r}, client_secret={shown})"


@dataclass(frozen=True, slots=True)
class User:
    """The test user that /authorize signs in."""

    oid: str
    upn: str
    name: str


@dataclass(frozen=True, slots=True)
class ManagedIdentity:
    """A managed identity's service principal: the client id apps name it by, and its object (principal) id."""

    client_id: str
    principal_id: str


@dataclass(frozen=True, slots=True)
class Tenant:
    """An Entra tenant and the admin user /authorize and /adminconsent sign in there."""

    tenant_id: str
    user: User


@dataclass(frozen=True, slots=True)
class Directory:
    """The primary tenant: id, apps (the first is primary), the user and the managed identities (user-assigned
    first); `customers` are the extra tenants where the multi-tenant apps may be consented."""

    tenant_id: str
    apps: tuple[AppRegistration, ...]
    user: User
    identities: tuple[ManagedIdentity, ...] = ()
    customers: tuple[Tenant, ...] = ()

    @property
    def tenants(self) -> tuple[Tenant, ...]:
        """Every tenant, the primary one first."""
        return (Tenant(self.tenant_id, self.user), *self.customers)

    def tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant with that id (case-insensitive), if it exists."""
        return next((t for t in self.tenants if t.tenant_id.lower() == tenant_id.lower()), None)

    def user_tenant(self, user_oid: str) -> Tenant | None:
        """The tenant whose admin user has that object id."""
        return next((t for t in self.tenants if t.user.oid == user_oid), None)

    def service_principal_oid(self, tenant_id: str, app: AppRegistration) -> str:
        """The object id of the app's service principal in a tenant: each tenant has its own
        (learn.microsoft.com/entra/identity-platform/app-objects-and-service-principals). Derived, not drawn, so
        no seeded id moves."""
        if tenant_id.lower() == self.tenant_id.lower():
            return app.service_principal_oid
        return str(uuid.uuid5(uuid.UUID(tenant_id), app.client_id))

    @property
    def primary(self) -> AppRegistration:
        """The app registration written to the env file."""
        return self.apps[0]

    def app(self, client_id: str) -> AppRegistration | None:
        """The app with that client id, if registered."""
        return next((app for app in self.apps if app.client_id == client_id), None)


def build_directory(
    config: SandboxConfig, rng: random.Random, certificate_public_key_pem: bytes
) -> Directory:
    """A tenant whose ids derive from the seed, so env files are stable across runs with the same seed."""
    tenant_id = guid(rng)
    apps = []
    for index in range(1 + config.extra_clients):
        # The secret is drawn even for a secretless app, so no seeded id moves when an app drops its secret.
        client_id, drawn, sp_oid = guid(rng), secret(rng), guid(rng)
        kept = None if index in config.secretless_apps else drawn
        apps.append(
            AppRegistration(client_id, kept, sp_oid, certificate_public_key_pem if index == 0 else None)
        )
    user = User(guid(rng), config.user_principal_name, config.user_display_name)
    # Drawn after everything else, so the ids above stay what they were before identities existed.
    user_assigned = ManagedIdentity(guid(rng), guid(rng))
    system_assigned = ManagedIdentity(guid(rng), guid(rng))
    identities = (user_assigned, system_assigned) if config.system_assigned_identity else (user_assigned,)
    # Customer tenants: drawn after everything above, so the primary tenant's ids stay what they were.
    customers = tuple(
        Tenant(
            guid(rng),
            User(guid(rng), f"admin@customer{n}.onmicrosoft.com", f"Customer {n} Admin"),
        )
        for n in range(1, config.extra_tenants + 1)
    )
    return Directory(tenant_id, tuple(apps), user, identities, customers)
