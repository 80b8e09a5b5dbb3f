"""The registry's HTTP API served by devhost over Azurite and the sandbox Key Vault, through the bcjobs clients
and CLI: a client secret lands in Key Vault only (not in the registry row, a response or a log line), DELETE
disables while jobs are pending and otherwise removes row, client secret and token set, and the jobs front door
refuses an unknown connection and filters by connection."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from azure.data.tables.aio import TableClient
from typer.testing import CliRunner

from bcjobs.cli import app as cli
from bcjobs.common import jobs_table_name
from bcjobs.connections import AsyncConnectionsClient, ConnectionsClient
from sandbox import Sandbox
from shared.connections.compose import registry_table_name
from shared.settings import load_settings
from tests.integration.auth.conftest import AppHost, Audit

pytestmark = pytest.mark.integration

SECRET = f"registry-{uuid.uuid4().hex}-secret"  # a client secret as the admin sends it
OTHER_SECRET = f"registry-{uuid.uuid4().hex}-rotated"
APP = "22222222-2222-2222-2222-222222222222"


def spec() -> dict[str, object]:
    return {"tenantId": "fabrikam.onmicrosoft.com", "environment": "production", "clientId": APP}


@pytest.fixture
async def tables(app_host: AppHost, azurite_connection_string: str) -> AsyncIterator[dict[str, TableClient]]:
    """The app's registry and jobs tables, read directly."""
    settings = load_settings(app_host.env)
    prefix = settings.storage.table_prefix
    clients = {
        "registry": TableClient.from_connection_string(
            azurite_connection_string, registry_table_name(settings)
        ),
        "jobs": TableClient.from_connection_string(azurite_connection_string, jobs_table_name(prefix)),
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.close()


async def test_a_client_secret_goes_to_key_vault_and_never_into_rows_replies_or_logs(
    app_host: AppHost, sandbox: Sandbox, audit: Audit, tables: dict[str, TableClient]
) -> None:
    audit.extra_secrets.update({SECRET, OTHER_SECRET})
    name = f"fab-{uuid.uuid4().hex[:8]}"
    with ConnectionsClient(app_host.base_url, app_host.function_key) as admin:
        created = admin.put_connection(name, spec(), client_secret=SECRET)
        rotated = admin.put_connection(name, spec(), client_secret=OTHER_SECRET)
        listed = admin.connections()
    assert sandbox.vault.peek(f"bc-conn-{name}-secret") == OTHER_SECRET
    assert created.secret_name == f"bc-conn-{name}-secret"
    assert (
        created.secret_version != rotated.secret_version
    )  # processes rebuild the connection's token manager
    assert [(c.name, c.from_settings) for c in listed][1:] == [(name, False)]
    assert listed[0].from_settings
    async with httpx.AsyncClient(headers=app_host.headers(), timeout=30) as http:
        raw = await http.get(f"{app_host.base_url}/api/connections/{name}")
    audit.table_bodies.append(raw.text)  # the reply is checked like a row
    await audit.add_rows(tables["registry"])
    assert any(name in body for body in audit.table_bodies)


def test_a_refused_field_is_named_with_its_fix_and_the_settings_connection_is_read_only(
    app_host: AppHost, audit: Audit
) -> None:
    audit.extra_secrets.add(SECRET)
    url = f"{app_host.base_url}/api/connections"
    bad = httpx.put(
        f"{url}/fab-bad",
        json={**spec(), "clientId": "nope", "clientSecret": SECRET},
        headers=app_host.headers(),
    )
    assert bad.status_code == 400
    assert [f["field"] for f in bad.json()["fields"]] == ["clientId"]
    assert SECRET not in bad.text
    settings_name = app_host.env["BC_CONNECTION_NAME"]
    owned = httpx.put(f"{url}/{settings_name}", json=spec(), headers=app_host.headers())
    assert owned.status_code == 409
    assert "BC_CONNECTION_NAME" in owned.json()["message"]
    assert httpx.get(url, timeout=30).status_code == 401  # function key


async def test_delete_disables_while_jobs_are_pending_then_removes_row_and_secrets(
    app_host: AppHost, sandbox: Sandbox, audit: Audit, tables: dict[str, TableClient]
) -> None:
    audit.extra_secrets.add(SECRET)
    name = f"fab-{uuid.uuid4().hex[:8]}"
    async with AsyncConnectionsClient(app_host.base_url, app_host.function_key) as admin:
        await admin.put_connection(name, spec(), client_secret=SECRET)
        await tables["jobs"].create_table()
        job = {"PartitionKey": f"job-{name}", "RowKey": "job", "State": "received", "Connection": name}
        await tables["jobs"].upsert_entity(job)
        disabled = await admin.delete_connection(name)
        assert (disabled.deleted, disabled.pending_jobs) == (False, 1)
        kept = await admin.connection(name)
        assert kept is not None
        assert kept.disabled_reason == "deleted by an admin while 1 jobs were pending"
        await tables["jobs"].upsert_entity({**job, "State": "rejected"})
        assert (await admin.delete_connection(name)).deleted
        assert await admin.connection(name) is None
        assert sandbox.vault.peek(f"bc-conn-{name}-secret") is None
        again = await admin.put_connection(
            name, spec(), client_secret=SECRET
        )  # a soft-deleted name: recovered
    assert again.enabled
    assert sandbox.vault.peek(f"bc-conn-{name}-secret") == SECRET


def test_the_cli_lists_and_registers_with_the_secret_from_stdin(
    app_host: AppHost, sandbox: Sandbox, audit: Audit
) -> None:
    audit.extra_secrets.add(SECRET)
    name = f"fab-{uuid.uuid4().hex[:8]}"
    env = {"BCJOBS_API_URL": app_host.base_url, "BCJOBS_FUNCTION_KEY": app_host.function_key}
    args = [
        "connections",
        "put",
        name,
        "--tenant-id",
        "fabrikam.onmicrosoft.com",
        "--environment",
        "production",
    ]
    put = CliRunner().invoke(
        cli, [*args, "--client-id", APP, "--client-secret-stdin", "--json"], input=f"{SECRET}\n", env=env
    )
    assert put.exit_code == 0, put.output
    assert SECRET not in put.output
    assert sandbox.vault.peek(f"bc-conn-{name}-secret") == SECRET
    listed = CliRunner().invoke(cli, ["connections", "list", "--json"], env=env)
    assert name in [c["name"] for c in json.loads(listed.output)]
    table = CliRunner().invoke(cli, ["connections", "list"], env={**env, "COLUMNS": "160"})
    assert name in table.output
    missing = CliRunner().invoke(cli, ["connections", "show", "nobody-here"], env=env)
    assert missing.exit_code == 4


def test_the_jobs_front_door_refuses_an_unknown_connection_and_filters_by_one(
    app_host: AppHost, audit: Audit
) -> None:
    del audit
    jobs = f"{app_host.base_url}/api/jobs"
    job = {"operation": "list", "entitySet": "customers", "connection": "nobody-here"}
    refused = httpx.post(jobs, json=job, headers=app_host.headers(), timeout=30)
    assert refused.status_code == 400
    [problem] = refused.json()["rejected"][0]["problems"]
    assert problem["path"] == "connection"
    assert "bcjobs connections list" in problem["expected"]
    listed = httpx.get(jobs, params={"connection": "nobody-here"}, headers=app_host.headers(), timeout=30)
    assert listed.status_code == 200
    assert listed.json()["jobs"] == []
