"""Who exists in the sandbox tenant: the app registrations and the test user."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sandbox.config import SandboxConfig
from sandbox.ids import guid, secret


@dataclass(frozen=True, slots=True)
class AppRegistration:
    """A confidential client: its id, secret, the service principal's object id and an optional certificate key."""

    client_id: str
    client_secret: str
    service_principal_oid: str
    certificate_public_key_pem: bytes | None = None

    def __repr__(self) -> str:
        return f"AppRegistration(client_id={self.client_id!r}, client_secret='***')"


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
class Directory:
    """The tenant: id, apps (the first is primary), the user and the managed identities (user-assigned first)."""

    tenant_id: str
    apps: tuple[AppRegistration, ...]
    user: User
    identities: tuple[ManagedIdentity, ...] = ()

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
    apps = [
        AppRegistration(guid(rng), secret(rng), guid(rng), certificate_public_key_pem if index == 0 else None)
        for index in range(1 + config.extra_clients)
    ]
    user = User(guid(rng), config.user_principal_name, config.user_display_name)
    # Drawn after everything else, so the ids above stay what they were before identities existed.
    user_assigned = ManagedIdentity(guid(rng), guid(rng))
    system_assigned = ManagedIdentity(guid(rng), guid(rng))
    identities = (user_assigned, system_assigned) if config.system_assigned_identity else (user_assigned,)
    return Directory(tenant_id, tuple(apps), user, identities)
