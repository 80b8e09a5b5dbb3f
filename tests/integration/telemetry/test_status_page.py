"""function_app.py under devhost with Azurite and the sandbox: the status page as an admin opens it, after one job
through the real trigger."""

from __future__ import annotations

import httpx
import pytest

from sandbox import Sandbox
from tests.integration.jobs.conftest import JobsWorld
from tests.integration.telemetry.conftest import JOB

pytestmark = pytest.mark.integration


def test_the_status_page_answers_with_the_function_key_only(pipeline: JobsWorld, sandbox: Sandbox) -> None:
    """GET /api/status: 401 without the key; with it, HTML under a strict CSP showing the connection and the job."""
    pipeline.send(JOB)
    pipeline.wait_for("telemetry-create-1")
    assert httpx.get(f"{pipeline.base_url}/api/status", timeout=10).status_code == 401
    page = pipeline.get("/api/status")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'none'; style-src 'sha256-")
    assert page.headers["cache-control"] == "no-store"
    body = page.text
    assert ">ok</span>" in body
    assert "client credentials" in body
    assert "<td>succeeded</td><td class='n'>1</td><td class='n'>1</td>" in body
    assert "<code>bc-jobs-poison</code>" in body
    assert "Instances sharing it</dt><dd>1</dd>" in body
    assert "eyJ" not in body
    assert sandbox.env["BC_CLIENT_SECRET"] not in body
