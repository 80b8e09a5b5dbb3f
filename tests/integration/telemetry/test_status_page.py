"""function_app.py under devhost with Azurite and the sandbox: the status page as an admin opens it, after one job
through the real trigger."""

from __future__ import annotations

import contextlib
import json

import httpx
import pytest
from azure.core.exceptions import ResourceExistsError

from sandbox import Sandbox
from shared.connections import Connection, Credential
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


def register(world: JobsWorld, connection: Connection) -> None:
    """Write a registry row as PUT /api/connections does (the table, one partition, the JSON in `spec`)."""
    spec = json.dumps(connection.model_dump(mode="json", by_alias=True, exclude={"from_settings"}))
    with world.table("connections") as table:
        with contextlib.suppress(ResourceExistsError):
            table.create_table()
        table.upsert_entity({"PartitionKey": "connection", "RowKey": connection.name, "spec": spec})


def test_the_status_page_lists_every_connection_with_its_own_jobs(
    pipeline: JobsWorld, sandbox: Sandbox, jobs_env: dict[str, str]
) -> None:
    """A registered connection beside the settings' one: a line each, with its health and its own job counts."""
    sandbox.vault.set_secret("secret-contoso", sandbox.env["BC_CLIENT_SECRET"], None, None, True)
    register(
        pipeline,
        Connection(
            name="contoso",
            tenant_id=sandbox.env["BC_TENANT_ID"],
            environment=sandbox.env["BC_ENVIRONMENT"],
            company_id=sandbox.env["BC_COMPANY_ID"],
            client_id=sandbox.env["BC_CLIENT_ID"],
            credential=Credential.KEY_VAULT_SECRET,
            secret_name="secret-contoso",
        ),
    )
    pipeline.send(JOB)
    pipeline.send({**JOB, "jobId": "telemetry-contoso-1", "connection": "contoso"})
    assert pipeline.wait_for("telemetry-create-1").state.value == "succeeded"
    contoso = pipeline.wait_for("telemetry-contoso-1")
    assert contoso.state.value == "succeeded", contoso.error

    body = pipeline.get("/api/status").text

    assert "<h2>Connections (2)</h2>" in body
    lines = {
        name: line
        for line in body.split("<tr>")
        for name in (jobs_env["BC_CONNECTION_NAME"], "contoso")
        if f"<code>{name}</code>" in line
    }
    assert "(app settings)" in lines[jobs_env["BC_CONNECTION_NAME"]]
    for line in lines.values():
        assert "<span class='badge ok'>ok</span>" in line
        assert "<td>1 succeeded</td><td>1 succeeded</td>" in line
    assert sandbox.env["BC_CLIENT_SECRET"] not in body
