"""Sandbox BC JSON $batch with httpx: operations, snapshot isolation (all or nothing), the 100-operation cap."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox import Sandbox

pytestmark = pytest.mark.integration


def create(number: str, company_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A batch operation creating a customer."""
    return {
        "method": "POST",
        "id": number,
        "url": f"companies({company_id})/customers",
        "headers": {"Content-Type": "application/json"},
        "body": body or {"number": number, "displayName": f"Batch {number}"},
    }


async def test_batch_runs_operations_and_reports_each(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str
) -> None:
    """Without isolation every operation runs; the outer status is 200 and failures stay per operation."""
    company = sandbox.env["BC_COMPANY_ID"]
    operations = [
        create("B1", company),
        create("B2", company, {"displayName": "x" * 200}),
        create("B3", company),
    ]
    response = await bc.post(f"{api_root}/$batch", json={"requests": operations})
    assert response.status_code == 200
    statuses = {r["id"]: r["status"] for r in response.json()["responses"]}
    assert statuses == {"B1": 201, "B2": 400, "B3": 201}
    numbers = {c["number"] for c in sandbox.bc.records("customers")}
    assert {"B1", "B3"} <= numbers


async def test_snapshot_batch_is_all_or_nothing(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str
) -> None:
    """With Isolation: snapshot one failing operation rolls back the others, which still report their own 201."""
    company = sandbox.env["BC_COMPANY_ID"]
    before = len(sandbox.bc.records("customers"))
    operations = [
        create("S1", company),
        create("S2", company),
        create("S3", company, {"displayName": "x" * 200}),
    ]
    response = await bc.post(
        f"{api_root}/$batch", json={"requests": operations}, headers={"Isolation": "snapshot"}
    )
    assert response.status_code == 200
    answered = {r["id"]: r for r in response.json()["responses"]}
    assert {key: r["status"] for key, r in answered.items()} == {"S1": 201, "S2": 201, "S3": 400}
    assert answered["S1"]["body"]["number"] == "S1"  # the body of a record that no longer exists
    assert answered["S3"]["body"]["error"]["code"].startswith("Application_")
    assert len(sandbox.bc.records("customers")) == before
    ok = await bc.post(
        f"{api_root}/$batch", json={"requests": operations[:2]}, headers={"Isolation": "snapshot"}
    )
    assert [r["status"] for r in ok.json()["responses"]] == [201, 201]
    assert len(sandbox.bc.records("customers")) == before + 2


async def test_snapshot_batch_stops_at_the_failing_operation(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str
) -> None:
    """Operations after the failing one are not run and, by default, get no response at all."""
    company = sandbox.env["BC_COMPANY_ID"]
    operations = [
        create("T1", company),
        create("T2", company, {"displayName": "x" * 200}),
        create("T3", company),
    ]
    response = await bc.post(
        f"{api_root}/$batch", json={"requests": operations}, headers={"Isolation": "snapshot"}
    )
    assert [(r["id"], r["status"]) for r in response.json()["responses"]] == [("T1", 201), ("T2", 400)]
    numbers = {c["number"] for c in sandbox.bc.records("customers")}
    assert not {"T1", "T3"} & numbers


async def test_batch_inner_patch_needs_if_match_and_uses_company_header(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str
) -> None:
    """Inner requests carry their own headers: a company-relative URL with a Company header, If-Match on PATCH."""
    item = sandbox.bc.records("items")[0]
    operations = [
        {
            "method": "PATCH",
            "id": "1",
            "url": f"items({item['id']})",
            "headers": {"Company": sandbox.env["BC_COMPANY_NAME"], "If-Match": "*"},
            "body": {"displayName": "Renamed"},
        },
        {
            "method": "PATCH",
            "id": "2",
            "url": f"items({item['id']})",
            "headers": {"Company": sandbox.env["BC_COMPANY_NAME"]},
            "body": {"displayName": "Again"},
        },
        {
            "method": "GET",
            "id": "3",
            "url": f"companies({sandbox.env['BC_COMPANY_ID']})/items({item['id']})?$select=displayName",
        },
    ]
    responses = (await bc.post(f"{api_root}/$batch", json={"requests": operations})).json()["responses"]
    assert [r["status"] for r in responses] == [200, 400, 200]
    assert responses[1]["body"]["error"]["code"] == "BadRequest_InvalidToken"
    assert responses[2]["body"]["displayName"] == "Renamed"


async def test_more_than_100_operations_are_refused(
    sandbox: Sandbox, bc: httpx.AsyncClient, api_root: str
) -> None:
    """101 operations get a 400 and nothing runs; 100 are accepted."""
    company = sandbox.env["BC_COMPANY_ID"]
    too_many = [create(f"N{i}", company) for i in range(101)]
    refused = await bc.post(f"{api_root}/$batch", json={"requests": too_many})
    assert refused.status_code == 400
    assert not any(c["number"].startswith("N") for c in sandbox.bc.records("customers"))
    accepted = await bc.post(f"{api_root}/$batch", json={"requests": too_many[:100]})
    assert accepted.status_code == 200
    assert len(accepted.json()["responses"]) == 100
