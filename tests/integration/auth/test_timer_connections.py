"""The hourly timer over several connections on the sandbox: one refused connection does not stop the others."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from azure.data.tables.aio import TableClient

from sandbox import Sandbox
from sandbox.entra.federation import FederatedCredential, entra_issuer
from shared.auth import Health, close_auth_services
from shared.auth.compose import auth_services
from shared.auth.federated import TOKEN_EXCHANGE_AUDIENCE
from shared.auth.keyvault import secret_name
from shared.connections import Connection, Credential
from shared.connections.compose import close_registry_services, registry_services
from shared.connections.connection import Identity
from shared.triggers import token_refresh
from tests.integration.auth.conftest import Audit
from tests.integration.auth.test_timer_and_secrets import timer

pytestmark = pytest.mark.integration


@pytest.fixture
async def client_credentials_app(
    auth_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, audit: Audit, auth_table: TableClient
) -> AsyncIterator[dict[str, str]]:
    """The Function app's settings in client-credentials mode; its services closed afterwards."""
    from shared.settings import get_settings

    env = {**auth_env, "BC_AUTH_MODE": "client_credentials"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        yield env
    finally:
        await audit.add_rows(auth_table)
        await close_registry_services()
        await close_auth_services()
        get_settings.cache_clear()


def registered(name: str, env: dict[str, str], secret: str) -> Connection:
    return Connection(
        name=name,
        tenant_id=env["BC_TENANT_ID"],
        environment=env.get("BC_ENVIRONMENT", "production"),
        client_id=env["BC_CLIENT_ID"],
        credential=Credential.KEY_VAULT_SECRET,
        secret_name=secret,
    )


async def test_refused_credentials_of_one_connection_leave_the_others_refreshed(
    client_credentials_app: dict[str, str],
    sandbox: Sandbox,
    audit: Audit,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`bad`'s Key Vault secret holds a wrong value: only `bad` ends credentials_rejected, logged with its name;
    the settings' connection and `good` get their tokens, and the timer does not raise (nothing transient)."""
    env = client_credentials_app
    wrong = "wrong-" + env["BC_CLIENT_SECRET"][::-1]
    audit.extra_secrets.add(wrong)
    sandbox.vault.set_secret("secret-good", env["BC_CLIENT_SECRET"], None, None, True)
    sandbox.vault.set_secret("secret-bad", wrong, None, None, True)
    registry = (await registry_services()).registry
    await registry.put(registered("good", env, "secret-good"))
    await registry.put(registered("bad", env, "secret-bad"))

    with caplog.at_level(logging.INFO):
        await token_refresh.token_refresh(timer())

    services = await auth_services()
    assert sandbox.vault.peek(secret_name(env["BC_CONNECTION_NAME"])) is not None
    assert sandbox.vault.peek(secret_name("good")) is not None
    assert sandbox.vault.peek(secret_name("bad")) is None
    good = await services.for_connection(registered("good", env, "secret-good")).manager.status()
    bad = await services.for_connection(registered("bad", env, "secret-bad")).manager.status()
    assert good.health is Health.OK
    assert bad.health is Health.CREDENTIALS_REJECTED
    assert bad.next_step
    blocked = [r for r in caplog.records if getattr(r, "event", None) == "auth.timer_blocked"]
    assert [getattr(r, "connection", None) for r in blocked] == ["bad"]
    summary = next(r for r in caplog.records if getattr(r, "event", None) == "auth.timer_summary")
    assert getattr(summary, "outcome_refreshed", None) == 2
    assert getattr(summary, "outcome_admin_needed", None) == 1


async def test_the_timer_refreshes_every_identity_of_a_pool_a_federated_one_included(
    client_credentials_app: dict[str, str],
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`pooled`'s primary identity is federated (the site's managed identity, which the app registration trusts):
    it gets its token set with no secret. Its second identity names an app Entra does not know: only that identity
    ends admin_needed, logged with its name, stored apart (`pooled--other`)."""
    env = client_credentials_app
    for name, value in sandbox.managed_identity_env.items():
        monkeypatch.setenv(name, value)
    record = FederatedCredential(
        "site", entra_issuer(env["BC_TENANT_ID"]), sandbox.directory.identities[0].principal_id
    )
    sandbox.entra.add_federated_credential(env["BC_CLIENT_ID"], record)
    sandbox.vault.set_secret("secret-other", "not-a-secret-of-any-app", None, None, True)
    pooled = Connection(
        name="pooled",
        tenant_id=env["BC_TENANT_ID"],
        environment=env.get("BC_ENVIRONMENT", "production"),
        client_id=env["BC_CLIENT_ID"],
        credential=Credential.FEDERATED,
        managed_identity_client_id=sandbox.managed_identity_client_id,
        identities=(
            Identity(
                name="other",
                client_id="12345678-1234-1234-1234-123456789012",
                credential=Credential.KEY_VAULT_SECRET,
                secret_name="secret-other",
            ),
        ),
    )
    await (await registry_services()).registry.put(pooled)

    with caplog.at_level(logging.INFO):
        await token_refresh.token_refresh(timer())

    assert sandbox.vault.peek(secret_name("pooled")) is not None
    assert sandbox.vault.peek(secret_name("pooled--other")) is None
    assert sandbox.identity.token_calls[TOKEN_EXCHANGE_AUDIENCE] == 1
    services = await auth_services()
    other = await services.for_identity(pooled, pooled.identities[0]).manager.status()
    assert other.health is Health.CREDENTIALS_REJECTED
    blocked = [r for r in caplog.records if getattr(r, "event", None) == "auth.timer_blocked"]
    assert [(getattr(r, "connection", None), getattr(r, "identity", None)) for r in blocked] == [
        ("pooled", "other")
    ]
