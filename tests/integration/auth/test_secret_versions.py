"""Key Vault keeps at most two readable versions of a token set; store failures are logged once and degrade status."""

from __future__ import annotations

import logging
import ssl
from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError

from localworld.ports import free_port
from sandbox import Sandbox
from shared.auth import Health
from shared.auth.compose import AuthServices, build_auth_services
from shared.auth.keyvault import secret_name
from shared.settings import Settings, load_settings
from tests.integration.auth.conftest import Audit, sign_in_via_sandbox

pytestmark = pytest.mark.integration


def _enabled(sandbox: Sandbox, settings: Settings) -> list[bool]:
    return [v.enabled for v in sandbox.vault.secrets[secret_name(settings.auth.connection_name)].versions]


async def test_only_the_current_and_the_previous_version_stay_readable(
    services: AuthServices, sandbox: Sandbox, sandbox_tls: ssl.SSLContext, settings: Settings, audit: Audit
) -> None:
    """Sign-in + 4 refreshes = 5 versions; all but the newest two are disabled, so their tokens cannot be read."""
    await sign_in_via_sandbox(services.sign_in, sandbox_tls, audit)
    for _ in range(4):
        await services.manager.refresh_now(min_age=timedelta(0))

    assert _enabled(sandbox, settings) == [False, False, False, True, True]
    oldest = sandbox.vault.secrets[secret_name(settings.auth.connection_name)].versions[0].version
    client = services.tokens._client  # type: ignore[attr-defined]  # the store's own SecretClient
    with pytest.raises(HttpResponseError) as refused:
        await client.get_secret(secret_name(settings.auth.connection_name), oldest)
    assert refused.value.status_code == 403
    stored = await services.tokens.read(settings.auth.connection_name)
    assert stored is not None
    assert stored.generation == 5


async def test_versions_written_before_the_rule_are_swept_by_the_next_write(
    services: AuthServices, sandbox: Sandbox, sandbox_tls: ssl.SSLContext, settings: Settings, audit: Audit
) -> None:
    """A chain without `previous_version` tags (older app versions) is swept once; then one PATCH per write."""
    await sign_in_via_sandbox(services.sign_in, sandbox_tls, audit)
    name = secret_name(settings.auth.connection_name)
    stored = sandbox.vault.secrets[name]
    current = stored.versions[-1]
    for _ in range(3):  # what an older app version left: untagged copies, the newest last
        sandbox.vault.set_secret(name, current.value, "application/json", None, True)
    for version in stored.versions:
        version.tags = None
    reader = build_auth_services(settings)
    try:
        await reader.manager.token()  # reads the untagged newest version
        await reader.manager.refresh_now(min_age=timedelta(0))
    finally:
        await reader.aclose()

    assert _enabled(sandbox, settings) == [False, False, False, True, True]
    writes = sandbox.vault.writes
    await services.manager.refresh_now(min_age=timedelta(0))
    assert sandbox.vault.writes == writes + 2  # the new version, and one PATCH disabling the one before
    assert _enabled(sandbox, settings) == [False, False, False, False, True, True]


async def test_a_challenge_the_sdk_refuses_is_logged_once_and_status_degrades(
    auth_env: dict[str, str], audit: Audit
) -> None:
    """KEY_VAULT_VERIFY_CHALLENGE_RESOURCE=true against the sandbox: the SDK's ValueError no longer escapes
    status(); one ERROR names the cause and the setting, repeats are quiet."""
    settings = load_settings({**auth_env, "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "true"})
    services = build_auth_services(settings)
    try:
        first = await services.manager.status()
        second = await services.manager.status()
    finally:
        await services.aclose()

    assert first.health is Health.DEGRADED
    assert second.health is Health.DEGRADED
    assert first.last_error_code == "TokenStoreUnavailableError"
    logged = [r for r in audit.records if getattr(r, "event", "") == "auth.dependency_failed"]
    errors = [r for r in logged if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "ValueError" in errors[0].getMessage()
    assert "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE" in errors[0].getMessage()


async def test_an_unreachable_table_is_logged_once_with_its_setting_and_status_degrades(
    auth_env: dict[str, str], audit: Audit
) -> None:
    """JobsStorage pointing at nothing: status() is degraded (not an exception); one ERROR names JobsStorage."""
    port = free_port()
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    services = build_auth_services(load_settings({**auth_env, "JobsStorage": dead}))
    try:
        first = await services.manager.status()
        await services.manager.status()
    finally:
        await services.aclose()

    assert first.health is Health.DEGRADED
    errors = [
        r
        for r in audit.records
        if getattr(r, "event", "") == "auth.dependency_failed" and r.levelno == logging.ERROR
    ]
    assert len(errors) == 1
    assert "JobsStorage" in errors[0].getMessage()
    assert "ServiceRequestError" in errors[0].getMessage()
