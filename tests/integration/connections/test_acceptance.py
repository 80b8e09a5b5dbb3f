"""Issue 21's acceptance, end to end: three connections (two tenants, one of them with two environments) in one
local world run jobs concurrently, each job's effect lands in its own BC environment (read from the sandbox's BC
directly), and revoking one connection's consent parks only its jobs, which complete once the admin fixes it.

The world is tests/integration/jobs's: function_app.py under devhost, Azurite, the sandbox. The settings' connection
is the primary tenant's `production`; the registry adds `primary-sandbox` (same tenant and app, environment
`sandbox`) and `customer` (the customer tenant's `production`, the same multi-tenant app after the tenant's admin
consented: reference bc-webhooks-connections-identities.md (b), B2).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from localworld.polling import wait_until
from sandbox import Sandbox
from shared.auth.compose import build_auth_services
from shared.connections.connection import Connection
from shared.settings import load_settings
from tests.integration.jobs.conftest import JobsWorld, leaked

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Place:
    """Where one connection's jobs must land: its tenant and BC environment."""

    connection: str | None  # None: the settings' connection (the job names none)
    tenant: str
    environment: str

    @property
    def label(self) -> str:
        return self.connection or "settings"


@pytest.fixture
def places(pipeline: JobsWorld, sandbox: Sandbox, jobs_env: dict[str, str]) -> list[Place]:
    """The three connections: the settings' one, and two the admin registers through the connections API."""
    environments = json.loads(sandbox.env["SANDBOX_BC_ENVIRONMENTS"])
    primary, customer = sandbox.tenant_ids[0], sandbox.tenant_ids[1]
    registered = [
        _connection("primary-sandbox", primary, "sandbox", environments, jobs_env),
        _connection("customer", customer, "production", environments, jobs_env),
    ]
    for connection in registered:
        body = connection.model_dump(mode="json", by_alias=True, exclude={"name", "from_settings"})
        answer = httpx.put(
            f"{pipeline.base_url}/api/connections/{connection.name}",
            json={key: value for key, value in body.items() if value is not None},
            headers={"x-functions-key": pipeline.function_key},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
    # The customer tenant's admin consents to the app (the sandbox's consent knob; the admin-consent flow grants
    # the same consent: learn.microsoft.com/entra/identity-platform/v2-admin-consent).
    sandbox.entra.grant_consent(customer, jobs_env["BC_CLIENT_ID"])
    return [
        Place(None, primary, "production"),
        Place("primary-sandbox", primary, "sandbox"),
        Place("customer", customer, "production"),
    ]


def _connection(
    name: str, tenant: str, environment: str, environments: list[dict[str, str]], env: dict[str, str]
) -> Connection:
    (company,) = [e for e in environments if (e["tenant"], e["environment"]) == (tenant, environment)]
    return Connection(
        name=name,
        tenant_id=tenant,
        environment=environment,
        client_id=env["BC_CLIENT_ID"],
        company_id=company["companyId"],
        company_name=company["companyName"],
    )


async def _refresh_now(env: dict[str, str], connection: Connection) -> None:
    """What the admin's fix ends with: one forced refresh of the connection's token (it probes past the backoff
    that refused credentials set, so the parked jobs' next re-check finds the new token set)."""
    services = build_auth_services(load_settings(env))
    try:
        # min_age 0: the customer's set was refreshed seconds ago (its warm-up), which a plain refresh_now returns.
        await services.for_connection(connection).manager.refresh_now(min_age=timedelta(0))
    finally:
        await services.aclose()


def create(job_id: str, place: Place) -> dict[str, Any]:
    job: dict[str, Any] = {
        "jobId": job_id,
        "operation": "create",
        "entitySet": "customers",
        "data": {"displayName": f"Acceptance {job_id}"},
    }
    if place.connection is not None:
        job["connection"] = place.connection
    return job


def names_in(sandbox: Sandbox, place: Place) -> set[str]:
    """The acceptance customers BC holds in the place's environment (read from BC's store, not through the app)."""
    records = sandbox.bc.environment(place.tenant, place.environment).records("customers")
    return {str(r["displayName"]) for r in records if str(r.get("displayName", "")).startswith("Acceptance ")}


def state(world: JobsWorld, job_id: str) -> str | None:
    report = world.report(job_id)
    return None if report is None else report.state


def waiting_jobs(world: JobsWorld, connection: str) -> set[str]:
    """The connection's jobs waiting for an admin, as GET /api/jobs?connection= lists them."""
    answer = httpx.get(
        f"{world.base_url}/api/jobs",
        params={"connection": connection, "state": "waiting_for_authorization", "pageSize": "100"},
        headers={"x-functions-key": world.function_key},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {str(job["jobId"]) for job in answer.json()["jobs"]}


def send_round(world: JobsWorld, places: list[Place], tag: str, count: int) -> dict[str, Place]:
    """`count` creates per connection, interleaved so that the connections' jobs run concurrently."""
    sent: dict[str, Place] = {}
    for n in range(count):
        for place in places:
            job_id = f"{tag}-{place.label}-{n}"
            world.send(create(job_id, place))
            sent[job_id] = place
    return sent


def assert_landed_only_in_own_environment(
    sandbox: Sandbox, places: list[Place], sent: dict[str, Place]
) -> None:
    for place in places:
        mine = {f"Acceptance {job_id}" for job_id, at in sent.items() if at == place}
        others = {f"Acceptance {job_id}" for job_id, at in sent.items() if at != place}
        found = names_in(sandbox, place)
        assert mine <= found, f"{place.label}: missing {sorted(mine - found)}"
        assert not found & others, f"{place.label}: holds other connections' records {sorted(found & others)}"


def test_three_connections_run_apart_and_one_revoked_consent_parks_only_its_jobs(
    pipeline: JobsWorld, places: list[Place], sandbox: Sandbox, jobs_env: dict[str, str]
) -> None:
    """Jobs of three connections land each in its own environment; a revoked consent parks only the customer's
    jobs, and they complete after the admin consents again."""
    customer_place = places[2]
    environments = json.loads(sandbox.env["SANDBOX_BC_ENVIRONMENTS"])
    customer = _connection("customer", customer_place.tenant, "production", environments, jobs_env)
    # Tokens: the worker's Key Vault token and the two primary-tenant connections' BC tokens last an hour; the
    # customer's BC token 400 s, so that moving the sandbox's clock 500 s makes only it dead at BC (its refresh
    # then meets the revoked consent), the way tests/integration/jobs/test_reauthorization.py makes a token dead.
    sandbox.entra.token_lifetime_seconds = 3600
    warm = send_round(pipeline, places[:2], "warm", 1)
    for job_id in warm:
        assert pipeline.wait_for(job_id).state == "succeeded", pipeline.report(job_id)
    sandbox.entra.token_lifetime_seconds = 400
    pipeline.send(create("warm-customer-0", customer_place))
    assert pipeline.wait_for("warm-customer-0").state == "succeeded", pipeline.report("warm-customer-0")
    sandbox.entra.token_lifetime_seconds = 3600

    concurrent = send_round(pipeline, places, "run", 4)
    for job_id in concurrent:
        report = pipeline.wait_for(job_id)
        assert (report.state, report.connection) == ("succeeded", places_name(concurrent[job_id], pipeline))
    assert_landed_only_in_own_environment(sandbox, places, {**concurrent, "warm-customer-0": customer_place})

    # The customer tenant's admin revokes the consent; the customer's BC token dies, the others' do not.
    sandbox.entra.revoke_consent(customer_place.tenant, jobs_env["BC_CLIENT_ID"])
    sandbox.clock.advance(500)
    revoked = send_round(pipeline, places, "revoked", 2)
    parked = [job_id for job_id, place in revoked.items() if place is customer_place]
    for job_id, place in revoked.items():
        if place is not customer_place:
            assert pipeline.wait_for(job_id).state == "succeeded", pipeline.report(job_id)
    wait_until(
        lambda: all(state(pipeline, job_id) == "waiting_for_authorization" for job_id in parked),
        timeout=30,
        what="the customer's jobs to wait for its admin",
    )
    waiting = pipeline.report(parked[0])
    assert waiting is not None
    assert waiting.error is not None
    assert (waiting.attempts, waiting.error.code) == (0, "authorization_required")
    assert not names_in(sandbox, customer_place) & {f"Acceptance {job_id}" for job_id in parked}
    assert waiting_jobs(pipeline, "customer") == set(parked)  # what the app sees: GET /api/jobs?connection=
    assert waiting_jobs(pipeline, "primary-sandbox") == set()

    # The admin's fix: consent again, then the connection's token is refreshed once.
    sandbox.entra.grant_consent(customer_place.tenant, jobs_env["BC_CLIENT_ID"])
    asyncio.run(_refresh_now(jobs_env, customer))
    for job_id in parked:
        report = pipeline.wait_for(job_id, timeout=30)
        assert (report.state, report.attempts) == ("succeeded", 1), report.error
    assert_landed_only_in_own_environment(sandbox, places, {**concurrent, **revoked})
    assert leaked(pipeline.everything_kept(), {jobs_env["BC_CLIENT_SECRET"]}) == []


def places_name(place: Place, world: JobsWorld) -> str:
    """The connection a job's report names: the settings' connection's own name when the job named none."""
    return place.connection or world.connection
