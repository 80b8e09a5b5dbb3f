"""Schedule monitoring under devhost with Azurite: a monitored timer that missed an occurrence while no host ran
runs once, past due, when devhost starts, and its status is kept in the AzureWebJobsStorage account."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient

from devhost.host import DevHost
from devhost.timers import STATUS_TABLE
from localworld.azurite import AzuriteEndpoints
from localworld.polling import wait_until
from tests.integration.devhost import monitor_app
from tests.integration.devhost.sample_app import Recorder

pytestmark = pytest.mark.integration


@pytest.fixture
def status_table(azurite: AzuriteEndpoints) -> Iterator[TableClient]:
    """The table devhost keeps timer statuses in, in the AzureWebJobsStorage account."""
    with TableClient.from_connection_string(azurite.connection_string, STATUS_TABLE) as table:
        with contextlib.suppress(ResourceExistsError):
            table.create_table()
        yield table


def test_a_missed_occurrence_runs_once_past_due_at_start(
    azurite: AzuriteEndpoints, status_table: TableClient, unique_name: str, recorder: Recorder
) -> None:
    """Recorded Next (this New Year) is past: devhost runs the yearly timer at once with isPastDue and the
    recorded status, then records Last = that run and Next = the coming New Year."""
    year = datetime.now(UTC).year
    missed = datetime(year, 1, 1, tzinfo=UTC).isoformat()
    before = datetime(year - 1, 1, 1, tzinfo=UTC).isoformat()
    status_table.upsert_entity(
        {
            "PartitionKey": unique_name,
            "RowKey": "yearly",
            "Last": before,
            "Next": missed,
            "LastUpdated": before,
        }
    )
    settings = {
        "AzureWebJobsStorage": azurite.connection_string,
        "AzureFunctionsWebHost__hostid": unique_name,
        "SAMPLE_RECORD_FILE": str(recorder.path),
    }
    host = DevHost(monitor_app.app, settings, shutdown_grace=5).start()
    try:
        [run] = recorder.wait_for("yearly", timeout=15)
        assert run.data["past_due"] is True
        assert run.data["status"] == {"Last": before, "Next": missed, "LastUpdated": before}
        coming = datetime(year + 1, 1, 1, tzinfo=UTC).isoformat()
        wait_until(
            lambda: status_table.get_entity(unique_name, "yearly")["Next"] == coming,
            timeout=10,
            what="the status after the catch-up run",
        )
        assert status_table.get_entity(unique_name, "yearly")["Last"] > missed
    finally:
        host.stop()
    assert len(recorder.events("yearly")) == 1
