"""`python -m sandbox --write-env` as a child process, and the JSON admin endpoints."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import msal
import pytest

from localworld.polling import wait_until
from sandbox import Sandbox
from shared.settings import load_settings
from tests.integration.sandbox.conftest import BC_SCOPE, CaSession

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def read_env(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines."""
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if line)


def companies_with_env_file_only(env: dict[str, str]) -> tuple[int, list[tuple[str, str]]]:
    """MSAL client credentials + httpx GET companies, configured from the env file's values alone."""
    session = CaSession(env["LOCAL_CA_BUNDLE"])  # REQUESTS_CA_BUNDLE would override MSAL's verify=
    try:
        app = msal.ConfidentialClientApplication(
            env["BC_CLIENT_ID"],
            client_credential=env["BC_CLIENT_SECRET"],
            authority=f"{env['BC_AUTHORITY_HOST']}/{env['BC_TENANT_ID']}",
            instance_discovery=False,
            http_client=session,
        )
        result = app.acquire_token_for_client(scopes=[BC_SCOPE])
    finally:
        session.close()
    assert "access_token" in result, result.get("error")
    url = f"{env['BC_API_BASE_URL']}/v2.0/{env['BC_TENANT_ID']}/{env['BC_ENVIRONMENT']}/api/v2.0/companies"
    context = ssl.create_default_context(cafile=env["LOCAL_CA_BUNDLE"])
    with httpx.Client(verify=context) as client:
        response = client.get(url, headers={"Authorization": f"Bearer {result['access_token']}"})
    listed = response.json().get("value", []) if response.is_success else []
    return response.status_code, [(str(company["id"]), str(company["name"])) for company in listed]


def test_cli_writes_the_env_file_and_serves_until_sigterm(tmp_path: Path) -> None:
    """The CLI writes an env file with which MSAL and httpx reach BC, answers over TLS, and exits 0 on SIGTERM."""
    env_file = tmp_path / "sandbox.env"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--write-env",
            str(env_file),
            "--seed",
            "7",
            "--bc-rate-limit",
            "50",
        ],
        cwd=REPO,  # `-m sandbox` imports from the working directory
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: env_file.exists() or process.poll() is not None,
            timeout=30,
            what="the sandbox's env file",
        )
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        env = read_env(env_file)
        settings = load_settings(env)
        context = ssl.create_default_context(cafile=env["LOCAL_CA_BUNDLE"])
        discovery = (
            f"{settings.auth.authority_host}/{settings.auth.tenant_id}/v2.0/.well-known/openid-configuration"
        )
        with httpx.Client(verify=context) as client:
            document = client.get(discovery).json()
            limits = client.get(f"{env['SANDBOX_ADMIN_URL']}/config").json()["bc"]["limits"]
        assert document["issuer"] == f"{settings.auth.authority_host}/{settings.auth.tenant_id}/v2.0"
        assert limits["rate_limit"] == 50
        assert companies_with_env_file_only(env) == (200, [(env["BC_COMPANY_ID"], env["BC_COMPANY_NAME"])])
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()
    assert not env_file.exists()


def test_admin_endpoints_drive_knobs_and_report_counters(
    sandbox: Sandbox, app_token: str, company_url: str
) -> None:
    """POST /bc/fail-next forces a BC 503; GET /stats shows it by identity and status; /reset clears it."""
    admin = sandbox.env["SANDBOX_ADMIN_URL"]
    context = ssl.create_default_context(cafile=str(sandbox.ca_bundle))
    with httpx.Client(verify=context) as client:
        assert client.post(f"{admin}/bc/fail-next", json={"count": 1, "kind": "503"}).status_code == 200
        response = client.get(f"{company_url}/items", headers={"Authorization": f"Bearer {app_token}"})
        assert response.status_code == 503
        stats = client.get(f"{admin}/stats").json()
        assert sum(by_status.get("503", 0) for by_status in stats["bc"]["requests"].values()) == 1
        assert stats["entra"]["token_calls"] == {"client_credentials": 1}
        assert client.post(f"{admin}/reset").status_code == 200
        assert client.get(f"{admin}/stats").json()["bc"]["requests"] == {}
        refused = client.post(f"{admin}/bc/fail-next", json={"count": 1, "kind": "meteor"})
        assert refused.status_code == 400


def test_admin_endpoints_force_the_new_fault_kinds(
    sandbox: Sandbox, app_token: str, company_url: str
) -> None:
    """408, 502, a 429 without Retry-After and an ambiguous write, driven over HTTP and counted by kind."""
    admin = sandbox.env["SANDBOX_ADMIN_URL"]
    context = ssl.create_default_context(cafile=str(sandbox.ca_bundle))
    auth = {"Authorization": f"Bearer {app_token}"}
    with httpx.Client(verify=context) as client:
        knobs = client.post(f"{admin}/bc/faults", json={"retry_after_seconds": None}).json()
        assert knobs["retry_after_seconds"] is None
        for kind in ("408", "502", "429", "ambiguous_write"):
            assert client.post(f"{admin}/bc/fail-next", json={"count": 1, "kind": kind}).status_code == 200
        timed_out = client.post(f"{company_url}/customers", json={"displayName": "Admin 408"}, headers=auth)
        bad_gateway = client.get(f"{company_url}/items", headers=auth)
        throttled = client.get(f"{company_url}/items", headers=auth)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post(f"{company_url}/customers", json={"displayName": "Admin lost"}, headers=auth)
        stats = client.get(f"{admin}/stats").json()["bc"]
    assert [timed_out.status_code, bad_gateway.status_code, throttled.status_code] == [408, 502, 429]
    assert "retry-after" in bad_gateway.headers
    assert "retry-after" not in throttled.headers
    assert stats["faults_injected"] == {"408": 1, "502": 1, "429": 1, "ambiguous_write": 1}
    names = {row["displayName"] for row in sandbox.bc.records("customers")}
    assert {"Admin 408", "Admin lost"} <= names
