"""The jobs front door without storage: POST/GET /api/jobs (validation, the 400/413 bodies, partial acceptance,
503) and GET /api/jobs/{jobId} (400/404/503), on a fake backend."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from bcjobs import ItemOutcome, JobReport, JobState
from bcjobs.common import JobDetails, JobHandle, JobPage
from bcjobs.errors import JobsStorageError
from bcjobs.submit import PreparedJob
from shared.connections import (
    Connection,
    ConnectionDisabledError,
    RegistryUnavailableError,
    UnknownConnectionError,
)
from shared.jobs.front_door import (
    ConnectionLookup,
    Connections,
    JobsBackend,
    job_status,
    list_jobs,
    status_url,
    submit_jobs,
)

BASE = "https://bc-app.example"
GOOD = {"operation": "list", "entitySet": "customers"}
BAD = {"jobId": "bad-1", "operation": "get", "entitySet": "customers", "id": "nope"}


class FakeBackend:
    """Records what is sent; fails the jobs whose ids are in `failing`."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.sent: list[str] = []
        self.failing = failing
        self.listed: list[tuple[object, ...]] = []

    async def send(self, prepared: PreparedJob) -> JobHandle:
        if prepared.job_id in self.failing:
            raise JobsStorageError("sending failed (503, ServerBusy)", status=503)
        self.sent.append(prepared.job_id)
        return JobHandle(prepared.job_id, "m")

    async def list_page(
        self,
        state: JobState | str | None = None,
        since: datetime | None = None,
        *,
        page_size: int = 100,
        continuation_token: str | None = None,
        connection: str | None = None,
    ) -> JobPage:
        self.listed.append((state, since, page_size, continuation_token, connection))
        if continuation_token == "bad":
            raise ValueError("not a continuation token of this API")
        return JobPage([JobReport(job_id="j-1", state=JobState.RUNNING)], "next-page")

    async def get(self, job_id: str, *, interactions: bool = False) -> JobDetails | None:
        if job_id in self.failing:
            raise JobsStorageError("reading failed (503, ServerBusy)", status=503)
        if job_id != "j-1":
            return None
        return JobDetails(job_id="j-1", state=JobState.RUNNING, interactions=[] if interactions else None)

    async def items(self, job: str | JobReport) -> list[ItemOutcome]:
        return []


def backend_of(fake: FakeBackend):
    async def get() -> JobsBackend:
        return fake

    return get


async def test_one_job_is_accepted_with_location_and_retry_after() -> None:
    """202, the job's id (assigned), its status URL in Location and in the body, Retry-After."""
    fake = FakeBackend()
    reply = await submit_jobs(
        json.dumps(GOOD).encode(), partial=False, base_url=BASE, backend=backend_of(fake)
    )
    assert reply.status == 202
    [job] = json.loads(reply.body)["jobs"]
    assert job["jobId"] == fake.sent[0]
    assert reply.headers["Location"] == job["location"] == f"{BASE}/api/jobs/{job['jobId']}"
    assert reply.headers["Retry-After"] == "5"


async def test_a_bad_job_in_a_list_sends_nothing_and_names_its_index_and_field() -> None:
    """Without partial=true one bad job keeps the whole list off the queue."""
    fake = FakeBackend()
    body = json.dumps([GOOD, BAD, GOOD]).encode()
    reply = await submit_jobs(body, partial=False, base_url=BASE, backend=backend_of(fake))
    assert reply.status == 400
    assert json.loads(reply.body)["rejected"] == [
        {
            "index": 1,
            "jobId": "bad-1",
            "problems": [{"path": "id", "expected": "a GUID such as 6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"}],
        }
    ]
    assert "partial=true" in json.loads(reply.body)["message"]
    assert fake.sent == []


