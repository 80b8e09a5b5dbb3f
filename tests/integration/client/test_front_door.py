"""The HTTP front door through devhost running function_app.py (the queue triggers disabled, so the test sees
the queue as the app left it): POST /api/jobs and GET /api/jobs with the function key, against Azurite."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import function_app
from bcjobs import JOBS_QUEUE, JobState, decode
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from localworld.ports import free_port
from shared.settings import get_settings
from tests.integration.client.conftest import Storage

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
GUID = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
GOOD = {"operation": "get", "entitySet": "customers", "id": GUID}


@dataclass
class FrontDoor:
    base_url: str
    key: str

    def post(self, body: Any, *, key: bool = True, **params: str) -> httpx.Response:
        query = {**params, **({"code": self.key} if key else {})}
        return httpx.post(f"{self.base_url}/api/jobs", json=body, params=query, timeout=30)

    def get(self, params: dict[str, str] | None = None, *, key: bool = True) -> httpx.Response:
        query = {**(params or {}), **({"code": self.key} if key else {})}
        return httpx.get(f"{self.base_url}/api/jobs", params=query, timeout=30)


def app_settings(storage: Storage, connection_string: str | None = None) -> dict[str, str]:
    return {
        "JobsStorage": connection_string or storage.connection_string,
        "BC_TABLE_PREFIX": storage.prefix,
        "BC_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *",
        "AzureWebJobs.jobs_process.Disabled": "true",
        "AzureWebJobs.jobs_poison.Disabled": "true",
        "AzureWebJobs.token_refresh.Disabled": "true",
        "DEVHOST_FUNCTION_KEY": secrets.token_urlsafe(16),
        "DEVHOST_MASTER_KEY": secrets.token_urlsafe(16),
    }


@pytest.fixture
def start_app() -> Iterator[Any]:
    """Start function_app.py under devhost with the given settings (the app's settings cache cleared)."""
    hosts: list[DevHost] = []

    def start(settings: dict[str, str]) -> FrontDoor:
        get_settings.cache_clear()
        host = DevHost(
            function_app.app,
            settings,
            host_config=load_host_config(ROOT / "host.json"),
            shutdown_grace=5,
        )
        hosts.append(host.start())
        return FrontDoor(host.base_url, settings["DEVHOST_FUNCTION_KEY"])

    yield start
    for host in hosts:
        host.stop()
    get_settings.cache_clear()


@pytest.fixture
def front_door(start_app: Any, storage: Storage) -> FrontDoor:
    door: FrontDoor = start_app(app_settings(storage))
    return door


def test_one_job_is_accepted_with_a_location_to_its_status_route(
    front_door: FrontDoor, storage: Storage
) -> None:
    """202 + Location (GET /api/jobs/{jobId}) + Retry-After; the queue text decodes to the job with that id."""
    response = front_door.post(GOOD)
    assert response.status_code == 202, response.text
    [accepted] = response.json()["jobs"]
    assert response.headers["location"] == f"{front_door.base_url}/api/jobs/{accepted['jobId']}"
    assert int(response.headers["retry-after"]) > 0
    [text] = storage.drain(JOBS_QUEUE)
    job = decode(text)
    assert job.job_id == accepted["jobId"]
    assert str(job.id) == GUID
    assert front_door.key not in response.headers["location"]


def test_a_list_is_accepted_job_by_job_with_each_status_url(front_door: FrontDoor, storage: Storage) -> None:
    """A list of jobs: every id (given or assigned) with its status URL; all on the queue."""
    response = front_door.post([{**GOOD, "jobId": "fd-1"}, GOOD, {"operation": "list", "entitySet": "items"}])
    assert response.status_code == 202
    jobs = response.json()["jobs"]
    assert [job["index"] for job in jobs] == [0, 1, 2]
    assert jobs[0]["jobId"] == "fd-1"
    assert all(job["location"].endswith(f"/api/jobs/{job['jobId']}") for job in jobs)
    assert sorted(decode(t).job_id or "" for t in storage.drain(JOBS_QUEUE)) == sorted(
        j["jobId"] for j in jobs
    )


def test_bad_jobs_answer_400_naming_each_field_and_nothing_is_enqueued(
    front_door: FrontDoor, storage: Storage
) -> None:
    """Index and field of each bad job; the good one stays off the queue unless partial=true."""
    body = [GOOD, {**GOOD, "id": "x"}, {"operation": "update", "entitySet": "items", "id": GUID}]
    refused = front_door.post(body)
    assert refused.status_code == 400
    rejected = refused.json()["rejected"]
    assert [(r["index"], r["problems"][0]["path"]) for r in rejected] == [(1, "id"), (2, "")]
    assert "data" in rejected[1]["problems"][0]["expected"]
    assert storage.count(JOBS_QUEUE) == 0
    partial = front_door.post(body, partial="true")
    assert partial.status_code == 202
    assert [job["index"] for job in partial.json()["jobs"]] == [0]
    assert [r["index"] for r in partial.json()["rejected"]] == [1, 2]
    assert storage.count(JOBS_QUEUE) == 1


def test_without_the_function_key_the_routes_answer_401(front_door: FrontDoor, storage: Storage) -> None:
    """POST and GET /api/jobs are function-key routes."""
    assert front_door.post(GOOD, key=False).status_code == 401
    assert front_door.get(key=False).status_code == 401
    assert storage.count(JOBS_QUEUE) == 0


def test_get_lists_jobs_by_state_and_since_a_page_at_a_time(front_door: FrontDoor, storage: Storage) -> None:
    """pageSize and continuationToken walk every row; state and since filter."""
    now = datetime.now(UTC)
    for i in range(5):
        storage.put_job(
            f"p-{i}", JobState.FAILED if i < 2 else JobState.SUCCEEDED, updated_at=now - timedelta(hours=i)
        )
    seen: list[str] = []
    params = {"pageSize": "2"}
    for _ in range(10):
        page = front_door.get(params)
        assert page.status_code == 200
        seen += [job["jobId"] for job in page.json()["jobs"]]
        token = page.json().get("continuationToken")
        if token is None:
            break
        params = {"pageSize": "2", "continuationToken": token}
    assert seen == [f"p-{i}" for i in range(5)]
    failed = front_door.get({"state": "failed", "since": (now - timedelta(minutes=30)).isoformat()})
    assert [job["jobId"] for job in failed.json()["jobs"]] == ["p-0"]
    assert front_door.get({"state": "sleeping"}).status_code == 400


def test_storage_down_answers_503_with_retry_after(start_app: Any, storage: Storage) -> None:
    """Queue and table unreachable: 503, Retry-After and a JSON body without storage details."""
    dead_port = free_port()
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={storage.connection_string.split('AccountKey=')[1].split(';')[0]};"
        f"QueueEndpoint=http://127.0.0.1:{dead_port}/devstoreaccount1;"
        f"TableEndpoint=http://127.0.0.1:{dead_port}/devstoreaccount1;"
    )
    door: FrontDoor = start_app(app_settings(storage, dead))
    for response in (door.post(GOOD), door.get()):
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) > 0
        body = response.json()
        assert body["error"] == "storage_unavailable"
        assert str(dead_port) not in response.text
