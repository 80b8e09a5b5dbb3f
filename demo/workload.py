"""The demo's workload: a realistic mix of BC jobs built from what the app learned about the company first.

Before the main run the app lists customers and items and creates the draft invoices it will post (all as jobs
through the queue, `discovery_jobs` / `invoice_jobs`). The main run then sends, in this order: customer creates
with a natural key (the first writes, so the one injected ambiguous write lands on a reconcilable job), a few
invalid messages, then the rest interleaved: customer and item upserts by natural key (existing and new),
customer updates with and without an ETag, sales orders with lines, invoice postings (a bound action), lists with
filters, gets, one `$batch` of 150 operations, and resends of some job ids. Records are partitioned so no two
jobs write the same record (and posting, which touches its customer and items, only touches reserved ones):
whatever fails, fails for the product's reasons, not because the workload raced itself.

Every job that creates something names what BC must hold afterwards (`Expectation`), which the demo checks.
"""

from __future__ import annotations

import base64
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

INVOICES = 10  # draft invoices the app creates and posts (fewer in small runs)
RESERVED = 5  # customers and items only the invoices use
BATCH_OPERATIONS = 150
VENDOR_CREATES = 50  # of the batch's operations; the rest are gets


@dataclass(frozen=True, slots=True)
class Expectation:
    """After the run BC holds exactly one `entity_set` record with `field == value` if `job_id` succeeded
    (at most one otherwise); `values`, when given, are the fields the job set."""

    job_id: str
    entity_set: str
    field: str
    value: str
    values: dict[str, Any] | None = None
    batch_index: int | None = None  # the operation of a batch job that created it


@dataclass
class Workload:
    """The main run's messages in send order, and what BC must hold afterwards."""

    jobs: list[dict[str, Any]] = field(default_factory=list)  # valid jobs (resends included), in send order
    first_wave: int = 0  # how many of `jobs` go first (the natural-key creates)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (what is wrong, raw message text)
    kinds: dict[str, str] = field(default_factory=dict)  # job id -> kind
    expectations: list[Expectation] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)  # job ids sent twice

    @property
    def distinct_jobs(self) -> int:
        """Job ids among the valid jobs."""
        return len(self.kinds)

    def count_by_kind(self) -> dict[str, int]:
        """Distinct jobs per kind."""
        return dict(Counter(self.kinds.values()))


@dataclass(frozen=True, slots=True)
class Company:
    """What discovery found: seeded customers and items (id, number, ETag) and the app's draft invoices."""

    customers: list[dict[str, Any]]
    items: list[dict[str, Any]]
    invoices: list[str] = field(default_factory=list)  # ids of the drafts the app created


def discovery_jobs() -> list[dict[str, Any]]:
    """Two list jobs: the company's customers and items (ids, numbers, ETags come back in the results)."""
    return [
        {
            "jobId": "demo-discover-customers",
            "operation": "list",
            "entitySet": "customers",
            "query": {"select": ["id", "number", "displayName", "city"], "orderBy": ["number"], "top": 1000},
        },
        {
            "jobId": "demo-discover-items",
            "operation": "list",
            "entitySet": "items",
            "query": {"select": ["id", "number", "unitPrice"], "orderBy": ["number"], "top": 1000},
        },
    ]


def invoice_count(total: int) -> int:
    """Draft invoices for a run of `total` jobs (10 at 300)."""
    return max(2, min(INVOICES, round(INVOICES * total / 300)))


def invoice_jobs(company: Company, count: int) -> tuple[list[dict[str, Any]], list[Expectation]]:
    """Draft sales invoices (with lines) for the reserved customers and items, keyed by externalDocumentNumber."""
    customers, items = reserved(company)
    jobs, expectations = [], []
    for n in range(count):
        key = f"DEMO-INV-{n + 1:03d}"
        job_id = f"demo-invoice-create-{n + 1:03d}"
        lines = [
            {"lineType": "Item", "lineObjectNumber": items[(n + k) % len(items)]["number"], "quantity": k + 1}
            for k in range(2)
        ]
        jobs.append(
            {
                "jobId": job_id,
                "operation": "create",
                "entitySet": "salesInvoices",
                "data": {
                    "customerNumber": customers[n % len(customers)]["number"],
                    "salesInvoiceLines": lines,
                },
                "naturalKey": {"externalDocumentNumber": key},
            }
        )
        expectations.append(Expectation(job_id, "salesInvoices", "externalDocumentNumber", key))
    return jobs, expectations