async def test_partial_true_sends_the_good_jobs_and_lists_the_bad_ones() -> None:
    """With partial=true: 202 for the good ones (no single Location for a list), the bad ones under rejected."""
    fake = FakeBackend()
    body = json.dumps([GOOD, BAD, GOOD]).encode()
    reply = await submit_jobs(body, partial=True, base_url=BASE, backend=backend_of(fake))
    assert reply.status == 202
    assert [job["index"] for job in json.loads(reply.body)["jobs"]] == [0, 2]
    assert [r["index"] for r in json.loads(reply.body)["rejected"]] == [1]
    assert len(fake.sent) == 2
    assert "Location" not in reply.headers


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "invalid_body"),
        (b"{not json", 400, "invalid_body"),
        (b'"a job"', 400, "invalid_body"),
        (b"[]", 400, "invalid_body"),
        (json.dumps([GOOD] * 101).encode(), 400, "too_many_jobs"),
        (b" " * 10_000_000, 413, "body_too_large"),
    ],
)
async def test_bodies_that_are_not_jobs_are_refused_before_validation(
    body: bytes, status: int, code: str
) -> None:
    """Empty, not JSON, not an object or array, an empty array, over 100 jobs, too large."""
    fake = FakeBackend()
    reply = await submit_jobs(body, partial=False, base_url=BASE, backend=backend_of(fake))
    assert (reply.status, json.loads(reply.body)["error"]) == (status, code)
    assert fake.sent == []


async def test_a_storage_failure_answers_503_with_what_was_and_was_not_enqueued() -> None:
    """503 + Retry-After; the body says which jobs made it (so a retry can skip them) and never storage details."""
    fake = FakeBackend(failing=frozenset({"b"}))
    body = json.dumps([{**GOOD, "jobId": "a"}, {**GOOD, "jobId": "b"}]).encode()
    reply = await submit_jobs(body, partial=False, base_url=BASE, backend=backend_of(fake))
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "10"
    assert [job["jobId"] for job in json.loads(reply.body)["jobs"]] == ["a"]
    assert [job["jobId"] for job in json.loads(reply.body)["notEnqueued"]] == ["b"]
    assert "ServerBusy" not in reply.body


async def test_list_passes_the_filters_and_links_the_next_page() -> None:
    """state, since, pageSize and the token reach the backend; nextLink carries them (never the key)."""
    fake = FakeBackend()
    params = {"state": "running", "since": "2026-12-01T00:00:00Z", "pageSize": "5", "code": "KEY"}
    reply = await list_jobs(params, base_url=BASE, backend=backend_of(fake))
    assert reply.status == 200
    assert json.loads(reply.body)["jobs"] == [
        {"schemaVersion": 1, "jobId": "j-1", "state": "running", "attempts": 0}
    ]
    assert json.loads(reply.body)["continuationToken"] == "next-page"
    assert json.loads(reply.body)["nextLink"].startswith(f"{BASE}/api/jobs?state=running&since=")
    assert "KEY" not in json.loads(reply.body)["nextLink"]
    state, since, size, token, connection = fake.listed[0]
    assert (state, size, token, connection) == (JobState.RUNNING, 5, None, None)
    assert since is not None


async def test_list_filters_by_connection_and_keeps_it_in_the_next_link() -> None:
    fake = FakeBackend()
    reply = await list_jobs({"connection": "fabrikam"}, base_url=BASE, backend=backend_of(fake))
    assert fake.listed[0][4] == "fabrikam"
    assert "connection=fabrikam" in json.loads(reply.body)["nextLink"]


class FakeConnections:
    """ConnectionLookup: `fabrikam` may call one custom API, `paused` is disabled, anything else is unknown."""

    def __init__(self, failing: bool = False) -> None:
        self.failing = failing

    async def resolve(self, name: str | None) -> Connection:
        if self.failing:
            raise RegistryUnavailableError("be read", "ServiceRequestError")
        if name == "paused":
            raise ConnectionDisabledError(name, "moved to another tenant")
        if name not in {None, "fabrikam"}:
            raise UnknownConnectionError(name or "")
        return Connection(
            name=name or "default",
            tenant_id="fabrikam.onmicrosoft.com",
            environment="production",
            client_id="22222222-2222-2222-2222-222222222222",
            custom_apis=("contoso/app/v1.0",),
        )


def connections_of(fake: FakeConnections) -> Connections:
    async def get() -> ConnectionLookup:
        return fake

    return get


