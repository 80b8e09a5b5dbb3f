"""A connection's status as the status endpoint shows it: its health and token facts, never the token itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from shared.auth.models import NEEDS_ADMIN, ConnectionRecord, ConnectionStatus, Health, TokenSet
from shared.auth.next_steps import DEGRADED_NEXT_STEP, next_step
from shared.tokens import AuthMode


def build_status(
    connection: str,
    mode: AuthMode,
    newest: TokenSet | None,
    record: ConnectionRecord,
    now: datetime,
    problem: Exception | None = None,
    registered: str | None = None,
) -> ConnectionStatus:
    """The token set and record as one ConnectionStatus; a `problem` reading either: see _degraded_by."""
    health = record.health
    if newest is None and health not in NEEDS_ADMIN:
        health = Health.NOT_AUTHORIZED
    status = ConnectionStatus(
        connection=connection,
        mode=mode,
        health=health,
        has_token=newest is not None and newest.expires_on > now,
        expires_on=newest.expires_on if newest else None,
        account=newest.account if newest else None,
        tenant_id=newest.tenant_id if newest else None,
        generation=newest.generation if newest else None,
        last_refresh_at=record.last_refresh_at,
        last_error_code=record.last_error_code,
        last_error_message=record.last_error_message,
        last_error_at=record.last_error_at,
        backoff_until=record.backoff_until,
        next_step=next_step(health, mode, registered),
    )
    return status if problem is None else _degraded_by(status, problem, now)


def _degraded_by(status: ConnectionStatus, problem: Exception, now: datetime) -> ConnectionStatus:
    """`status` with a store that could not be read: degraded, unless an admin must act anyway."""
    if status.health in NEEDS_ADMIN:
        return status
    return replace(
        status,
        health=Health.DEGRADED,
        last_error_code=type(problem).__name__,
        last_error_message=str(problem),
        last_error_at=now,
        next_step=DEGRADED_NEXT_STEP,
    )
