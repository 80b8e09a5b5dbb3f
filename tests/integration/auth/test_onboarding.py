"""Onboarding end to end on the sandbox: a registered connection's sign-in, its check, the consent link and the
consent callback's refusals; one connection's state never reaches another's."""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import azure.functions as func
import httpx
import pytest
from azure.data.tables.aio import TableClient

from sandbox import Sandbox
from shared.auth import close_auth_services
from shared.auth.keyvault import secret_name
from shared.connections import Connection
from shared.connections.compose import close_registry_services, registry_services
from shared.connections.connection import Identity
from shared.settings import Settings
from shared.tokens import AuthMode
from shared.triggers import auth_http, connections_onboarding
from tests.integration.auth.conftest import Audit
from tests.integration.auth.test_admin_flow import APP_BASE, callback_post, sign_in_at_sandbox

pytestmark = pytest.mark.integration

Functions = dict[str, Callable[..., Any]]


@pytest.fixture
async def functions(
    app_env: dict[str, str], audit: Audit, auth_table: TableClient
) -> AsyncIterator[Functions]:
    """The onboarding routes and the sign-in callback as the worker calls them."""
    del app_env
    try:
        yield {
            "check": connections_onboarding.connections_check,
            "consent": connections_onboarding.connections_consent,
            "consent_callback": connections_onboarding.connections_consent_callback,
            "sign_in": connections_onboarding.connections_sign_in,
            "auth_callback": auth_http.auth_callback,
        }
    finally:
        await audit.add_rows(auth_table)
        await close_registry_services()
        await close_auth_services()


async def register(settings: Settings, sandbox: Sandbox, **changes: object) -> Connection:
    """A delegated connection to the sandbox's tenant and environment, under a fresh name."""
    values: dict[str, object] = {
        "name": f"p{uuid.uuid4().hex[:8]}",
        "tenant_id": sandbox.env["BC_TENANT_ID"],
        "environment": sandbox.env["BC_ENVIRONMENT"],
        "client_id": sandbox.env["BC_CLIENT_ID"],
        "company_name": sandbox.env["BC_COMPANY_NAME"],
        "mode": AuthMode.DELEGATED,
    }
    connection = Connection(**{**values, **changes})
    await (await registry_services(settings)).registry.put(connection)
    return connection


def route(method: str, name: str, action: str, identity: str | None = None) -> func.HttpRequest:
    params = {} if identity is None else {"identity": identity}
    return func.HttpRequest(
        method,
        f"{APP_BASE}/connections/{name}/{action}",
        body=b"",
        route_params={"name": name},
        params=params,
    )


async def signs_in(
    functions: Functions, name: str, sandbox_tls: ssl.SSLContext, audit: Audit
) -> dict[str, str]:
    """GET /api/connections/{name}/sign-in, then the user signs in at the sandbox: the fields Entra posts back."""
    started = await functions["sign_in"](route("GET", name, "sign-in"))
    assert started.status_code == 302
    return await sign_in_at_sandbox(started.headers["Location"], sandbox_tls, audit)


async def test_a_registered_connection_signs_in_on_its_own_link_and_only_its_token_set_is_written(
    functions: Functions,
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    audit: Audit,
) -> None:
    partner = await register(settings, sandbox)
    fields = await signs_in(functions, partner.name, sandbox_tls, audit)
    assert fields["state"].startswith(f"{partner.name}~")

    page = await functions["auth_callback"](callback_post(fields))

    assert page.status_code == 200
    assert f"Connection: {partner.name}" in page.get_body().decode()
    assert sandbox.vault.peek(secret_name(partner.name)) is not None
    assert sandbox.vault.peek(secret_name(settings.auth.connection_name)) is None


async def test_a_state_of_one_connection_renamed_to_another_is_refused_and_writes_nothing(
    functions: Functions,
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    audit: Audit,
) -> None:
    a = await register(settings, sandbox)
    b = await register(settings, sandbox)
    fields = await signs_in(functions, a.name, sandbox_tls, audit)
    forged = {**fields, "state": fields["state"].replace(f"{a.name}~", f"{b.name}~", 1)}

    page = await functions["auth_callback"](callback_post(forged))

    assert page.status_code == 400
    assert sandbox.vault.peek(secret_name(a.name)) is None
    assert sandbox.vault.peek(secret_name(b.name)) is None