async def test_a_job_naming_an_unknown_or_disabled_connection_is_refused_at_the_door() -> None:
    """400 naming `connection` and the next step; the job on a known connection is sent with partial=true."""
    fake = FakeBackend()
    jobs = [
        {**GOOD, "connection": "fabrikam"},
        {**GOOD, "connection": "nobody"},
        {**GOOD, "connection": "paused"},
        {**GOOD, "connection": "fabrikam", "api": {"publisher": "other", "group": "x", "version": "v1.0"}},
    ]
    reply = await submit_jobs(
        json.dumps(jobs).encode(),
        partial=True,
        base_url=BASE,
        backend=backend_of(fake),
        connections=connections_of(FakeConnections()),
    )
    assert reply.status == 202
    body = json.loads(reply.body)
    assert [job["index"] for job in body["jobs"]] == [0]
    rejected = {r["index"]: r["problems"][0] for r in body["rejected"]}
    assert set(rejected) == {1, 2, 3}
    assert all(problem["path"] == "connection" for problem in rejected.values())
    assert "bcjobs connections list" in rejected[1]["expected"]
    assert "moved to another tenant" in rejected[2]["expected"]
    assert "customApis" in rejected[3]["expected"]


async def test_jobs_are_sent_when_the_registry_cannot_be_read_the_processor_decides() -> None:
    fake = FakeBackend()
    reply = await submit_jobs(
        json.dumps({**GOOD, "connection": "fabrikam"}).encode(),
        partial=False,
        base_url=BASE,
        backend=backend_of(fake),
        connections=connections_of(FakeConnections(failing=True)),
    )
    assert reply.status == 202
    assert len(fake.sent) == 1


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"state": "sleeping"}, "state"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-12-01T00:00:00"}, "since"),
        ({"pageSize": "0"}, "pageSize"),
        ({"pageSize": "many"}, "pageSize"),
        ({"connection": "Not A Name"}, "connection"),
        ({"continuationToken": "bad"}, "continuationToken"),
    ],
)
async def test_bad_list_parameters_answer_400_naming_the_parameter(
    params: dict[str, str], named: str
) -> None:
    """Each bad query parameter is named in the 400 body."""
    reply = await list_jobs(params, base_url=BASE, backend=backend_of(FakeBackend()))
    assert reply.status == 400
    assert json.loads(reply.body)["message"].startswith(named)


def test_status_urls_escape_the_job_id() -> None:
    """A job id with `:` stays one path segment."""
    assert status_url(BASE + "/", "crm:1") == f"{BASE}/api/jobs/crm%3A1"


async def test_a_known_job_answers_200_with_its_report_and_interactions() -> None:
    """The report as wire JSON (camelCase, unset fields left out) plus its interactions."""
    reply = await job_status("j-1", backend=backend_of(FakeBackend()))
    assert reply.status == 200
    assert json.loads(reply.body) == {
        "schemaVersion": 1,
        "jobId": "j-1",
        "state": "running",
        "attempts": 0,
        "interactions": [],
    }


@pytest.mark.parametrize(
    ("job_id", "status", "code"),
    [("nobody", 404, "not_found"), ("", 400, "invalid_job_id"), ("a/b", 400, "invalid_job_id")],
)
async def test_an_unknown_or_impossible_job_id_answers_with_a_json_reason(
    job_id: str, status: int, code: str
) -> None:
    """404 for an id no row has (yet), 400 for one no job can have."""
    reply = await job_status(job_id, backend=backend_of(FakeBackend()))
    assert (reply.status, json.loads(reply.body)["error"]) == (status, code)


async def test_a_storage_failure_of_the_status_route_answers_503_with_retry_after() -> None:
    """503, Retry-After 5 and a reference; never the storage details."""
    reply = await job_status("down", backend=backend_of(FakeBackend(failing=frozenset({"down"}))))
    assert (reply.status, reply.headers["Retry-After"]) == (503, "5")
    assert json.loads(reply.body)["error"] == "storage_unavailable"
    assert json.loads(reply.body)["reference"]
    assert "ServerBusy" not in reply.body
