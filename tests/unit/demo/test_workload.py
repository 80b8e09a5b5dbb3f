"""The demo's workload: the size and mix the issue asks for, every job valid, no two jobs writing one record."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest

from bcjobs import InvalidJobError
from bcjobs.submit import prepare
from bcjobs.wire import decode
from demo.workload import (
    BATCH_OPERATIONS,
    Company,
    build,
    discovery_jobs,
    invoice_count,
    invoice_jobs,
    reserved,
)


def company(invoices: int = 10) -> Company:
    customers = [
        {
            "id": str(uuid.uuid4()),
            "number": f"C{10010 + 10 * n}",
            "@odata.etag": f'W/"c{n}"',
            "city": "Atlanta",
        }
        for n in range(60)
    ]
    items = [
        {"id": str(uuid.uuid4()), "number": f"{1896 + n}-S", "@odata.etag": f'W/"i{n}"'} for n in range(40)
    ]
    return Company(customers, items, [str(uuid.uuid4()) for _ in range(invoices)])


def written_record(job: dict[str, Any]) -> str | None:
    """Which record a write job changes (None for reads)."""
    if job["operation"] in ("create", "upsert"):
        return f"{job['entitySet']}:{sorted(job['naturalKey'].items())}"
    if job["operation"] in ("update", "action", "delete"):
        return f"{job['entitySet']}:{job['id']}"
    return None


@pytest.mark.parametrize("total", [60, 300, 1000])
def test_the_run_has_exactly_the_requested_number_of_distinct_jobs(total: int) -> None:
    """Discovery lists + invoice creates + the main run's distinct job ids = `total`."""
    work = build(total, company(invoice_count(total)))
    assert len(discovery_jobs()) + invoice_count(total) + work.distinct_jobs == total
    assert len({job["jobId"] for job in work.jobs}) == work.distinct_jobs


def test_the_default_run_has_every_kind_the_issue_lists() -> None:
    """Creates and upserts by natural key, updates with and without ETag, orders with lines, postings, lists
    with filters, one $batch of 150 operations, resends and a few invalid messages."""
    work = build(300, company())
    kinds = work.count_by_kind()
    for kind in (
        "create customer",
        "upsert customer",
        "upsert item",
        "update customer (ETag)",
        "update customer (no ETag)",
        "sales order with lines",
        "post invoice (action)",
        "list with filter",
        "get by id",
    ):
        assert kinds[kind] >= 10, kind
    batch = [job for job in work.jobs if job["operation"] == "batch"]
    assert len(batch) == 1
    assert len(batch[0]["operations"]) == BATCH_OPERATIONS == 150
    assert any("etag" in job for job in work.jobs if job["operation"] == "update")
    assert any("etag" not in job for job in work.jobs if job["operation"] == "update")
    assert len(work.resent) >= 15
    assert len(work.invalid) >= 3


def test_every_job_is_valid_and_every_invalid_message_is_rejected_by_the_trigger_s_decoder() -> None:
    """The client would send each job as it is; the raw invalid messages fail `bcjobs.wire.decode`."""
    work = build(300, company())
    creates, _ = invoice_jobs(company(), 10)
    for job in [*discovery_jobs(), *creates, *work.jobs]:
        prepare(job)
    for _, text in work.invalid:
        with pytest.raises(InvalidJobError):
            decode(text)


def test_no_record_is_written_by_two_jobs_and_resends_are_exact_copies() -> None:
    """Whatever fails in the demo fails for the product's reasons, never because the workload raced itself."""
    work = build(300, company())
    first: dict[str, dict[str, Any]] = {}
    writers: Counter[str] = Counter()
    for job in work.jobs:
        if job["jobId"] in first:
            assert job == first[job["jobId"]]
            continue
        first[job["jobId"]] = job
        record = written_record(job)
        if record is not None:
            writers[record] += 1
    assert [record for record, n in writers.items() if n > 1] == []
    assert set(work.resent) <= set(first)


def test_the_first_wave_is_natural_key_creates_so_the_ambiguous_write_is_reconcilable() -> None:
    """The demo loses the answer to the first write: it must land on a job the product can look up."""
    work = build(300, company())
    wave = work.jobs[: work.first_wave]
    assert wave
    assert all(job["operation"] == "create" and job.get("naturalKey") for job in wave)


def test_posting_touches_only_reserved_customers_and_items() -> None:
    """Posting changes the invoice's customer and items (balance, inventory): no other job writes those."""
    data = company()
    customers, items = reserved(data)
    work = build(300, data)
    reserved_ids = {c["id"] for c in customers} | {i["id"] for i in items}
    reserved_numbers = {c["number"] for c in customers} | {i["number"] for i in items}
    for job in work.jobs:
        assert job.get("id") not in reserved_ids or job["operation"] in ("get", "action"), job["jobId"]
        assert (job.get("naturalKey") or {}).get("number") not in reserved_numbers, job["jobId"]
