"""The demo's second connection (issue 21): after the main run the admin registers the customer tenant's
`production` environment as connection `customer` (PUT /api/connections/customer) and that tenant's admin consents
to the app through the connection's admin-consent link, whose callback runs the connection's check; the app sends
a few jobs naming it, and the demo reads BC to see that they landed in the customer's environment and not in the
primary one.

The customer connection uses the deployment's own multi-tenant app registration (credential `settings`) with the
customer tenant's authority: client credentials in another tenant need that tenant's admin consent first
(reference bc-webhooks-connections-identities.md (b), B2; learn.microsoft.com/entra/identity-platform/
v2-admin-consent).
"""

from __future__ import annotations

import ssl
from collections import Counter
from typing import Any

import httpx

from bcjobs import JobState
from bcjobs.rows import report_from_row
from demo.context import DemoContext, DemoError
from demo.main_run import jobs_client
from localworld.bc import BcPlace, BcReader, sandbox_places
from localworld.sign_in import admin_client, page_text
from shared.connections.connection import Connection

SECOND = "customer"  # the second connection's name
SECOND_JOBS = 6  # creates the app sends on it
NAME_PREFIX = "DEMO-CONNECTION-"
CHECK_PASSED = "Check: all steps passed"  # the consent callback's page after the check (shared/onboarding)  # the created customers' display names (found in BC by it)


def customer_place(env: dict[str, str]) -> BcPlace:
    """The sandbox's first environment in another tenant than the deployment's (the customer's production)."""
    others = [place for place in sandbox_places(env) if place.tenant != env["BC_TENANT_ID"]]
    if not others:
        raise DemoError("the sandbox has no customer tenant (SANDBOX_BC_ENVIRONMENTS lists none)")
    return others[0]


def admin_registers_a_second_connection(context: DemoContext) -> str:
    """The admin registers the customer tenant's `production` as connection `customer` and the tenant's admin
    consents to the app there."""
    env = context.sandbox_env
    place = customer_place(env)
    connection = Connection(
        name=SECOND,
        tenant_id=place.tenant,
        environment=place.environment,
        client_id=env["BC_CLIENT_ID"],
        company_id=place.company_id,
        company_name=place.company_name,
    )
    registered = _register(context, connection)
    consented = _consent(context, connection)
    return (
        f"connection '{SECOND}': tenant {place.tenant}, environment {place.environment}, company "
        f"'{place.company_name}', client credentials with the deployment's app ({registered})\n      {consented}"
    )


def _register(context: DemoContext, connection: Connection) -> str:
    """PUT /api/connections/{name}: the connection's fields without its name (the URL's) and fromSettings."""
    body = connection.model_dump(
        mode="json", by_alias=True, exclude={"name", "from_settings"}, exclude_none=True
    )
    with admin_client(context.base_url, context.function_key) as admin:
        answer = admin.put(f"/api/connections/{connection.name}", json=body)
    if answer.status_code not in (200, 201):
        raise DemoError(
            f"PUT /api/connections/{connection.name} answered {answer.status_code} {answer.text!r}"
        )
    return f"PUT /api/connections/{connection.name} -> {answer.status_code}"


def _consent(context: DemoContext, connection: Connection) -> str:
    """The tenant's admin opens the connection's admin-consent link (GET /api/connections/{name}/consent) and
    accepts, like a browser: Entra redirects to the app's consent callback, whose page runs the connection's
    check (token, environment, BC accepts the token, company, a read of customers)."""
    if context.options.mode == "s2s":
        return _consent_without_callback(context, connection)
    with admin_client(context.base_url, context.function_key) as admin:
        link = admin.get(f"/api/connections/{connection.name}/consent")
    if link.status_code != 200:
        raise DemoError(
            f"GET /api/connections/{connection.name}/consent answered {link.status_code} {link.text!r}"
        )
    tls = ssl.create_default_context(cafile=context.sandbox_env["LOCAL_CA_BUNDLE"])
    with httpx.Client(verify=tls, timeout=30) as browser:
        entra = browser.get(str(link.json()["consentUrl"]))
        if entra.status_code != 302:
            raise DemoError(f"Entra's admin-consent page answered {entra.status_code}")
        back = browser.get(entra.headers["location"], timeout=60)  # the app's anonymous consent callback
    text = page_text(back.text)
    if back.status_code != 200 or CHECK_PASSED not in text:
        raise DemoError(f"the consent callback answered {back.status_code}: {text[:400]}")
    return (
        f"consent link -> Entra (the tenant's admin accepts) -> 302 to the app's consent callback -> "
        f"{back.status_code}: {CHECK_PASSED}"
    )


