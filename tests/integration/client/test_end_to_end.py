"""End to end: function_app.py under devhost processes what the client, the CLI and the HTTP front door send,
against Azurite and the sandbox's BC; `wait` returns the terminal state and `results()` hands each result out once."""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import function_app
from bcjobs import JobState
from bcjobs.cli import ExitCode, app
from bcjobs.client import JobsClient
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from sandbox import Sandbox
from shared.settings import get_settings
from tests.integration.client.conftest import Storage

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def app_env(sandbox_env: dict[str, str], storage: Storage) -> dict[str, str]:
    """Client credentials on the sandbox, the test's tables, fast retries."""
    return {
        **sandbox_env,
        "JobsStorage": storage.connection_string,
        "BC_TABLE_PREFIX": storage.prefix,
        "BC_AUTH_MODE": "client_credentials",
        "BC_CONNECTION_NAME": f"c{storage.prefix}",
        "BC_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *",
        "BC_JOB_BACKOFF_BASE_SECONDS": "0.2",
        "BC_JOB_BACKOFF_CAP_SECONDS": "1",
        "DEVHOST_FUNCTION_KEY": secrets.token_urlsafe(16),
        "DEVHOST_MASTER_KEY": secrets.token_urlsafe(16),
    }


@pytest.fixture
def running_app(app_env: dict[str, str]) -> Iterator[str]:
    """function_app.py under devhost with the repo's host.json; its base URL."""
    get_settings.cache_clear()
    host = DevHost(
        function_app.app,
        app_env,
        host_config=load_host_config(ROOT / "host.json"),
        shutdown_grace=10,
    )
    host.start()
    try:
        yield host.base_url
    finally:
        host.stop()
        get_settings.cache_clear()


@pytest.fixture
def client(storage: Storage) -> Iterator[JobsClient]:
    with JobsClient.from_connection_string(storage.connection_string, table_prefix=storage.prefix) as built:
        yield built


def every_operation(sandbox: Sandbox) -> list[dict[str, Any]]:
    """One independent job per operation except `action` (it needs a record created first)."""
    customers, items, vendors = (sandbox.bc.records(name) for name in ("customers", "items", "vendors"))
    return [
        {"jobId": "e2e-get", "operation": "get", "entitySet": "customers", "id": customers[0]["id"]},
        {"jobId": "e2e-list", "operation": "list", "entitySet": "items", "query": {"top": 2}},
        {
            "jobId": "e2e-create",
            "operation": "create",
            "entitySet": "customers",
            "data": {"displayName": "E2E Ltd"},
        },
        {
            "jobId": "e2e-update",
            "operation": "update",
            "entitySet": "customers",
            "id": customers[1]["id"],
            "data": {"phoneNumber": "555"},
        },
        {
            "jobId": "e2e-upsert",
            "operation": "upsert",
            "entitySet": "items",
            "naturalKey": {"number": "E2E-1"},
            "data": {"displayName": "Desk"},
        },
        {"jobId": "e2e-delete", "operation": "delete", "entitySet": "vendors", "id": vendors[0]["id"]},
        {
            "jobId": "e2e-batch",
            "operation": "batch",
            "operations": [
                {"operation": "get", "entitySet": "items", "id": items[0]["id"]},
                {
                    "operation": "create",
                    "entitySet": "items",
                    "data": {"number": "E2E-B", "displayName": "x"},
                },
            ],
        },
    ]


def test_the_client_runs_every_operation_and_results_hand_each_out_once(
    running_app: str, client: JobsClient, sandbox: Sandbox
) -> None:
    """enqueue_many + wait: all succeed; the action on a created invoice too; results() returns each once."""
    jobs = every_operation(sandbox)
    sent = client.enqueue_many(jobs)
    assert sent.ok
    reports = {handle.job_id: client.wait(handle.job_id, timeout=60, poll=0.1) for handle in sent.handles}
    assert {job_id: r.state for job_id, r in reports.items()} == {
        job["jobId"]: JobState.SUCCEEDED for job in jobs
    }
    customer, item = sandbox.bc.records("customers")[2], sandbox.bc.records("items")[0]
    invoice = client.wait(
        client.enqueue(
            {
                "operation": "create",
                "entitySet": "salesInvoices",
                "data": {
                    "customerNumber": customer["number"],
                    "salesInvoiceLines": [
                        {"lineType": "Item", "lineObjectNumber": item["number"], "quantity": 1}
                    ],
                },
            }
        ).job_id,
        timeout=60,
        poll=0.1,
    )
    assert invoice.result is not None
    assert invoice.result.id is not None
    post = client.enqueue(
        {"operation": "action", "entitySet": "salesInvoices", "id": invoice.result.id, "action": "post"}
    )
    posted = client.wait(post.job_id, timeout=60, poll=0.1)
    assert posted.state is JobState.SUCCEEDED, posted.error
    details = client.get(post.job_id, interactions=True)
    assert details is not None
    assert details.interactions
    assert details.interactions[-1].method == "POST"
    with client.results() as stream:
        handed_out = Counter(item.report.job_id for item in stream)
    assert handed_out == Counter([*reports, invoice.job_id, post.job_id])


