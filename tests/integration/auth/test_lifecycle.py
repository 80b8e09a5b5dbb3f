"""Rotation, revocation and Key Vault outages with the real SDKs against the sandbox and Azurite."""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sandbox import Sandbox
from shared.auth import (
    Health,
    ReauthorizationRequiredError,
    ScheduledOutcome,
    StaleTokenSetError,
    TokenSet,
    TokenStoreUnavailableError,
)
from shared.auth.cache import TokenCache
from shared.auth.compose import AuthServices, build_auth_services
from shared.auth.keyvault import secret_name
from shared.clock import SystemClock
from shared.settings import Settings, load_settings
from testkit.clock import ShiftedClock
from tests.integration.auth.conftest import (
    Audit,
    RecordingTransport,
    fingerprint,
    sign_in_via_sandbox,
    stored_token_set,
)

pytestmark = pytest.mark.integration


async def test_after_several_refreshes_key_vault_holds_the_newest_refresh_token(
    services: AuthServices, sandbox: Sandbox, sandbox_tls: ssl.SSLContext, settings: Settings, audit: Audit
) -> None:
    """Three refreshes store generations 2..4, each with a new refresh token; the last version is the newest."""
    await sign_in_via_sandbox(services.sign_in, sandbox_tls, audit)
    for _ in range(3):
        await services.manager.refresh_now(min_age=timedelta(0))

    versions = [
        json.loads(v.value)
        for v in sandbox.vault.secrets[secret_name(settings.auth.connection_name)].versions
    ]
    assert [v["generation"] for v in versions] == [1, 2, 3, 4]
    assert len({fingerprint(v["refresh_token"]) for v in versions}) == 4
    assert fingerprint(stored_token_set(sandbox, settings)) == fingerprint(versions[-1])


async def test_stale_writer_cannot_overwrite_the_newest_token_set(
    services: AuthServices, sandbox: Sandbox, sandbox_tls: ssl.SSLContext, settings: Settings, audit: Audit
) -> None:
    """Writing an older generation through the Key Vault store is refused and the stored set is unchanged."""
    await sign_in_via_sandbox(services.sign_in, sandbox_tls, audit)
    older = await services.tokens.read(settings.auth.connection_name)
    await services.manager.refresh_now(min_age=timedelta(0))
    await services.manager.refresh_now(min_age=timedelta(0))
    newest = stored_token_set(sandbox, settings)
    assert older is not None

    with pytest.raises(StaleTokenSetError):
        await TokenCache(services.tokens, older.connection, SystemClock()).save(older)

    assert fingerprint(stored_token_set(sandbox, settings)) == fingerprint(newest)


async def test_process_with_a_stale_cache_refreshes_from_the_newest_stored_set(
    services: AuthServices,
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    clock: ShiftedClock,
    audit: Audit,
) -> None:
    """A second process that cached generation 1 writes generation 4 after another process stored 3."""
    await sign_in_via_sandbox(services.sign_in, sandbox_tls, audit)
    other = build_auth_services(settings, clock=clock, table_transport=RecordingTransport(audit.table_bodies))
    try:
        await other.manager.token()
        await services.manager.refresh_now(min_age=timedelta(0))
        await services.manager.refresh_now(min_age=timedelta(0))

        await other.manager.refresh_now(min_age=timedelta(0))
    finally:
        await other.aclose()

    stored = stored_token_set(sandbox, settings)
    assert stored is not None
    assert stored["generation"] == 4


