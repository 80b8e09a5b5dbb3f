"""Issue 21's acceptance, end to end: three connections (two tenants, one of them with two environments) in one
local world run jobs concurrently, each job's effect lands in its own BC environment (read from the sandbox's BC
directly), and revoking one connection's consent parks only its jobs, which complete once the admin fixes it.

The world is tests/integration/jobs's: function_app.py under devhost, Azurite, the sandbox. The settings' connection
is the primary tenant's `production`; the admin registers `primary-sandbox` (same tenant and app, environment
`sandbox`) and `customer` (the customer tenant's `production`, the same multi-tenant app once that tenant's admin
consented: reference bc-webhooks-connections-identities.md (b), B2) with the app client's ConnectionsClient, and
onboards `customer` through its admin-consent link, as an admin does.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

import function_app
from bcjobs.connections import ConnectionsClient
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from localworld.polling import wait_until
from localworld.ports import free_port
from sandbox import Sandbox
from shared.settings import get_settings
from tests.integration.jobs.conftest import ROOT, JobsWorld, leaked

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
def app(world: JobsWorld, jobs_env: dict[str, str], sandbox: Sandbox) -> Iterator[JobsWorld]:
    """function_app.py under devhost on a fixed port, with BC_REDIRECT_URI: the admin-consent link sends the
    tenant's admin back to /api/connections/consent/callback on that origin (shared/onboarding/consent.py)."""
    port = free_port()
    settings = {**jobs_env, "BC_REDIRECT_URI": f"http://127.0.0.1:{port}/api/auth/callback"}
    get_settings.cache_clear()
    host = DevHost(
        function_app.app,
        settings,
        host_config=load_host_config(ROOT / "host.json"),
        port=port,
        shutdown_grace=10,
    )
    host.start()
    world.base_url = host.base_url
    try:
        yield world
    finally:
        host.stop()
        get_settings.cache_clear()


@pytest.fixture
def admin(app: JobsWorld) -> Iterator[ConnectionsClient]:
    """The admin's registry client (bcjobs.connections), with the app's function key."""
    with ConnectionsClient(app.base_url, app.function_key) as client:
        yield client


def register(admin: ConnectionsClient, sandbox: Sandbox, place: Place) -> None:
    """PUT /api/connections/{name}: the deployment's own app registration in the place's tenant and environment."""
    environments = json.loads(sandbox.env["SANDBOX_BC_ENVIRONMENTS"])
    (company,) = [
        e for e in environments if (e["tenant"], e["environment"]) == (place.tenant, place.environment)
    ]
    assert place.connection is not None
    spec = {
        "tenantId": place.tenant,
        "environment": place.environment,
        "clientId": sandbox.env["BC_CLIENT_ID"],
        "companyId": company["companyId"],
        "companyName": company["companyName"],
    }
    admin.put_connection(place.connection, spec)


def consent(admin: ConnectionsClient, sandbox: Sandbox, name: str) -> str:
    """The tenant's admin opens the connection's consent link and accepts (the sandbox's admin approves); Entra
    redirects to the app's consent callback, which runs the check: its page's text."""
    link = admin.consent_link(name)
    assert link is not None
    with httpx.Client(verify=ssl.create_default_context(cafile=str(sandbox.ca_bundle))) as browser:
        to_app = browser.get(link.consent_url)
    assert to_app.status_code == 302, to_app.text
    page = httpx.get(to_app.headers["location"], timeout=60)  # the anonymous callback: no function key
    assert page.status_code == 200, page.text
    return page.text


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
    params = {"connection": connection, "state": "waiting_for_authorization", "code": world.function_key}
    answer = httpx.get(f"{world.base_url}/api/jobs", params=params, timeout=30)
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


def check_passes(admin: ConnectionsClient, name: str) -> bool:
    result = admin.check_connection(name)
    return result is not None and result.ok


def test_three_connections_run_apart_and_one_revoked_consent_parks_only_its_jobs(
    app: JobsWorld, admin: ConnectionsClient, sandbox: Sandbox, jobs_env: dict[str, str]
) -> None:
    """Jobs of three connections land each in its own environment; a revoked consent parks only the customer's
    jobs, and they complete after the customer's admin consents again through the app's link."""
    primary, customer_tenant = sandbox.tenant_ids[0], sandbox.tenant_ids[1]
    settings_place = Place(None, primary, "production")
    customer = Place("customer", customer_tenant, "production")
    places = [settings_place, Place("primary-sandbox", primary, "sandbox"), customer]
    # Tokens: Key Vault's (both app processes') and the primary tenant's BC tokens last an hour; the customer's
    # BC token 400 s, so that moving the sandbox's clock 500 s makes only it dead at BC (its refresh then meets the
    # revoked consent), the way tests/integration/jobs/test_reauthorization.py makes a token dead.
    sandbox.entra.token_lifetime_seconds = 3600
    assert app.get("/api/auth/status").status_code == 200  # the HTTP process's Key Vault token
    app.send(create("warm-settings-0", settings_place))  # the jobs process's Key Vault token
    assert app.wait_for("warm-settings-0").state == "succeeded"
    register(admin, sandbox, places[1])
    register(admin, sandbox, customer)
    sandbox.entra.token_lifetime_seconds = 400
    assert "Check: all steps passed" in consent(admin, sandbox, "customer")  # its first BC token: 400 s
    sandbox.entra.token_lifetime_seconds = 3600

    concurrent = send_round(app, places, "run", 4)
    for job_id, place in concurrent.items():
        report = app.wait_for(job_id)
        assert (report.state, report.connection) == ("succeeded", place.connection or app.connection)
    assert_landed_only_in_own_environment(sandbox, places, concurrent)

    # The customer tenant's admin revokes the consent; the customer's BC token dies, the others' do not.
    sandbox.entra.revoke_consent(customer.tenant, jobs_env["BC_CLIENT_ID"])
    sandbox.clock.advance(500)
    revoked = send_round(app, places, "revoked", 2)
    parked = [job_id for job_id, place in revoked.items() if place is customer]
    for job_id, place in revoked.items():
        if place is not customer:
            assert app.wait_for(job_id).state == "succeeded", app.report(job_id)
    wait_until(
        lambda: all(state(app, job_id) == "waiting_for_authorization" for job_id in parked),
        timeout=30,
        what="the customer's jobs to wait for its admin",
    )
    waiting = app.report(parked[0])
    assert waiting is not None
    assert waiting.error is not None
    assert (waiting.attempts, waiting.error.code) == (0, "authorization_required")
    assert not names_in(sandbox, customer) & {f"Acceptance {job_id}" for job_id in parked}
    assert waiting_jobs(app, "customer") == set(parked)  # what the app sees: GET /api/jobs?connection=
    assert waiting_jobs(app, "primary-sandbox") == set()

    # The admin's fix: consent again through the link; the consent callback runs the check. Its forced refresh
    # coalesces with one less than 30 s old (shared/auth/timing.py REFRESH_MIN_AGE), which this compressed
    # timeline has (the customer's first token), so the admin reruns the check until it passes, as the consent
    # page's fix suggests.
    consent(admin, sandbox, "customer")
    wait_until(lambda: check_passes(admin, "customer"), timeout=45, interval=2, what="the customer's check")
    for job_id in parked:
        report = app.wait_for(job_id, timeout=30)
        assert (report.state, report.attempts) == ("succeeded", 1), report.error
    assert_landed_only_in_own_environment(sandbox, places, {**concurrent, **revoked})
    assert leaked(app.everything_kept(), {jobs_env["BC_CLIENT_SECRET"]}) == []
