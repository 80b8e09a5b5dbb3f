"""Acceptance of issue 23, point 4: a connection whose identity is federated runs S2S jobs end to end with no client
secret anywhere, neither in the app settings (infra's, with bcCredential=federated), nor in Key Vault, nor on the
sandbox's app registration (a secretless app that trusts the site's user-assigned identity).

The whole app under devhost as tests/integration/test_production_settings.py runs it (storage through Azurite with
OAuth, Key Vault through the managed identity), on a sandbox of its own: the shared one's app has a secret."""

from __future__ import annotations

import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.environment import process_environment
from localworld.azurite import Azurite, AzuriteEndpoints, AzuriteTls
from localworld.infra_settings import LocalResources, platform_environment, production_settings, undecided
from localworld.polling import wait_until
from localworld.ports import free_port, wait_for_port
from sandbox import Sandbox, SandboxConfig
from sandbox.config import FederatedCredentialConfig
from shared.auth.federated import TOKEN_EXCHANGE_AUDIENCE
from shared.auth.keyvault import SECRET_PREFIX

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def federated_sandbox() -> Iterator[Sandbox]:
    """The primary app registration holds no secret; its one federated credential names the site's identity."""
    config = SandboxConfig(
        seed=23, secretless_apps=(0,), federated_credentials=(FederatedCredentialConfig(app=0, identity=0),)
    )
    with Sandbox(config) as running:
        yield running


@pytest.fixture(scope="module")
def federated_azurite(federated_sandbox: Sandbox) -> Iterator[AzuriteEndpoints]:
    """Azurite over HTTPS with this sandbox's certificate, OAuth on (managed-identity tokens)."""
    tls = federated_sandbox.tls
    server = Azurite(oauth=AzuriteTls(tls.server_cert, tls.server_key))
    endpoints = server.start()
    try:
        yield endpoints
    finally:
        server.stop()


@pytest.fixture
def federated_app(
    federated_sandbox: Sandbox, federated_azurite: AzuriteEndpoints
) -> Iterator[tuple[str, str, dict[str, str]]]:
    """`python -m devhost` with infra's settings for bcCredential=federated; (base URL, function key, settings)."""
    port, key = free_port(), secrets.token_urlsafe(16)
    world = LocalResources(
        federated_sandbox.env,
        queue_service_uri=federated_azurite.queue_service_uri,
        table_service_uri=federated_azurite.table_service_uri,
        host_name=f"127.0.0.1:{port}",
        table_prefix="f" + uuid.uuid4().hex[:8],
        credential="federated",
    )
    settings = {**production_settings(world), "DEVHOST_FUNCTION_KEY": key}
    command = [
        sys.executable, "-m", "devhost", "--port", str(port), "--app", "function_app:app",
        "--settings", str(REPO_ROOT / "absent.local.settings.json"), "--host-json", str(REPO_ROOT / "host.json"),
    ]  # fmt: skip
    environment = {
        **undecided(process_environment()),
        **platform_environment(federated_sandbox.env),
        **settings,
    }
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield f"http://127.0.0.1:{port}", key, settings
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
        federated_sandbox.reset()  # records, vault and counters as the config made them, for the next test
        assert process.returncode == 0, stderr[-3000:]


def test_a_federated_connection_runs_s2s_jobs_with_no_client_secret_anywhere(
    federated_app: tuple[str, str, dict[str, str]], federated_sandbox: Sandbox
) -> None:
    """Jobs succeed against BC; the token came from a client assertion (the identity's exchange token, asked once
    and reused); settings, vault and app registration hold no secret."""
    sandbox = federated_sandbox
    base_url, key, settings = federated_app
    assert sandbox.directory.primary.client_secret is None  # the app registration: no secret
    assert "BC_CLIENT_SECRET" not in sandbox.env
    assert settings["BC_CREDENTIAL"] == "federated"
    assert settings["BC_CLIENT_SECRET"] == ""  # the settings: deployed empty, which the app reads as unset
    headers = {"x-functions-key": key}
    for n in range(3):
        job = {
            "jobId": f"fed-{n}",
            "operation": "create",
            "entitySet": "customers",
            "data": {"displayName": f"Federated {n}"},
        }
        accepted = httpx.post(f"{base_url}/api/jobs", json=job, headers=headers, timeout=30)
        assert accepted.status_code == 202, accepted.text

    def states() -> list[str | None]:
        answers = [httpx.get(f"{base_url}/api/jobs/fed-{n}", headers=headers, timeout=30) for n in range(3)]
        return [str(a.json()["state"]) if a.status_code == 200 else None for a in answers]

    wait_until(
        lambda: all(s in ("succeeded", "failed", "rejected") for s in states()),
        timeout=45,
        what="3 jobs to end",
    )
    assert states() == ["succeeded"] * 3
    names = [c["displayName"] for c in sandbox.bc.records("customers")]
    assert sorted(name for name in names if name.startswith("Federated")) == [
        f"Federated {n}" for n in range(3)
    ]
    # One exchange token (cached by the assertion) for every token request of the run.
    assert sandbox.identity.token_calls[TOKEN_EXCHANGE_AUDIENCE] == 1
    assert sandbox.entra.token_calls["client_credentials"] >= 1
    # Key Vault: only the token set, written and read as the managed identity (no client secret stored there).
    assert all(name.startswith(SECRET_PREFIX) for name in sandbox.vault.names())
    assert set(sandbox.vault.callers) == {sandbox.managed_identity_client_id}


def test_a_removed_federated_record_is_refused_naming_the_record_to_fix(
    federated_app: tuple[str, str, dict[str, str]], federated_sandbox: Sandbox
) -> None:
    """The app registration no longer trusts the identity: Entra's AADSTS70021 becomes credentials_rejected on the
    status, whose message and next step name the federated credential's fields and the az command."""
    sandbox = federated_sandbox
    base_url, key, _ = federated_app
    headers = {"x-functions-key": key}
    record = sandbox.entra.federated_credentials(sandbox.directory.primary.client_id)[0]
    sandbox.entra.remove_federated_credential(sandbox.directory.primary.client_id, record.name)
    answer = httpx.post(f"{base_url}/api/auth/refresh", headers=headers, timeout=30)
    status = httpx.get(f"{base_url}/api/auth/status", headers=headers, timeout=30).json()
    assert answer.status_code >= 400, answer.text
    assert status["health"] == "credentials_rejected"
    assert status["last_error_code"] == "invalid_request/AADSTS70021"
    for fix in ("subject", "api://AzureADTokenExchange", "az ad app federated-credential create"):
        assert fix in status["last_error_message"]
    assert "federated credential" in status["next_step"]
