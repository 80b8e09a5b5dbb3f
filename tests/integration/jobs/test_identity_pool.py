"""A connection with two identities on the sandbox (two app registrations, one BC environment), through the real
job pipeline on Azurite: once BC refuses the identity in use (its Microsoft Entra Application card removed
mid-run), its jobs move to the other and nothing fails."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from azure.storage.queue import QueueClient

from bcjobs import JOBS_QUEUE, JobState
from localworld.polling import wait_until
from sandbox import Sandbox, SandboxConfig
from shared.auth import Health, auth_services, close_auth_services
from shared.connections import Connection, Credential, Identity
from shared.connections.compose import close_registry_services, registry_services
from shared.errors import IntegrationError
from shared.jobs import Delivery, Handled, close_job_services, job_services
from shared.settings import load_settings
from tests.integration.jobs.conftest import FAST_POLICY

pytestmark = pytest.mark.integration

POOLED = "pooled"


@pytest.fixture
async def pooled_env(azurite_connection_string: str) -> AsyncIterator[tuple[Sandbox, dict[str, str]]]:
    """A sandbox of its own with one extra app registration, and client-credentials settings on Azurite."""
    with Sandbox(SandboxConfig(seed=23, extra_clients=1)) as own:
        suffix = uuid.uuid4().hex[:10]
        env = {
            **own.env,
            **FAST_POLICY,
            "JobsStorage": azurite_connection_string,
            "BC_TABLE_PREFIX": f"p{suffix}",
            "BC_CONNECTION_NAME": f"c{suffix}",
            "BC_AUTH_MODE": "client_credentials",
        }
        try:
            yield own, env
        finally:
            await close_job_services()
            await close_registry_services()
            await close_auth_services()


def pooled_connection(own: Sandbox, env: dict[str, str]) -> Connection:
    """The primary app and the extra one, each with its secret in the sandbox's Key Vault."""
    (extra_id, extra_secret) = own.extra_clients()[0]
    own.vault.set_secret("pooled-primary", env["BC_CLIENT_SECRET"], None, None, True)
    own.vault.set_secret("pooled-second", extra_secret, None, None, True)
    return Connection(
        name=POOLED,
        tenant_id=env["BC_TENANT_ID"],
        environment=env["BC_ENVIRONMENT"],
        client_id=env["BC_CLIENT_ID"],
        company_id=uuid.UUID(env["BC_COMPANY_ID"]),
        credential=Credential.KEY_VAULT_SECRET,
        secret_name="pooled-primary",
        identities=(
            Identity(
                name="second",
                client_id=extra_id,
                credential=Credential.KEY_VAULT_SECRET,
                secret_name="pooled-second",
            ),
        ),
    )


def job_text(job_id: str) -> str:
    body = {"jobId": job_id, "operation": "list", "entitySet": "customers", "connection": POOLED}
    return base64.b64encode(json.dumps(body).encode("utf-8")).decode("ascii")


def ok_by_app(own: Sandbox) -> dict[str, int]:
    """BC's 2xx answers per app registration (the sandbox counts by the token's object id)."""
    requests = own.bc.stats().requests
    names = {app.service_principal_oid: f"app{n}" for n, app in enumerate(own.directory.apps)}
    return {
        names[oid]: sum(n for status, n in by_status.items() if 200 <= status < 300)
        for oid, by_status in requests.items()
        if oid in names
    }


