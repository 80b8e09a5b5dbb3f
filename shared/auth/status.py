"""A connection's health as the status endpoint shows it: never the token itself."""

from __future__ import annotations

from datetime import datetime

from shared.auth.models import NEEDS_ADMIN, ConnectionState, ConnectionStatus, Health, TokenSet
from shared.auth.states import next_step
from shared.settings import AuthMode


def build_status(
    connection: str, mode: AuthMode, newest: TokenSet | None, state: ConnectionState, now: datetime
) -> ConnectionStatus:
    """Combine the newest known token set and the shared state row into one ConnectionStatus."""
    health = state.health
    if newest is None and health not in NEEDS_ADMIN:
        health = Health.NOT_AUTHORIZED
    return ConnectionStatus(
        connection=connection,
        mode=mode,
        state=health,
        has_token=newest is not None and newest.expires_on > now,
        expires_on=newest.expires_on if newest else None,
        account=newest.account if newest else None,
        tenant_id=newest.tenant_id if newest else None,
        generation=newest.generation if newest else None,
        last_refresh_at=state.last_refresh_at,
        last_error_code=state.last_error_code,
        last_error_message=state.last_error_message,
        last_error_at=state.last_error_at,
        backoff_until=state.backoff_until,
        next_step=next_step(health, mode),
    )