def test_the_cli_enqueues_waits_shows_and_reads_results(
    running_app: str, storage: Storage, sandbox: Sandbox, tmp_path: Path
) -> None:
    """bcjobs enqueue a JSONL file, wait for each job (exit 0), show one, then results --json has each once."""
    jobs = every_operation(sandbox)[:3]
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(job) + "\n" for job in jobs), encoding="utf-8")
    runner = CliRunner()
    env = {"JobsStorage": storage.connection_string, "BC_TABLE_PREFIX": storage.prefix, "COLUMNS": "160"}
    enqueued = runner.invoke(app, ["enqueue", str(path), "--json"], env=env)
    assert enqueued.exit_code == ExitCode.OK, enqueued.output
    for job in jobs:
        waited = runner.invoke(
            app, ["wait", job["jobId"], "--timeout", "60", "--poll", "0.1", "--json"], env=env
        )
        assert waited.exit_code == ExitCode.OK, waited.output
        assert json.loads(waited.stdout)["state"] == "succeeded"
    shown = runner.invoke(app, ["show", "e2e-create"], env=env)
    assert "succeeded" in shown.stdout
    assert "BC requests" in shown.stdout
    results = runner.invoke(app, ["results", "--json"], env=env)
    assert sorted(json.loads(line)["jobId"] for line in results.stdout.splitlines()) == sorted(
        j["jobId"] for j in jobs
    )


def test_a_job_posted_to_the_front_door_is_processed_and_its_location_answers(
    running_app: str, app_env: dict[str, str], client: JobsClient, sandbox: Sandbox
) -> None:
    """POST /api/jobs → 202 + Location; the client's wait sees it succeed; the Location shows the same."""
    key = {"code": app_env["DEVHOST_FUNCTION_KEY"]}
    job = {"operation": "get", "entitySet": "items", "id": sandbox.bc.records("items")[0]["id"]}
    accepted = httpx.post(f"{running_app}/api/jobs", json=job, params=key, timeout=30)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["jobs"][0]["jobId"]
    report = client.wait(job_id, timeout=60, poll=0.1)
    assert report.state is JobState.SUCCEEDED
    status = httpx.get(accepted.headers["location"], params=key, timeout=30)
    assert (status.status_code, status.json()["state"]) == (200, "succeeded")
    listed = httpx.get(f"{running_app}/api/jobs", params={**key, "state": "succeeded"}, timeout=30)
    assert job_id in [j["jobId"] for j in listed.json()["jobs"]]


def test_the_largest_batch_is_read_whole_through_items_and_the_cli(
    running_app: str, client: JobsClient, storage: Storage
) -> None:
    """690 creates (the most one message carries): the row says itemsTruncated; items() and
    `show --all-items` give every outcome the product kept, in operation order."""
    create = {"operation": "create", "entitySet": "items", "data": {"displayName": "x"}}
    handle = client.enqueue({"jobId": "e2e-big", "operation": "batch", "operations": [create] * 690})
    report = client.wait(handle.job_id, timeout=120, poll=0.2)
    assert report.state is JobState.SUCCEEDED, report.error
    assert report.result is not None
    assert (report.result.items_truncated, report.result.items_succeeded, report.result.items) == (
        True,
        690,
        [],
    )
    items = client.items(report)
    assert [(item.index, item.status) for item in items] == [(index, 201) for index in range(690)]
    assert all(item.id for item in items)
    env = {"JobsStorage": storage.connection_string, "BC_TABLE_PREFIX": storage.prefix}
    shown = CliRunner().invoke(app, ["show", "e2e-big", "--all-items", "--json"], env=env)
    assert shown.exit_code == ExitCode.OK, shown.output
    assert json.loads(shown.stdout)["result"]["items"] == [
        item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in items
    ]