async def test_the_check_of_a_signed_in_connection_passes_every_step(
    functions: Functions,
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    audit: Audit,
) -> None:
    partner = await register(settings, sandbox)
    before = json.loads((await functions["check"](route("POST", partner.name, "check"))).get_body())
    assert before["ok"] is False
    assert before["steps"][-1]["name"] == "token"
    assert f"/api/connections/{partner.name}/sign-in" in before["steps"][-1]["fix"]

    await functions["auth_callback"](
        callback_post(await signs_in(functions, partner.name, sandbox_tls, audit))
    )
    after = json.loads((await functions["check"](route("POST", partner.name, "check"))).get_body())

    assert after["ok"] is True, after
    assert [step["name"] for step in after["steps"]] == [
        "token",
        "environment",
        "bc-accepts-token",
        "company",
        "read-customers",
    ]


async def test_a_company_the_environment_lacks_is_named_with_the_companies_there(
    functions: Functions,
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    audit: Audit,
) -> None:
    partner = await register(settings, sandbox, company_name="No Such Company")
    await functions["auth_callback"](
        callback_post(await signs_in(functions, partner.name, sandbox_tls, audit))
    )

    answer = json.loads((await functions["check"](route("POST", partner.name, "check"))).get_body())

    assert answer["steps"][-1]["name"] == "company"
    assert sandbox.env["BC_COMPANY_NAME"] in answer["steps"][-1]["detail"]


async def test_the_consent_link_is_entras_admin_consent_for_the_connections_tenant(
    functions: Functions, sandbox: Sandbox, settings: Settings
) -> None:
    partner = await register(settings, sandbox, mode=AuthMode.CLIENT_CREDENTIALS)

    answer = await functions["consent"](route("GET", partner.name, "consent"))

    body = json.loads(answer.get_body())
    url = urlsplit(body["consentUrl"])
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert url.path.endswith(f"/{partner.tenant_id}/v2.0/adminconsent")
    assert query["client_id"] == partner.client_id
    assert query["redirect_uri"] == "http://127.0.0.1:7071/api/connections/consent/callback"
    assert query["state"].startswith(f"{partner.name}~")


async def test_consent_answers_with_unknown_forged_or_replayed_states_are_refused(
    functions: Functions, sandbox: Sandbox, settings: Settings
) -> None:
    partner = await register(settings, sandbox, mode=AuthMode.CLIENT_CREDENTIALS)
    link = json.loads((await functions["consent"](route("GET", partner.name, "consent"))).get_body())
    state = parse_qs(urlsplit(link["consentUrl"]).query)["state"][0]
    callback = functions["consent_callback"]

    def answer(params: dict[str, str]) -> func.HttpRequest:
        return func.HttpRequest("GET", f"{APP_BASE}/connections/consent/callback", params=params, body=b"")

    other = await register(settings, sandbox)
    declined = await callback(answer({"error": "access_denied", "error_description": "no", "state": state}))
    replayed = await callback(answer({"admin_consent": "True", "tenant": partner.tenant_id, "state": state}))
    forged = await callback(
        answer({"admin_consent": "True", "state": state.replace(partner.name, other.name)})
    )
    unknown = await callback(answer({"admin_consent": "True", "state": f"{partner.name}~forged"}))
    markup = await callback(answer({"admin_consent": "True", "state": "<script>"}))

    assert declined.status_code == 400
    assert "declined" in declined.get_body().decode()
    assert [r.status_code for r in (replayed, forged, unknown, markup)] == [400, 400, 400, 400]
    assert "<script>" not in markup.get_body().decode()


async def test_a_route_name_is_validated_before_any_lookup_and_an_unknown_one_is_404(
    functions: Functions,
) -> None:
    bad = await functions["check"](route("POST", "Not_A_Name", "check"))
    unknown = await functions["check"](route("POST", "nobody-here", "check"))
    assert (bad.status_code, unknown.status_code) == (400, 404)
    assert "bcjobs connections list" in json.loads(bad.get_body())["message"]


async def customer_connection(settings: Settings, sandbox: Sandbox, **changes: object) -> Connection:
    """A client-credentials connection to the customer tenant's production (not consented there yet)."""
    customer = sandbox.tenant_ids[1]
    values: dict[str, object] = {
        "tenant_id": customer,
        "mode": AuthMode.CLIENT_CREDENTIALS,
        "company_name": sandbox.bc.environment(customer, "production").company_name,
        **changes,
    }
    return await register(settings, sandbox, **values)


async def check(functions: Functions, name: str) -> dict[str, Any]:
    answer = await functions["check"](route("POST", name, "check"))
    assert answer.status_code == 200
    return dict(json.loads(answer.get_body()))


