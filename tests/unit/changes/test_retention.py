"""The retention sweep's failures: one failed transaction is recorded and the other partitions are still swept;
a missing table is nothing to sweep; a retention below the floor is raised to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from shared.changes.retention import MINIMUM_RETENTION, Retention, sweep
from testkit.clock import ManualClock


class FakeTable:
    """Rows in a list; a transaction touching `failing` partition fails like a throttled call."""

    def __init__(self, rows: list[dict[str, Any]], failing: str = "", missing: bool = False) -> None:
        self.rows = rows
        self.failing = failing
        self.missing = missing
        self.transactions: list[int] = []

    async def query_entities(
        self, query_filter: str, *, select: list[str], parameters: dict[str, Any]
    ) -> AsyncIterator[Any]:
        if self.missing:
            raise ResourceNotFoundError("TableNotFound")
        for row in list(self.rows):
            yield row

    async def submit_transaction(self, operations: list[Any]) -> Any:
        if operations[0][1]["PartitionKey"] == self.failing:
            raise HttpResponseError("ServerBusy")
        self.transactions.append(len(operations))
        gone = {(op[1]["PartitionKey"], op[1]["RowKey"]) for op in operations}
        self.rows = [r for r in self.rows if (r["PartitionKey"], r["RowKey"]) not in gone]


def _rows(*partitions: str) -> list[dict[str, Any]]:
    return [{"PartitionKey": pk, "RowKey": f"r{n}"} for pk in partitions for n in range(3)]


async def test_a_failed_transaction_is_recorded_and_the_other_partitions_still_go() -> None:
    table = FakeTable(_rows("a", "b", "c"), failing="b")
    run = await sweep(table, "echoes", "Expires lt @now", {}, 100)
    assert (run.deleted, table.transactions) == (6, [3, 3])
    assert run.failures == ("delete of 3 rows of partition b: HttpResponseError",)
    assert {row["PartitionKey"] for row in table.rows} == {"b"}


async def test_no_table_yet_is_nothing_to_sweep() -> None:
    run = await sweep(FakeTable([], missing=True), "changes", "", {}, 100)
    assert (run.deleted, run.failures) == (0, ())


def test_a_retention_below_the_floor_keeps_the_floor() -> None:
    clock = ManualClock()
    retention = Retention(FakeTable([]), FakeTable([]), clock, timedelta(hours=1))
    assert retention.cutoff() == clock.now() - MINIMUM_RETENTION