def reserved(company: Company) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The customers and items kept for the invoices (posting changes them)."""
    return company.customers[-RESERVED:], company.items[-RESERVED:]


@dataclass(frozen=True, slots=True)
class Mix:
    """How many jobs of each kind the main run sends."""

    customer_creates: int
    customer_upserts: int
    item_upserts: int
    updates_with_etag: int
    updates_without_etag: int
    sales_orders: int
    postings: int
    lists: int
    gets: int
    batches: int = 1

    @property
    def total(self) -> int:
        """Distinct jobs of the main run."""
        return (
            self.customer_creates
            + self.customer_upserts
            + self.item_upserts
            + self.updates_with_etag
            + self.updates_without_etag
            + self.sales_orders
            + self.postings
            + self.lists
            + self.gets
            + self.batches
        )


def mix_for(total: int, company: Company) -> Mix:
    """The main run's mix so that discovery + invoices + main run = `total` distinct jobs (300: 60 creates, 30
    + 30 upserts, 20 + 15 updates, 40 orders, 10 postings, 40 lists, the batch, the rest gets)."""
    scale = total / 300
    postings = len(company.invoices)
    free_customers = len(company.customers) - RESERVED
    free_items = len(company.items) - RESERVED

    def part(base: int, least: int = 1) -> int:
        return max(least, round(base * scale))

    upsert_existing = min(part(15), free_customers // 3)
    with_etag = min(part(20), free_customers // 3)
    without_etag = min(part(15), free_customers - upsert_existing - with_etag)
    mix = Mix(
        customer_creates=part(60, 4),
        customer_upserts=2 * upsert_existing,
        item_upserts=2 * min(part(15), free_items),
        updates_with_etag=with_etag,
        updates_without_etag=without_etag,
        sales_orders=part(40),
        postings=postings,
        lists=part(40),
        gets=0,
    )
    fixed = len(discovery_jobs()) + postings  # the invoice creates count as many as the postings
    gets = max(1, total - fixed - mix.total)
    return Mix(**{**_fields(mix), "gets": gets})


def _fields(mix: Mix) -> dict[str, int]:
    return {name: getattr(mix, name) for name in Mix.__dataclass_fields__}


def build(total: int, company: Company, seed: int = 1) -> Workload:
    """The main run for `total` distinct jobs in all (discovery and invoice creates included)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not security
    mix = mix_for(total, company)
    work = Workload()
    customers, items = company.customers[:-RESERVED], company.items[:-RESERVED]
    first = [_customer_create(work, n) for n in range(mix.customer_creates)]
    half = mix.customer_upserts // 2
    rest = [_customer_upsert(work, n, customers[n]["number"] if n < half else None) for n in range(2 * half)]
    etag_targets = customers[half : half + mix.updates_with_etag]
    plain_targets = customers[half + mix.updates_with_etag :][: mix.updates_without_etag]
    rest += [_customer_update(work, n, c, with_etag=True) for n, c in enumerate(etag_targets)]
    rest += [_customer_update(work, n, c, with_etag=False) for n, c in enumerate(plain_targets)]
    item_half = mix.item_upserts // 2
    rest += [
        _item_upsert(work, n, items[n]["number"] if n < item_half else None) for n in range(2 * item_half)
    ]
    rest += [_sales_order(work, n, rng, customers, items) for n in range(mix.sales_orders)]
    rest += [_posting(work, n, invoice) for n, invoice in enumerate(company.invoices)]
    rest += [_list(work, n, rng, customers) for n in range(mix.lists)]
    rest += [_get(work, n, rng, customers, items) for n in range(mix.gets)]
    rng.shuffle(rest)
    rest.insert(len(rest) // 2, _batch(work, rng, customers, items))
    resends = _resends(first + rest, rng, total)
    work.jobs = first + _with_resends(rest, resends, rng)
    work.first_wave = len(first)
    work.resent = [str(job["jobId"]) for job in resends]
    work.invalid = invalid_messages()
    return work


def _customer_create(work: Workload, n: int) -> dict[str, Any]:
    job_id, number = f"demo-customer-create-{n + 1:03d}", f"DEMO-C-{n + 1:04d}"
    work.kinds[job_id] = "create customer"
    work.expectations.append(Expectation(job_id, "customers", "number", number))
    return {
        "jobId": job_id,
        "operation": "create",
        "entitySet": "customers",
        "data": {
            "displayName": f"Demo Customer {n + 1}",
            "email": f"ap{n + 1}@customer.example",
            "type": "Company",
        },
        "naturalKey": {"number": number},
    }


def _customer_upsert(work: Workload, n: int, existing: str | None) -> dict[str, Any]:
    job_id = f"demo-customer-upsert-{n + 1:03d}"
    number = existing or f"DEMO-CU-{n + 1:04d}"
    work.kinds[job_id] = "upsert customer"
    values = {"displayName": f"Upserted Customer {n + 1}", "website": f"https://c{n + 1}.example"}
    work.expectations.append(Expectation(job_id, "customers", "number", number, values))
    return {
        "jobId": job_id,
        "operation": "upsert",
        "entitySet": "customers",
        "naturalKey": {"number": number},
        "data": values,
    }


def _item_upsert(work: Workload, n: int, existing: str | None) -> dict[str, Any]:
    job_id = f"demo-item-upsert-{n + 1:03d}"
    number = existing or f"DEMO-I-{n + 1:04d}"
    work.kinds[job_id] = "upsert item"
    values = {"displayName": f"Demo Item {n + 1}", "unitPrice": round(10 + 7.5 * n, 2)}
    work.expectations.append(Expectation(job_id, "items", "number", number, values))
    return {
        "jobId": job_id,
        "operation": "upsert",
        "entitySet": "items",
        "naturalKey": {"number": number},
        "data": values,
    }


def _customer_update(work: Workload, n: int, customer: dict[str, Any], *, with_etag: bool) -> dict[str, Any]:
    label = "etag" if with_etag else "noetag"
    job_id = f"demo-customer-update-{label}-{n + 1:03d}"
    work.kinds[job_id] = "update customer (ETag)" if with_etag else "update customer (no ETag)"
    values: dict[str, Any] = (
        {"phoneNumber": f"+1 425 555 {n + 1:04d}"} if with_etag else {"creditLimit": 2500 + 100 * n}
    )
    work.expectations.append(Expectation(job_id, "customers", "number", str(customer["number"]), values))
    job = {
        "jobId": job_id,
        "operation": "update",
        "entitySet": "customers",
        "id": customer["id"],
        "data": values,
    }
    if with_etag:
        job["etag"] = customer["@odata.etag"]
    return job


def _sales_order(
    work: Workload, n: int, rng: random.Random, customers: list[dict[str, Any]], items: list[dict[str, Any]]
) -> dict[str, Any]:
    job_id, key = f"demo-sales-order-{n + 1:03d}", f"DEMO-SO-{n + 1:04d}"
    work.kinds[job_id] = "sales order with lines"
    work.expectations.append(Expectation(job_id, "salesOrders", "externalDocumentNumber", key))
    lines = [
        {"lineType": "Item", "lineObjectNumber": rng.choice(items)["number"], "quantity": rng.randint(1, 9)}
        for _ in range(rng.randint(1, 3))
    ]
    return {
        "jobId": job_id,
        "operation": "create",
        "entitySet": "salesOrders",
        "data": {"customerNumber": rng.choice(customers)["number"], "salesOrderLines": lines},
        "naturalKey": {"externalDocumentNumber": key},
    }


def _posting(work: Workload, n: int, invoice: str) -> dict[str, Any]:
    job_id = f"demo-invoice-post-{n + 1:03d}"
    work.kinds[job_id] = "post invoice (action)"
    return {
        "jobId": job_id,
        "operation": "action",
        "entitySet": "salesInvoices",
        "id": invoice,
        "action": "Microsoft.NAV.post",
    }


def _list(work: Workload, n: int, rng: random.Random, customers: list[dict[str, Any]]) -> dict[str, Any]:
    job_id = f"demo-list-{n + 1:03d}"
    work.kinds[job_id] = "list with filter"
    city = str(rng.choice(customers).get("city") or "Seattle")
    queries: list[tuple[str, dict[str, Any]]] = [
        (
            "customers",
            {
                "filter": [{"field": "city", "operator": "eq", "value": city}],
                "select": ["number", "displayName"],
            },
        ),
        (
            "items",
            {
                "filter": [{"field": "unitPrice", "operator": "gt", "value": 100 + 10 * n}],
                "orderBy": ["unitPrice desc"],
                "top": 5,
            },
        ),
        (
            "salesOrders",
            {
                "filter": [
                    {"field": "customerNumber", "operator": "eq", "value": rng.choice(customers)["number"]}
                ],
                "select": ["number", "totalAmountIncludingTax"],
            },
        ),
        (
            "vendors",
            {"filter": [{"field": "displayName", "operator": "startswith", "value": "Demo"}], "top": 20},
        ),
        (
            "customers",
            {
                "filter": [
                    {"field": "number", "operator": "in", "value": [c["number"] for c in customers[:3]]}
                ]
            },
        ),
    ]
    entity_set, query = queries[n % len(queries)]
    return {"jobId": job_id, "operation": "list", "entitySet": entity_set, "query": query}


def _get(
    work: Workload, n: int, rng: random.Random, customers: list[dict[str, Any]], items: list[dict[str, Any]]
) -> dict[str, Any]:
    job_id = f"demo-get-{n + 1:03d}"
    work.kinds[job_id] = "get by id"
    if n % 2:
        return {"jobId": job_id, "operation": "get", "entitySet": "items", "id": rng.choice(items)["id"]}
    return {
        "jobId": job_id,
        "operation": "get",
        "entitySet": "customers",
        "id": rng.choice(customers)["id"],
        "query": {"select": ["number", "displayName", "balanceDue"]},
    }


def _batch(
    work: Workload, rng: random.Random, customers: list[dict[str, Any]], items: list[dict[str, Any]]
) -> dict[str, Any]:
    job_id = "demo-batch-150"
    work.kinds[job_id] = "$batch (150 operations)"
    operations: list[dict[str, Any]] = []
    for n in range(BATCH_OPERATIONS):
        if n % 3 == 0 and len(operations) < 3 * VENDOR_CREATES:
            number = f"DEMO-V-{n // 3 + 1:03d}"
            data = {"number": number, "displayName": f"Demo Vendor {n // 3 + 1}", "city": "Redmond"}
            operations.append({"operation": "create", "entitySet": "vendors", "data": data})
            work.expectations.append(Expectation(job_id, "vendors", "number", number, batch_index=n))
        elif n % 3 == 1:
            operations.append(
                {"operation": "get", "entitySet": "customers", "id": rng.choice(customers)["id"]}
            )
        else:
            operations.append({"operation": "get", "entitySet": "items", "id": rng.choice(items)["id"]})
    return {"jobId": job_id, "operation": "batch", "atomic": False, "operations": operations}


def _resends(jobs: list[dict[str, Any]], rng: random.Random, total: int) -> list[dict[str, Any]]:
    """About one job in fifteen is sent again with the same job id (writes first: that is where it matters)."""
    candidates = [job for job in jobs if job["operation"] in ("create", "upsert", "update", "action")]
    return rng.sample(candidates, k=min(len(candidates), max(2, total // 15)))


def _with_resends(
    jobs: list[dict[str, Any]], resends: list[dict[str, Any]], rng: random.Random
) -> list[dict[str, Any]]:
    """Each resend goes in a random place after its first copy (the first wave is sent before all of these)."""
    out = list(jobs)
    for job in resends:
        start = out.index(job) + 1 if job in out else 0
        out.insert(rng.randint(start, len(out)), dict(job))
    return out


def invalid_messages() -> list[tuple[str, str]]:
    """Messages an application in another language might send by mistake (the client would refuse them)."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    return [
        ("not base64", "this is not base64 at all!"),
        ("base64 of text that is not JSON", b64("<job>create customer</job>")),
        (
            "unknown operation",
            b64(json.dumps({"jobId": "demo-invalid-op", "operation": "explode", "entitySet": "customers"})),
        ),
        (
            "update without an id",
            b64(
                json.dumps(
                    {
                        "jobId": "demo-invalid-update",
                        "operation": "update",
                        "entitySet": "customers",
                        "data": {"city": "Paris"},
                    }
                )
            ),
        ),
        (
            "OData text in a filter value",
            b64(
                json.dumps(
                    {
                        "jobId": "demo-invalid-filter",
                        "operation": "list",
                        "entitySet": "customers",
                        "query": {"filter": "city eq 'Paris'"},
                    }
                )
            ),
        ),
    ]