async def consent_at_sandbox(url: str, sandbox_tls: ssl.SSLContext) -> dict[str, str]:
    """The customer's admin opens the consent link and accepts: the query Entra redirects back with."""
    async with httpx.AsyncClient(verify=sandbox_tls, follow_redirects=False) as client:
        answer = await client.get(url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith("http://127.0.0.1:7071/api/connections/consent/callback?")
    return dict(parse_qsl(urlsplit(location).query))


def consent_callback_request(params: dict[str, str]) -> func.HttpRequest:
    return func.HttpRequest("GET", f"{APP_BASE}/connections/consent/callback", params=params, body=b"")


async def test_a_customer_tenant_without_consent_gets_the_consent_link_and_passes_after_consenting(
    functions: Functions, sandbox: Sandbox, sandbox_tls: ssl.SSLContext, settings: Settings
) -> None:
    """check -> token fails (AADSTS700016) with a consent link -> the admin consents -> the callback's page shows
    every step passed, and the consent is on the connection's record."""
    customer = await customer_connection(settings, sandbox)
    before = await check(functions, customer.name)
    step = before["steps"][-1]
    assert (step["name"], "AADSTS700016" in step["detail"]) == ("token", True)
    consent_url = step["fix"].split(": ", 1)[1].split(" ", 1)[0]
    assert "/v2.0/adminconsent?" in consent_url

    page = await functions["consent_callback"](
        consent_callback_request(await consent_at_sandbox(consent_url, sandbox_tls))
    )

    body = page.get_body().decode()
    assert page.status_code == 200, body
    assert "Check: all steps passed" in body
    assert sandbox.entra.consented(customer.tenant_id, customer.client_id)
    after = await check(functions, customer.name)
    assert after["ok"] is True, after


async def test_an_environment_without_the_apps_card_is_told_to_add_it_on_the_entra_applications_page(
    functions: Functions, sandbox: Sandbox, settings: Settings
) -> None:
    customer = await customer_connection(settings, sandbox)
    sandbox.entra.grant_consent(customer.tenant_id, customer.client_id)
    sandbox.bc.unregister_application(customer.tenant_id, "production", customer.client_id)

    answer = await check(functions, customer.name)

    step = answer["steps"][-1]
    assert step["name"] == "bc-accepts-token"
    assert (
        f"add the app (client id {customer.client_id}) on the Microsoft Entra Applications page"
        in step["fix"]
    )
    assert f"environment production of tenant {customer.tenant_id}" in step["fix"]


async def test_an_environment_the_tenant_lacks_is_named_with_the_ones_it_has(
    functions: Functions, sandbox: Sandbox, settings: Settings
) -> None:
    customer = await customer_connection(settings, sandbox, environment="staging")
    sandbox.entra.grant_consent(customer.tenant_id, customer.client_id)

    step = (await check(functions, customer.name))["steps"][-1]

    assert step["name"] == "environment"
    assert "no environment 'staging' (it has: production)" in step["detail"]


async def test_a_delegated_identity_signs_in_on_its_own_link_and_is_checked_apart_from_the_primary(
    functions: Functions,
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    audit: Audit,
) -> None:
    """Issue 23: a delegated connection holds several signed-in users the same way; each identity's user signs in
    on `sign-in?identity=`, its token set is its own (`bc-token-{name}--{identity}`), and the pool's check reports
    each identity apart."""
    second = Identity(name="second", client_id=sandbox.env["BC_CLIENT_ID"])
    partner = await register(settings, sandbox, identities=(second,))
    started = await functions["sign_in"](route("GET", partner.name, "sign-in", identity="second"))
    assert started.status_code == 302
    fields = await sign_in_at_sandbox(started.headers["Location"], sandbox_tls, audit)
    assert fields["state"].startswith(f"{partner.name}--second~")

    page = await functions["auth_callback"](callback_post(fields))

    assert page.status_code == 200
    assert sandbox.vault.peek(secret_name(f"{partner.name}--second")) is not None
    assert sandbox.vault.peek(secret_name(partner.name)) is None  # the primary's user has not signed in
    one = json.loads((await functions["check"](route("POST", partner.name, "check", "second"))).get_body())
    assert (one["identity"], one["ok"]) == ("second", True), one
    pool = json.loads((await functions["check"](route("POST", partner.name, "check"))).get_body())
    assert pool["ok"] is False
    assert [(r["identity"], r["ok"]) for r in pool["identities"]] == [("primary", False), ("second", True)]
    primary_fix = pool["identities"][0]["steps"][-1]["fix"]
    assert f"/api/connections/{partner.name}/sign-in" in primary_fix
    assert "identity=" not in primary_fix
