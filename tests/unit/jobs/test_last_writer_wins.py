"""update/upsert/delete without the job's etag: last writer wins, so a concurrent change cannot refuse the write."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from bcjobs import Job, ResultSummary
from shared.bc import EntityChangedError
from shared.clock import SystemClock
from shared.jobs.audit import AuditBuffer
from shared.jobs.outcomes import error_info
from shared.jobs.runner import Budget, EarlierRuns, JobRunner
from tests.unit.bc.fakes import bc_error, json_response, make_client

CUSTOMER = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"


class BusyBc:
    """BC with one customer that another writer changes right after every read of it (a new ETag each time), and
    that checks If-Match as BC does: `*` matches any version, an ETag only the current one (else 409)."""

    def __init__(self) -> None:
        self.version = 1
        self.record: dict[str, object] = {"id": CUSTOMER, "number": "C-1", "displayName": "Old"}
        self.if_match: list[str | None] = []

    def etag(self) -> str:
        return f'W/"{self.version}"'

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            found = {**self.record, "@odata.etag": self.etag()}
            self.version += 1  # the other writer, between our read and our write
            body = {"value": [found]} if request.url.path.endswith("customers") else found
            return json_response(200, body)
        self.if_match.append(request.headers.get("if-match"))
        if request.headers.get("if-match") not in ("*", self.etag()):
            return bc_error(409, "Request_EntityChanged", "Another user has already changed the record.")
        if request.method == "DELETE":
            return httpx.Response(204)
        self.record.update(json.loads(request.content))
        self.version += 1
        return json_response(200, {**self.record, "@odata.etag": self.etag()})


def runner(bc: Callable[[httpx.Request], httpx.Response]) -> JobRunner:
    return JobRunner(make_client(bc).client)


async def first_run(bc: Callable[[httpx.Request], httpx.Response], work: Job) -> ResultSummary:
    """The job's first run: nothing left by earlier runs, no time limit, an empty audit trail."""
    return await runner(bc).run(work, EarlierRuns(), Budget(), AuditBuffer(1, SystemClock()))


def job(**fields: object) -> Job:
    return Job.model_validate({"entitySet": "customers", **fields})


@pytest.mark.parametrize(
    "fields",
    [
        {"operation": "update", "id": CUSTOMER, "data": {"displayName": "New"}},
        {"operation": "upsert", "naturalKey": {"number": "C-1"}, "data": {"displayName": "New"}},
        {"operation": "delete", "id": CUSTOMER},
    ],
    ids=["update", "upsert", "delete"],
)
async def test_a_write_without_etag_sends_if_match_star_and_survives_a_concurrent_change(
    fields: dict[str, object],
) -> None:
    """The record changes after every read, yet the write goes through with `If-Match: *`."""
    bc = BusyBc()
    await first_run(bc, job(**fields))
    assert bc.if_match == ["*"]


async def test_an_update_with_a_stale_etag_still_fails_bc_etag_changed() -> None:
    """The job's own ETag goes to If-Match; BC's refusal of a stale one stays bc_etag_changed."""
    bc = BusyBc()
    stale = job(operation="update", id=CUSTOMER, data={"displayName": "New"}, etag='W/"0"')
    with pytest.raises(EntityChangedError) as refused:
        await first_run(bc, stale)
    assert bc.if_match == ['W/"0"']
    assert error_info(refused.value).code == "bc_etag_changed"
