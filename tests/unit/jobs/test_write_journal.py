"""What a finished write job journals for the change feed's echoes: each version it produced, and nothing else."""

from __future__ import annotations

from uuid import UUID

from bcjobs import ItemOutcome, Job, ResultSummary
from bcjobs.changes import tombstone_version
from shared.jobs.journal import Written, writes_of

ID = UUID("c0a8e2b1-0000-0000-0000-000000000001")
OTHER = UUID("c0a8e2b1-0000-0000-0000-000000000002")


def test_an_update_journals_the_etag_bc_returned() -> None:
    """The job's record id and its new ETag, on the job's connection."""
    job = Job(job_id="j1", operation="update", entity_set="customers", id=ID, data={"displayName": "A"})
    found = writes_of(job, "contoso", ResultSummary(id=str(ID), etag='W/"2"'))
    assert found == (Written("contoso", "customers", str(ID), 'W/"2"', "j1"),)


def test_a_delete_journals_the_tombstone_version() -> None:
    """A delete has no ETag after it: its event's version is the tombstone's."""
    job = Job(job_id="j2", operation="delete", entity_set="customers", id=ID)
    assert writes_of(job, "contoso", ResultSummary()) == (
        Written("contoso", "customers", str(ID), tombstone_version(), "j2"),
    )


def test_reads_lines_and_failed_batch_items_journal_nothing() -> None:
    """A list, a document line (BC notifies its header, whose ETag the job never saw) and a failed item."""
    listing = Job(job_id="j3", operation="list", entity_set="customers")
    assert writes_of(listing, "contoso", ResultSummary(count=3)) == ()
    batch = Job.model_validate(
        {
            "jobId": "j4",
            "operation": "batch",
            "operations": [
                {"operation": "update", "entitySet": "items", "id": str(ID), "data": {"x": 1}},
                {"operation": "update", "entitySet": "items", "id": str(OTHER), "data": {"x": 2}},
                {
                    "operation": "create",
                    "entitySet": "salesOrderLines",
                    "parent": {"entitySet": "salesOrders", "id": str(OTHER)},
                    "data": {"x": 3},
                },
            ],
        }
    )
    items = [
        ItemOutcome(index=0, status=200, id=str(ID), etag='W/"5"'),
        ItemOutcome(index=1, status=409, error={"code": "conflict", "message": "m"}),
        ItemOutcome(index=2, status=201, id=str(OTHER), etag='W/"1"'),
    ]
    found = writes_of(batch, "contoso", ResultSummary(items=items))
    assert found == (Written("contoso", "items", str(ID), 'W/"5"', "j4"),)