async def test_a_refused_identitys_jobs_go_to_the_other_and_nothing_fails(
    pooled_env: tuple[Sandbox, dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    own, env = pooled_env
    settings = load_settings(env)
    await (await registry_services(settings)).registry.put(pooled_connection(own, env))
    processor = (await job_services(settings)).processor

    before = [await processor.handle(Delivery(f"m{n}", job_text(f"before-{n}"))) for n in range(4)]
    assert before == [Handled.SUCCEEDED] * 4
    # Light load stays on the identity in use here (the other, not joined yet, shows its throttle's fallback share)
    assert set(ok_by_app(own)) == {"app0"}

    own.bc.unregister_application(env["BC_TENANT_ID"], env["BC_ENVIRONMENT"], env["BC_CLIENT_ID"])
    served_by_primary = ok_by_app(own)["app0"]
    after = [await processor.handle(Delivery(f"n{n}", job_text(f"after-{n}"))) for n in range(4)]
    moved = after.count(Handled.RETRY_SCHEDULED)
    assert (
        moved == 1
    )  # the job that chose the primary when BC refused it; the primary is out, the rest went on
    assert after.count(Handled.SUCCEEDED) == 3
    lanes = (await job_services(settings)).lanes
    assert lanes is not None
    assert (await lanes.pool(POOLED)).is_out("primary")
    [left] = [
        r for r in caplog.records if getattr(r, "event", None) == "jobs.identity_left"
    ]  # bc-identity-out
    assert (left.levelname, getattr(left, "connection", None), getattr(left, "identity", None)) == (
        "ERROR",
        POOLED,
        "primary",
    )

    copies = _visible_copies(env["JobsStorage"], moved)
    assert [await processor.handle(Delivery(m, text, count)) for m, text, count in copies] == [
        Handled.SUCCEEDED
    ]
    assert ok_by_app(own)["app0"] == served_by_primary  # nothing more was served on the refused identity
    assert ok_by_app(own)["app1"] > 0  # the other identity carried on
    rows = {f"after-{n}": await processor.store.get(f"after-{n}") for n in range(4)}
    assert {job_id: row.state if row else None for job_id, row in rows.items()} == dict.fromkeys(
        rows, JobState.SUCCEEDED
    )
    assert {row.identity for row in rows.values() if row} == {"second"}  # the row says which identity ran it


def _visible_copies(storage: str, count: int) -> list[tuple[str, str, int]]:
    """The requeued copies once their delay passed: (message id, text, dequeue count)."""
    found: list[tuple[str, str, int]] = []

    def receive() -> bool:
        with QueueClient.from_connection_string(storage, JOBS_QUEUE) as queue:
            for message in queue.receive_messages(messages_per_page=32, visibility_timeout=60):
                if b'"after-' not in base64.b64decode(str(message.content)):
                    continue  # not this test's
                found.append((str(message.id), str(message.content), int(message.dequeue_count or 1)))
                queue.delete_message(message)
        return len(found) >= count

    wait_until(receive, timeout=30, what="the moved job's copy to become visible")
    return found


async def test_an_identity_whose_consent_is_revoked_leaves_the_pool_within_its_health_reading(
    pooled_env: tuple[Sandbox, dict[str, str]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Entra refuses the primary app (consent revoked; the admin's refresh records credentials_rejected): within
    the pool's health reading its new jobs go to the second identity, and none fails meanwhile (the primary's
    cached token still serves)."""
    monkeypatch.setattr("shared.jobs.pool.HEALTH_TTL_SECONDS", 0.0)  # read at every choice: no 30 s wait here
    own, env = pooled_env
    settings = load_settings(env)
    connection = pooled_connection(own, env)
    await (await registry_services(settings)).registry.put(connection)
    processor = (await job_services(settings)).processor
    assert await processor.handle(Delivery("m0", job_text("first"))) is Handled.SUCCEEDED
    first = await processor.store.get("first")
    assert first is not None
    assert first.identity == "primary"

    own.entra.revoke_consent(env["BC_TENANT_ID"], env["BC_CLIENT_ID"])
    manager = (await auth_services(settings)).for_identity(connection, connection.primary).manager
    with contextlib.suppress(IntegrationError):
        await manager.refresh_now(min_age=timedelta(0))  # what POST /api/auth/refresh does
    assert (await manager.status()).health is Health.CREDENTIALS_REJECTED

    later = [await processor.handle(Delivery(f"n{n}", job_text(f"later-{n}"))) for n in range(3)]
    assert later == [Handled.SUCCEEDED] * 3
    rows = [await processor.store.get(f"later-{n}") for n in range(3)]
    assert [row.identity if row else None for row in rows] == ["second"] * 3
    [left] = [r for r in caplog.records if getattr(r, "event", None) == "jobs.identity_left"]
    assert "credentials_rejected" in left.getMessage()