class _Hook(BaseHTTPRequestHandler):
    bodies: list[bytes]

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # BaseHTTPRequestHandler's name
        del format, args


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback HTTP endpoint recording POST bodies."""
    bodies: list[bytes] = []
    handler = type("Hook", (_Hook,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    finally:
        server.shutdown()
        server.server_close()


async def test_revoked_refresh_token_requires_reauthorization_with_bounded_entra_calls(
    auth_env: dict[str, str],
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    clock: ShiftedClock,
    audit: Audit,
    webhook: tuple[str, list[bytes]],
) -> None:
    """After revocation: one token-endpoint call, state visible, one error log, one webhook, timer backs off."""
    url, bodies = webhook
    settings = load_settings({**auth_env, "BC_REAUTH_WEBHOOK_URL": url})
    processes = [
        build_auth_services(settings, clock=clock, table_transport=RecordingTransport(audit.table_bodies))
        for _ in range(2)
    ]
    try:
        await sign_in_via_sandbox(processes[0].sign_in, sandbox_tls, audit)
        sandbox.entra.revoke_refresh_tokens()
        clock.offset = timedelta(hours=2)  # the access token has expired
        calls = sandbox.entra.token_calls["refresh_token"]

        for services in processes:
            for _ in range(5):
                with pytest.raises(ReauthorizationRequiredError):
                    await services.manager.token()
        outcomes = [await processes[1].manager.refresh_if_due() for _ in range(3)]
        status = await processes[1].manager.status()
    finally:
        for services in processes:
            await services.aclose()

    assert sandbox.entra.token_calls["refresh_token"] == calls + 1
    assert outcomes == [ScheduledOutcome.BACKING_OFF] * 3
    assert status.health is Health.REAUTHORIZATION_REQUIRED
    assert status.last_error_code == "invalid_grant/AADSTS50173"
    errors = [r for r in audit.records if r.levelno >= logging.ERROR and r.name.startswith("shared.auth")]
    assert len(errors) == 1
    assert "/api/auth/login" in errors[0].getMessage()
    assert len(bodies) == 1
    alert = json.loads(bodies[0])
    assert alert["state"] == "reauthorization_required"
    assert alert["account"] == sandbox.env["SANDBOX_USER"]
    assert not any(secret in bodies[0].decode() for secret in audit.secrets())


async def test_key_vault_outage_during_token_life_keeps_callers_working_then_fails_clearly(
    services: AuthServices,
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    clock: ShiftedClock,
    audit: Audit,
) -> None:
    """Vault down after another process stored a newer set (the lease row says so): the cached token is served
    (even when a longer validity is asked); past expiry a clear error."""
    await sign_in_via_sandbox(services.sign_in, sandbox_tls, audit)
    manager = services.manager
    cached = await manager.token()
    other = build_auth_services(settings, clock=clock, table_transport=RecordingTransport(audit.table_bodies))
    try:
        await other.manager.refresh_now(min_age=timedelta(0))
    finally:
        await other.aclose()
    sandbox.vault.outage = True
    refreshes = sandbox.entra.token_calls["refresh_token"]

    for _ in range(5):
        assert fingerprint((await manager.token()).value) == fingerprint(cached.value)
    longer = await manager.token(min_validity=cached.remaining() + timedelta(seconds=30))
    assert fingerprint(longer.value) == fingerprint(cached.value)
    assert sandbox.entra.token_calls["refresh_token"] == refreshes

    clock.offset = cached.remaining() + timedelta(minutes=1)
    with pytest.raises(TokenStoreUnavailableError, match="no unexpired cached token"):
        await manager.token()


async def test_processes_read_key_vault_only_for_a_set_newer_than_their_cache(
    services: AuthServices,
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    clock: ShiftedClock,
    audit: Audit,
) -> None:
    """Azurite + sandbox: the refresher reads no secret, the other process reads it once to pick the new set
    up, and the lease row on Azurite names the stored generation."""
    await sign_in_via_sandbox(services.sign_in, sandbox_tls, audit)
    other = build_auth_services(settings, clock=clock, table_transport=RecordingTransport(audit.table_bodies))
    try:
        await services.manager.token()
        rejected = await other.manager.token()
        reads = sandbox.vault.reads
        refreshed = await services.manager.refresh_now(min_age=timedelta(0))
        assert sandbox.vault.reads == reads

        picked_up = await other.manager.replacement_for(rejected)  # BC refused its cached token
        assert sandbox.vault.reads == reads + 1
        assert fingerprint(picked_up.value) == fingerprint(refreshed.value)
        assert await other.manager.parts.leases.stored_generation(settings.auth.connection_name) == 2
    finally:
        await other.aclose()


async def test_token_set_in_key_vault_round_trips(
    services: AuthServices, sandbox_tls: ssl.SSLContext, settings: Settings, audit: Audit
) -> None:
    """What the manager stores reads back as an equal TokenSet through the real SDK."""
    await sign_in_via_sandbox(services.sign_in, sandbox_tls, audit)
    stored = await services.tokens.read(settings.auth.connection_name)
    assert isinstance(stored, TokenSet)
    assert stored.generation == 1
    assert stored.account is not None
