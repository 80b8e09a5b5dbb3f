"""The timer function on the sandbox, client credentials mode, and a whole-lifecycle leak check."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables.aio import TableClient
from azure.functions.timer import TimerRequest

from sandbox import Sandbox
from shared.auth import (
    Health,
    ReauthorizationRequiredError,
    SignInStateUnknownError,
    TokenStoreUnavailableError,
    close_auth_services,
)
from shared.auth.compose import AuthServices, auth_services
from shared.settings import Settings
from shared.triggers import token_refresh
from testkit.clock import ShiftedClock
from tests.integration.auth.conftest import (
    Audit,
    fingerprint,
    sign_in_via_sandbox,
    stored_token_set,
)

pytestmark = pytest.mark.integration


def timer() -> TimerRequest:
    now = datetime.now(UTC).isoformat()
    return TimerRequest(
        past_due=False, schedule_status={"Last": now, "Next": now, "LastUpdated": now}, schedule={}
    )


@pytest.fixture
async def app_services(
    app_env: dict[str, str], audit: Audit, auth_table: TableClient
) -> AsyncIterator[AuthServices]:
    """The services the Function app itself builds (same loop as the test), closed afterwards."""
    del app_env
    try:
        yield await auth_services()
    finally:
        await audit.add_rows(auth_table)
        await close_auth_services()


async def test_timer_refreshes_a_due_token_once_and_skips_one_not_yet_due(
    app_services: AuthServices,
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    audit: Audit,
) -> None:
    """Right after sign-in the timer does nothing; a token with 2 of 60 minutes left is refreshed once."""
    await sign_in_via_sandbox(app_services.sign_in, sandbox_tls, audit)
    calls = sandbox.entra.token_calls["refresh_token"]

    await token_refresh.token_refresh(timer())

    assert sandbox.entra.token_calls["refresh_token"] == calls
    stored_set = await app_services.tokens.read(settings.auth.connection_name)
    assert stored_set is not None
    now = datetime.now(UTC)  # as if obtained 58 minutes ago: due for the hourly timer
    # Every writer of the store claims its generation on the lease row first (shared.auth.cache), or no
    # process reads the vault for it.
    await app_services.manager.parts.leases.claim(settings.auth.connection_name, 2)
    await app_services.tokens.write(
        dataclasses.replace(
            stored_set,
            generation=2,
            obtained_at=now - timedelta(minutes=58),
            expires_on=now + timedelta(minutes=2),
        )
    )
    await token_refresh.token_refresh(timer())
    assert sandbox.entra.token_calls["refresh_token"] == calls + 1
    stored = stored_token_set(sandbox, settings)
    assert stored is not None
    assert stored["generation"] == 3


async def test_client_credentials_token_is_acquired_stored_and_served(
    auth_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    sandbox: Sandbox,
    audit: Audit,
    auth_table: TableClient,
) -> None:
    """BC_AUTH_MODE=client_credentials: the timer acquires an app token into Key Vault; token() serves it."""
    from shared.settings import get_settings, load_settings

    env = {**auth_env, "BC_AUTH_MODE": "client_credentials"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        await token_refresh.token_refresh(timer())
        services = await auth_services()
        token = await services.manager.token()
        status = await services.manager.status()
    finally:
        await audit.add_rows(auth_table)
        await close_auth_services()
        get_settings.cache_clear()

    stored = stored_token_set(sandbox, load_settings(env))
    assert stored is not None
    assert fingerprint(stored["access_token"]) == fingerprint(token.value)
    has_refresh_token = stored["refresh_token"] is not None  # a bool: a failure never prints the token
    assert not has_refresh_token
    assert sandbox.entra.token_calls["client_credentials"] >= 1
    assert status.health is Health.OK


async def test_no_token_code_or_secret_reaches_logs_or_table_rows_across_the_lifecycle(
    services: AuthServices,
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    clock: ShiftedClock,
    auth_table: TableClient,
    audit: Audit,
) -> None:
    """Sign-in, refreshes, a transient failure, a forged state, an outage and a revocation leave no secret behind."""
    manager = services.manager
    await sign_in_via_sandbox(services.sign_in, sandbox_tls, audit)
    await manager.refresh_now()
    sandbox.entra.fail_next_token_calls(1, status=503, retry_after=0)
    cached = await manager.token()
    clock.offset = cached.remaining() - timedelta(minutes=3)  # due for refresh; the refresh fails (503)
    served = await manager.token()  # the still-valid token keeps being served
    assert fingerprint(served.value) == fingerprint(cached.value)
    clock.offset = timedelta(0)
    with pytest.raises(SignInStateUnknownError):
        await services.sign_in.finish({"code": "not-a-real-code", "state": "forged"})
    sandbox.vault.outage = True
    await manager.token()
    sandbox.vault.outage = False
    sandbox.entra.revoke_refresh_tokens()
    clock.offset = (await manager.token()).remaining()
    with pytest.raises((ReauthorizationRequiredError, TokenStoreUnavailableError)):
        await manager.token()
    await audit.add_rows(auth_table)

    assert (await manager.status()).health is Health.REAUTHORIZATION_REQUIRED
    assert len([r for r in audit.records if r.name.startswith("shared.auth")]) >= 5
    assert any('"health"' in body for body in audit.table_bodies)
    assert len(audit.secrets()) >= 6
    assert audit.leaks() == []
