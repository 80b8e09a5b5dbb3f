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
class Directory:
    """The tenant: id, apps (the first is primary) and the user."""

    tenant_id: str
    apps: tuple[AppRegistration, ...]
    user: User

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
    return Directory(tenant_id, tuple(apps), user)
