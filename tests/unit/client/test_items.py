"""A batch's item outcomes: the client's flow, driven by hand, reads the items table only when the row says
`itemsTruncated`; the product's items writer and reader use bcjobs.rows' entity shape."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from bcjobs import ErrorInfo, ItemOutcome, JobReport, JobState, ResultSummary
from bcjobs import _flows as flows
from bcjobs._flows import Driver, SdkCall, SdkRows, StorageClients
from bcjobs.errors import BcJobsError, JobsStorageError
from bcjobs.rows import ITEM_OUTCOME_COLUMN, item_from_row, item_row
from shared.jobs.audit import TableAuditLog
from tests.unit.client.test_flows import Recorder, answer, outcome

ITEMS = [
    ItemOutcome(index=0, status=201, id="a"),
    ItemOutcome(index=1, status=400, error=ErrorInfo(code="bc_validation", message="no")),
    ItemOutcome(index=2, rolled_back=True),
]
TRUNCATED = ResultSummary(count=3, items=[ITEMS[1]], items_truncated=True, items_succeeded=1, items_failed=2)


def storage(*, items_table: bool = True) -> StorageClients:
    return StorageClients(
        jobs_queue=Recorder(),
        results_queue=Recorder(),
        jobs_table=Recorder(),
        audit_table=Recorder(),
        items_table=Recorder() if items_table else None,
    )


def job_row(result: ResultSummary | None) -> dict[str, Any]:
    row = {"PartitionKey": "job-1", "RowKey": "job", "State": "succeeded"}
    return row if result is None else {**row, "Result": result.model_dump_json(by_alias=True)}


def answer_rows(driver: Driver[Any], rows: list[dict[str, Any]]) -> None:
    assert isinstance(driver.instruction, SdkRows)
    driver.instruction.into.extend(rows)
    driver.resume()


def test_a_row_that_holds_every_item_is_the_answer_without_the_items_table() -> None:
    """One storage call (the row); its items as they are."""
    driver = Driver(flows.items(storage(), "job-1"))
    assert isinstance(driver.instruction, SdkCall)
    answer(driver, job_row(ResultSummary(count=3, items=ITEMS)))
    assert outcome(driver) == (True, ITEMS)


@pytest.mark.parametrize("result", [None, ResultSummary(id="x")])
def test_a_job_without_items_has_none(result: ResultSummary | None) -> None:
    driver = Driver(flows.items(storage(), "job-1"))
    answer(driver, job_row(result))
    assert outcome(driver) == (True, [])


def test_a_missing_job_has_no_items() -> None:
    driver = Driver(flows.items(storage(), "job-1"))
    driver.fail(ResourceNotFoundError("gone"))
    assert outcome(driver) == (True, [])


def test_a_truncated_row_sends_the_flow_to_the_job_s_partition_of_the_items_table() -> None:
    """After the row, the flow queries the job's partition; the entities come back in operation order."""
    driver = Driver(flows.items(storage(), "job-1"))
    answer(driver, job_row(TRUNCATED))
    assert isinstance(driver.instruction, SdkRows)
    assert driver.instruction.action() == (
        "query_entities",
        ("PartitionKey eq @job",),
        {"parameters": {"job": "job-1"}},
    )
    answer_rows(driver, [item_row("job-1", item) for item in reversed(ITEMS)])
    assert outcome(driver) == (True, ITEMS)


def test_a_report_given_is_not_read_again() -> None:
    """items(report): the first instruction is already the items query."""
    report = JobReport(job_id="job-1", state=JobState.SUCCEEDED, result=TRUNCATED)
    driver = Driver(flows.items(storage(), report))
    answer_rows(driver, [item_row("job-1", item) for item in ITEMS])
    assert outcome(driver) == (True, ITEMS)


def test_fewer_kept_items_than_counted_are_returned_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    report = JobReport(job_id="job-1", state=JobState.SUCCEEDED, result=TRUNCATED)
    driver = Driver(flows.items(storage(), report))
    answer_rows(driver, [item_row("job-1", ITEMS[0])])
    assert outcome(driver) == (True, ITEMS[:1])
    assert "1 of its 3 item outcomes found" in caplog.text


def test_a_failed_or_missing_items_table_is_a_storage_error_not_an_empty_list() -> None:
    report = JobReport(job_id="job-1", state=JobState.SUCCEEDED, result=TRUNCATED)
    for error in (HttpResponseError("refused"), ResourceNotFoundError("TableNotFound")):
        driver = Driver(flows.items(storage(), report))
        with pytest.raises(JobsStorageError, match="reading the item outcomes of job job-1"):
            driver.fail(error)


def test_a_client_without_the_items_table_says_so() -> None:
    report = JobReport(job_id="job-1", state=JobState.SUCCEEDED, result=TRUNCATED)
    with pytest.raises(BcJobsError, match="items_table"):
        Driver(flows.items(storage(items_table=False), report))


class ItemsTable:
    """The aio TableClient calls the product's items writer and reader make, kept in memory."""

    table_name = "bcjobitems"

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    async def submit_transaction(self, operations: Sequence[tuple[str, dict[str, Any]]]) -> None:
        for kind, row in operations:
            assert kind == "upsert"
            self.rows[(row["PartitionKey"], row["RowKey"])] = dict(row)

    def query_entities(self, query_filter: str, *, parameters: dict[str, Any], **_: Any) -> Any:
        [(name, partition)] = parameters.items()
        assert query_filter == f"PartitionKey eq @{name}"
        return _Pager([_Entity(row) for (pk, _), row in self.rows.items() if pk == partition])


class _Entity(dict[str, Any]):
    metadata: ClassVar[dict[str, str]] = {"etag": 'W/"1"'}


class _Pager:
    def __init__(self, rows: list[_Entity]) -> None:
        self._rows = iter(rows)

    def __aiter__(self) -> _Pager:
        return self

    async def __anext__(self) -> _Entity:
        try:
            return next(self._rows)
        except StopIteration:
            raise StopAsyncIteration from None


async def test_the_product_writes_and_reads_the_items_table_in_bcjobs_rows_shape() -> None:
    """shared.jobs.audit's keep_items writes exactly bcjobs.rows.item_row's entities; read_items reads them back."""
    table = ItemsTable()
    log = TableAuditLog(table, table, table)  # type: ignore[arg-type]
    await log.keep_items("job-1", ITEMS)
    assert sorted(table.rows.values(), key=lambda row: row["RowKey"]) == [
        item_row("job-1", item) for item in ITEMS
    ]
    assert [item_from_row(row) for row in table.rows.values()] == ITEMS
    table.rows = {("job-1", row["RowKey"]): row for row in (item_row("job-1", item) for item in ITEMS)}
    assert await log.read_items("job-1") == ITEMS


def test_an_item_row_holds_the_outcome_s_camel_case_json() -> None:
    row = item_row("job-1", ITEMS[1])
    assert (row["PartitionKey"], row["RowKey"]) == ("job-1", "0001")
    assert json.loads(row[ITEM_OUTCOME_COLUMN]) == {
        "index": 1,
        "status": 400,
        "rolledBack": False,
        "error": {"code": "bc_validation", "message": "no", "retriable": False},
    }
