"""Every operation type through the real trigger: the row, the result message and the status route agree."""

from __future__ import annotations

from typing import Any

from bcjobs import JobReport
from sandbox import Sandbox
from tests.integration.jobs.conftest import JobsWorld


def run(world: JobsWorld, job: dict[str, Any]) -> JobReport:
    world.send(job)
    return world.wait_for(job["jobId"])


def one(sandbox: Sandbox, entity_set: str, **match: Any) -> dict[str, Any]:
    found = [row for row in sandbox.bc.records(entity_set) if all(row.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} {entity_set} records match"
    return found[0]


def test_a_created_customer_is_recorded_reported_and_audited(pipeline: JobsWorld, sandbox: Sandbox) -> None:
    """create → succeeded with BC's id and number; one result message; the status route shows the interactions."""
    report = run(
        pipeline,
        {
            "jobId": "create-1",
            "operation": "create",
            "entitySet": "customers",
            "data": {"displayName": "Adatum"},
            "correlationId": "crm-1",
        },
    )
    assert (report.state, report.attempts) == ("succeeded", 1)
    assert report.result is not None
    assert one(sandbox, "customers", displayName="Adatum")["id"] == report.result.id
    assert report.result.number
    results = pipeline.results(1)
    assert [(r.job_id, r.state, r.correlation_id) for r in results] == [("create-1", "succeeded", "crm-1")]
    status = pipeline.get("/api/jobs/create-1")
    assert status.status_code == 200
    body = status.json()
    assert (body["state"], body["correlationId"], body["result"]["id"]) == (
        "succeeded",
        "crm-1",
        report.result.id,
    )
    assert [i["method"] for i in body["interactions"]][-1] == "POST"
    assert all(i["clientRequestId"] and i["status"] == 201 for i in body["interactions"][-1:])


def test_get_and_list_return_the_records_with_a_structured_filter(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """get by id and list with filter/select/orderBy/top hand the records back in the result."""
    customer = sandbox.bc.records("customers")[0]
    got = run(
        pipeline,
        {
            "jobId": "get-1",
            "operation": "get",
            "entitySet": "customers",
            "id": customer["id"],
            "query": {"select": ["id", "number", "displayName"]},
        },
    )
    assert got.result is not None
    assert got.result.entities is not None
    assert got.result.entities[0]["number"] == customer["number"]
    assert got.result.etag
    listed = run(
        pipeline,
        {
            "jobId": "list-1",
            "operation": "list",
            "entitySet": "customers",
            "query": {
                "filter": [
                    {"field": "number", "operator": "in", "value": [customer["number"], "C-none"]},
                    {"field": "displayName", "operator": "contains", "value": "'; drop"},
                ],
                "top": 5,
            },
        },
    )
    assert listed.state == "succeeded"
    assert listed.result is not None
    assert listed.result.count == 0
    ordered = run(
        pipeline,
        {
            "jobId": "list-2",
            "operation": "list",
            "entitySet": "items",
            "query": {
                "filter": [{"field": "number", "operator": "startswith", "value": "19"}],
                "select": ["number"],
                "orderBy": ["number desc"],
                "top": 3,
            },
        },
    )
    assert ordered.result is not None
    assert ordered.result.entities is not None
    numbers = [e["number"] for e in ordered.result.entities]
    assert numbers == sorted(numbers, reverse=True)
    assert len(numbers) == 3


def test_update_with_and_without_an_etag_and_a_stale_etag_fails_with_bc_code(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """Without an ETag the PATCH sends If-Match: *; a stale one ends failed with BC's conflict code."""
    customer = sandbox.bc.records("customers")[1]
    first = run(
        pipeline,
        {
            "jobId": "upd-1",
            "operation": "update",
            "entitySet": "customers",
            "id": customer["id"],
            "data": {"phoneNumber": "111"},
        },
    )
    assert first.state == "succeeded"
    assert first.result is not None
    assert first.result.etag
    second = run(
        pipeline,
        {
            "jobId": "upd-2",
            "operation": "update",
            "entitySet": "customers",
            "id": customer["id"],
            "data": {"phoneNumber": "222"},
            "etag": first.result.etag,
        },
    )
    assert second.state == "succeeded"
    stale = run(
        pipeline,
        {
            "jobId": "upd-3",
            "operation": "update",
            "entitySet": "customers",
            "id": customer["id"],
            "data": {"phoneNumber": "333"},
            "etag": first.result.etag,
        },
    )
    assert (stale.state, stale.attempts) == ("failed", 1)
    assert stale.error is not None
    assert stale.error.code == "bc_etag_changed"
    assert stale.error.bc_code
    assert one(sandbox, "customers", id=customer["id"])["phoneNumber"] == "222"


def test_upsert_creates_then_updates_the_same_record_by_natural_key(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """The first upsert creates, the second finds the record by its number and updates it."""
    job = {"operation": "upsert", "entitySet": "items", "naturalKey": {"number": "UPS-1"}}
    created = run(pipeline, {**job, "jobId": "ups-1", "data": {"displayName": "Chair", "unitPrice": 10}})
    updated = run(pipeline, {**job, "jobId": "ups-2", "data": {"unitPrice": 12}})
    assert created.result is not None
    assert updated.result is not None
    assert (created.result.created, updated.result.created) == (True, False)
    assert created.result.id == updated.result.id
    assert one(sandbox, "items", number="UPS-1")["unitPrice"] == 12


def test_delete_and_a_missing_record_fails_with_not_found(pipeline: JobsWorld, sandbox: Sandbox) -> None:
    """delete removes the record; deleting it again fails at once with BC's not-found answer."""
    vendor = sandbox.bc.records("vendors")[0]
    job = {"operation": "delete", "entitySet": "vendors", "id": vendor["id"]}
    assert run(pipeline, {**job, "jobId": "del-1"}).state == "succeeded"
    again = run(pipeline, {**job, "jobId": "del-2"})
    assert (again.state, again.attempts) == ("failed", 1)
    assert again.error is not None
    assert again.error.code == "bc_not_found"
    assert again.error.status == 404
    assert not [row for row in sandbox.bc.records("vendors") if row["id"] == vendor["id"]]


def test_a_sales_order_with_lines_is_created_and_invoiced_and_an_invoice_is_posted(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """Deep insert of order lines, a line added through the parent, shipAndInvoice, then post an invoice."""
    customer, item = sandbox.bc.records("customers")[2], sandbox.bc.records("items")[0]
    line = {"lineType": "Item", "lineObjectNumber": item["number"], "quantity": 2}
    order = run(
        pipeline,
        {
            "jobId": "so-1",
            "operation": "create",
            "entitySet": "salesOrders",
            "data": {
                "customerNumber": customer["number"],
                "externalDocumentNumber": "PO-77",
                "salesOrderLines": [line],
            },
            "naturalKey": {"externalDocumentNumber": "PO-77"},
        },
    )
    assert order.state == "succeeded"
    assert order.result is not None
    assert order.result.id
    added = run(
        pipeline,
        {
            "jobId": "so-1-line-2",
            "operation": "create",
            "entitySet": "salesOrderLines",
            "parent": {"entitySet": "salesOrders", "id": order.result.id},
            "data": line,
        },
    )
    assert added.state == "succeeded", added.error
    shipped = run(
        pipeline,
        {
            "jobId": "so-1-invoice",
            "operation": "action",
            "entitySet": "salesOrders",
            "id": order.result.id,
            "action": "Microsoft.NAV.shipAndInvoice",
        },
    )
    assert shipped.state == "succeeded", shipped.error
    invoice = run(
        pipeline,
        {
            "jobId": "inv-1",
            "operation": "create",
            "entitySet": "salesInvoices",
            "data": {"customerNumber": customer["number"], "salesInvoiceLines": [line]},
        },
    )
    assert invoice.result is not None
    assert invoice.result.id
    posted = run(
        pipeline,
        {
            "jobId": "inv-1-post",
            "operation": "action",
            "entitySet": "salesInvoices",
            "id": invoice.result.id,
            "action": "post",
        },
    )
    assert posted.state == "succeeded", posted.error
    assert one(sandbox, "salesInvoices", id=invoice.result.id)["status"] != "Draft"


def test_a_batch_runs_every_operation_and_reports_each_item(pipeline: JobsWorld, sandbox: Sandbox) -> None:
    """A 150-operation batch goes as two $batch requests; every item has its own outcome."""
    operations = [
        {"operation": "create", "entitySet": "items", "data": {"number": f"B-{i}", "displayName": "x"}}
        for i in range(150)
    ]
    report = run(pipeline, {"jobId": "batch-1", "operation": "batch", "operations": operations})
    assert report.state == "succeeded", report.error
    assert report.result is not None
    assert report.result.items is not None
    assert [item.status for item in report.result.items] == [201] * 150
    assert len([r for r in sandbox.bc.records("items") if str(r["number"]).startswith("B-")]) == 150
    assert [i.method for i in pipeline.interactions("batch-1")].count("POST") == 2


def test_a_failed_atomic_batch_reports_every_operation_rolled_back(
    pipeline: JobsWorld, sandbox: Sandbox
) -> None:
    """One bad operation in a snapshot batch: failed, every item rolled back, nothing kept in BC."""
    operations = [
        {"operation": "create", "entitySet": "items", "data": {"number": "AT-1", "displayName": "ok"}},
        {"operation": "create", "entitySet": "items", "data": {"number": "AT-2", "noSuchField": 1}},
    ]
    report = run(
        pipeline, {"jobId": "atomic-1", "operation": "batch", "atomic": True, "operations": operations}
    )
    assert (report.state, report.attempts) == ("failed", 1)
    assert report.error is not None
    assert report.error.code == "batch_rolled_back"
    assert report.result is not None
    assert report.result.items is not None
    assert all(item.rolled_back for item in report.result.items)
    assert not [r for r in sandbox.bc.records("items") if str(r["number"]).startswith("AT-")]


def test_a_custom_api_route_is_served_and_an_unpublished_one_fails_not_found(pipeline: JobsWorld) -> None:
    """`api` reaches a custom API the environment publishes; one no app publishes ends failed with BC's 404."""
    listed = run(
        pipeline,
        {
            "jobId": "custom-1",
            "operation": "list",
            "entitySet": "customers",
            "api": {"publisher": "contoso", "group": "app", "version": "v1.0"},
            "query": {"top": 2},
        },
    )
    assert listed.state == "succeeded", listed.error
    assert listed.result is not None
    assert listed.result.count == 2
    missing = run(
        pipeline,
        {
            "jobId": "custom-2",
            "operation": "list",
            "entitySet": "customers",
            "api": {"publisher": "nobody", "group": "app", "version": "v1.0"},
        },
    )
    assert (missing.state, missing.attempts) == ("failed", 1)
    assert missing.error is not None
    assert missing.error.status == 404
