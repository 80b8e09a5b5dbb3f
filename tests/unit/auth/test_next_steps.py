"""The admin's next step fits the auth mode: client credentials never send anyone to /api/auth/login (409 there)."""

from __future__ import annotations

import pytest

from shared.auth.identity import classify
from shared.auth.models import NEEDS_ADMIN, Health
from shared.auth.next_steps import next_step
from shared.tokens import AuthMode


@pytest.mark.parametrize("health", [*sorted(NEEDS_ADMIN), Health.NOT_AUTHORIZED, Health.DEGRADED])
def test_client_credentials_steps_never_point_at_the_sign_in(health: Health) -> None:
    """In client-credentials mode /api/auth/login answers 409, so no step names it."""
    step = next_step(health, AuthMode.CLIENT_CREDENTIALS)
    assert step is not None
    assert "/api/auth/login" not in step


def test_client_credentials_without_a_token_is_told_to_refresh_and_what_to_check() -> None:
    """No token yet (client credentials): POST /api/auth/refresh gets the first one; the settings to check."""
    step = next_step(Health.NOT_AUTHORIZED, AuthMode.CLIENT_CREDENTIALS)
    assert step is not None
    assert "POST /api/auth/refresh" in step
    assert "BC_CLIENT_ID" in step


@pytest.mark.parametrize("health", [Health.NOT_AUTHORIZED, Health.REAUTHORIZATION_REQUIRED])
def test_delegated_steps_send_the_admin_to_sign_in(health: Health) -> None:
    """Delegated: no token or a dead refresh token -> sign in at /api/auth/login."""
    assert "/api/auth/login" in (next_step(health, AuthMode.DELEGATED) or "")


def test_ok_needs_no_step() -> None:
    """A healthy connection has no next step."""
    assert next_step(Health.OK, AuthMode.DELEGATED) is None
    assert next_step(Health.OK, AuthMode.CLIENT_CREDENTIALS) is None


def test_an_app_only_grant_refusal_asks_for_consent_not_a_sign_in() -> None:
    """invalid_grant on a client-credentials request: consent and refresh, not /api/auth/login."""
    error = classify("invalid_grant", [65001], app_only=True)
    assert "/api/auth/login" not in str(error)
    assert "POST /api/auth/refresh" in str(error)


@pytest.mark.parametrize("mode", list(AuthMode))
@pytest.mark.parametrize("health", [*sorted(NEEDS_ADMIN), Health.NOT_AUTHORIZED])
def test_a_registered_connections_steps_name_its_own_routes_never_the_settings_ones(
    mode: AuthMode, health: Health
) -> None:
    """/api/auth/login and /api/auth/refresh serve the settings' connection: a registered one's steps name its
    own sign-in or its check (which names the fix and fetches a new token once it passes)."""
    step = next_step(health, mode, "acme")
    assert step is not None
    assert "/api/auth/" not in step
    assert "/api/connections/acme/" in step
    if mode is AuthMode.DELEGATED and health is not Health.CREDENTIALS_REJECTED:
        assert "/api/connections/acme/sign-in" in step
