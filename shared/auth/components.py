"""The collaborators one connection's token lifecycle is wired from (built by shared.auth.compose)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.auth.identity import IdentityProvider
from shared.auth.leases import LeaseKeeper
from shared.auth.logins import LoginBook
from shared.auth.states import StateBook
from shared.auth.stores import TokenStore
from shared.clock import Clock
from shared.settings import AuthMode


@dataclass(frozen=True, slots=True)
class Components:
    """Identity provider, stores, clock and this process's lease-holder name for one connection."""

    connection: str
    mode: AuthMode
    identity: IdentityProvider
    tokens: TokenStore
    leases: LeaseKeeper
    logins: LoginBook
    states: StateBook
    clock: Clock
    holder: str

    def log_fields(self, event: str, **fields: str) -> dict[str, str]:
        """Structured log fields naming the connection and the event."""
        return {"connection": self.connection, "event": event, **fields}