def _consent_without_callback(context: DemoContext, connection: Connection) -> str:
    """S2S runs infra's app settings: the consent callback is on https://{WEBSITE_HOSTNAME}, an origin the local
    world does not serve. The consent is granted at the sandbox's Entra directly, then the admin runs the check
    (POST /api/connections/{name}/check)."""
    if context.sandbox is None:
        raise DemoError("the sandbox is not running")
    context.sandbox.admin(
        "/entra/grant-consent", {"tenant_id": connection.tenant_id, "client_id": connection.client_id}
    )
    with admin_client(context.base_url, context.function_key) as admin:
        check = admin.post(f"/api/connections/{connection.name}/check")
    report = check.json() if check.status_code == 200 else {}
    if not report.get("ok"):
        raise DemoError(
            f"POST /api/connections/{connection.name}/check answered {check.status_code} {check.text!r}"
        )
    steps = ", ".join(str(step.get("name")) for step in report.get("steps", []))
    return (
        f"admin consent granted in tenant {connection.tenant_id} (the sandbox's Entra: the consent callback's "
        f"https origin is not served locally); POST /api/connections/{connection.name}/check -> ok ({steps})"
    )


def app_runs_jobs_on_the_second_connection(context: DemoContext) -> str:
    """The app sends creates naming `customer`; BC's customer environment holds each once, the primary none."""
    names = [f"{NAME_PREFIX}{n:03d}" for n in range(1, SECOND_JOBS + 1)]
    jobs_sent: list[dict[str, Any]] = [
        {
            "jobId": f"demo-connection-{n:03d}",
            "connection": SECOND,
            "operation": "create",
            "entitySet": "customers",
            "data": {"displayName": name},
        }
        for n, name in enumerate(names, start=1)
    ]
    with jobs_client(context) as jobs:
        sent = jobs.enqueue_many(jobs_sent)
        reports = [jobs.wait(h.job_id, timeout=60, poll=0.2, max_poll=1.0) for h in sent.handles]
    states = Counter(report.state.value for report in reports)
    context.figures["connections"] = _per_connection(context, reports)
    if states[JobState.SUCCEEDED.value] != len(reports):
        raise DemoError(f"jobs on connection '{SECOND}' did not all succeed: {dict(states)}")
    place = customer_place(context.sandbox_env)
    with BcReader(context.sandbox_env, place) as customer, BcReader(context.sandbox_env) as primary:
        there = Counter(str(r.get("displayName")) for r in customer.records("customers"))
        here = {str(r.get("displayName")) for r in primary.records("customers")}
    wrong = [name for name in names if there[name] != 1] + [name for name in names if name in here]
    if wrong:
        raise DemoError(
            f"not exactly once in {place.environment} of {place.tenant}, or in the primary: {wrong}"
        )
    return (
        f"{len(reports)} creates on '{SECOND}' succeeded; read from BC: each once in the customer tenant's "
        f"{place.environment} ('{place.company_name}'), none in the primary environment"
    )


def _per_connection(context: DemoContext, second: list[Any]) -> dict[str, dict[str, int]]:
    """Jobs and succeeded jobs per connection: the main run's (the settings' connection) and the second's."""
    default = context.app_environment.get("BC_CONNECTION_NAME", "default")
    counts: dict[str, Counter[str]] = {}
    for report in [*(report_from_row(row) for row in context.rows.values()), *second]:
        name = report.connection or default
        counts.setdefault(name, Counter())[report.state.value] += 1
    return {
        name: {"jobs": sum(states.values()), "succeeded": states[JobState.SUCCEEDED.value]}
        for name, states in counts.items()
    }
