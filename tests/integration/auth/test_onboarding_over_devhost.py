"""Onboarding a customer's environment end to end, as an admin does it: function_app.py on devhost, the bcjobs CLI,
the sandbox's customer tenant and its admin-consent page, Azurite and the sandbox Key Vault."""

from __future__ import annotations

import json
import ssl
import uuid

import httpx
import pytest
from typer.testing import CliRunner

from bcjobs.cli import app as cli
from bcjobs.connections import ConnectionsClient
from sandbox import Sandbox
from tests.integration.auth.conftest import AppHost, Audit

pytestmark = pytest.mark.integration


def bcjobs(app_host: AppHost, *args: str) -> tuple[int, str]:
    """`bcjobs connections ...` against the app host; (exit code, stdout)."""
    env = {
        "BCJOBS_API_URL": app_host.base_url,
        "BCJOBS_FUNCTION_KEY": app_host.function_key,
        "COLUMNS": "250",
    }
    done = CliRunner().invoke(cli, ["connections", *args], env=env)
    return done.exit_code, done.stdout


def test_an_admin_registers_a_customer_consents_through_the_link_and_the_check_passes(
    app_host: AppHost, sandbox: Sandbox, sandbox_tls: ssl.SSLContext, audit: Audit
) -> None:
    """put (secret to Key Vault) -> check fails at `token` naming consent -> the customer's admin opens the
    consent link -> the app's callback page shows the check passed -> `bcjobs connections check` exits 0."""
    secret = sandbox.env["BC_CLIENT_SECRET"]
    audit.extra_secrets.add(secret)
    customer = sandbox.tenant_ids[1]
    name = f"cust-{uuid.uuid4().hex[:8]}"
    company = sandbox.bc.environment(customer, "production").company_name
    spec = {"tenantId": customer, "environment": "production", "clientId": sandbox.env["BC_CLIENT_ID"]}
    with ConnectionsClient(app_host.base_url, app_host.function_key) as admin:
        admin.put_connection(name, {**spec, "companyName": company}, client_secret=secret)

    code, out = bcjobs(app_host, "check", name, "--json")
    failed = json.loads(out)["steps"][-1]
    assert (code, failed["name"]) == (1, "token")
    assert "grant admin consent" in failed["fix"]

    code, out = bcjobs(app_host, "consent", name, "--json")
    assert code == 0
    link = json.loads(out)
    with httpx.Client(verify=sandbox_tls) as browser:
        to_app = browser.get(link["consentUrl"])
    assert to_app.status_code == 302
    page = httpx.get(to_app.headers["location"], timeout=60)  # the anonymous callback: no key
    assert page.status_code == 200, page.text
    assert "Check: all steps passed" in page.text

    code, out = bcjobs(app_host, "check", name)
    assert code == 0, out
    assert "read-customers" in out
