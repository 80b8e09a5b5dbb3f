"""The status page's line per connection: read in parallel and bounded, one connection's failure on its own line."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from shared.auth import ConnectionStatus, Health
from shared.connections import Connection
from shared.ops.page import render
from shared.ops.per_connection import VIEW_CONCURRENCY, connection_views
from shared.ops.snapshot import ThrottleRow
from testkit.clock import START
from tests.unit.telemetry.test_status_page import OK, STATES, snapshot

CLIENT = "11111111-2222-3333-4444-555555555555"


def connection(name: str, **changes: Any) -> Connection:
    return Connection(
        name=name, tenant_id="fabrikam.example", environment="production", client_id=CLIENT, **changes
    )


SETTINGS = connection("default", from_settings=True)


class Directory:
    """ConnectionDirectory in memory; `broken` connections' status reads fail; counts reads in flight."""

    def __init__(self, *connections: Connection, broken: frozenset[str] = frozenset()) -> None:
        self.all = [SETTINGS, *connections]
        self.broken = broken
        self.in_flight = 0
        self.most = 0

    async def connections(self) -> list[Connection]:
        return list(self.all)

    async def status(self, connection: Connection) -> ConnectionStatus:
        async with self._counted():
            if connection.name in self.broken:
                raise TimeoutError("Key Vault did not answer")
            return replace(OK, connection=connection.name)

    async def throttle_row(self, connection: Connection, now: datetime) -> ThrottleRow | None:
        async with self._counted():
            return ThrottleRow(2, None) if connection.name != "idle" else None

    def _counted(self) -> _Counted:
        return _Counted(self)


class _Counted:
    def __init__(self, directory: Directory) -> None:
        self._d = directory

    async def __aenter__(self) -> None:
        self._d.in_flight += 1
        self._d.most = max(self._d.most, self._d.in_flight)
        await asyncio.sleep(0)  # yield, so reads started together overlap

    async def __aexit__(self, *exc: object) -> None:
        self._d.in_flight -= 1


def row(job_id: str, state: str, connection: str | None, minutes_ago: int = 5) -> dict[str, Any]:
    at = START - timedelta(minutes=minutes_ago)
    return {
        "PartitionKey": job_id,
        "State": state,
        "Operation": "create customers",
        "UpdatedAt": at,
        "FinishedAt": at,
        **({"Connection": connection} if connection else {}),
    }


async def test_jobs_count_under_their_connection_and_old_rows_under_the_settings_one() -> None:
    rows = [
        row("a1", "succeeded", "contoso"),
        row("a2", "failed", "contoso"),
        row("old", "succeeded", None),  # written before connections existed
        row("d1", "succeeded", "default"),
    ]
    views = await connection_views(Directory(connection("contoso")), (rows, False), START)

    by_name = {view.name: view for view in views}
    assert by_name["default"].jobs.day == {"succeeded": 2}
    assert by_name["contoso"].jobs.day == {"succeeded": 1, "failed": 1}
    assert [f.job_id for f in by_name["contoso"].failures] == ["a2"]
    assert by_name["default"].failures == []


async def test_one_connections_unreadable_status_shows_on_its_line_only() -> None:
    directory = Directory(connection("contoso"), connection("fabrikam"), broken=frozenset({"fabrikam"}))
    views = await connection_views(directory, ([], False), START)

    by_name = {view.name: view for view in views}
    assert by_name["fabrikam"].status is None
    assert by_name["fabrikam"].problem == "token status could not be read (TimeoutError)"
    assert by_name["contoso"].status is not None
    assert by_name["contoso"].problem is None
    assert by_name["fabrikam"].throttle == ThrottleRow(2, None)


async def test_a_hundred_connections_are_read_with_at_most_the_bounded_reads_in_flight() -> None:
    directory = Directory(*(connection(f"c{i:03d}") for i in range(100)))
    views = await connection_views(directory, None, START)

    assert len(views) == 101
    assert 1 < directory.most <= VIEW_CONCURRENCY


async def test_the_page_lists_every_connection_with_health_expiry_budget_jobs_failure_and_next_step() -> None:
    rows = [row("crm-9", "failed", "contoso"), row("crm-8", "succeeded", "contoso")]
    directory = Directory(
        connection("contoso", company_name="CRONUS <EU>"),
        connection("idle"),
        connection("off", enabled=False, disabled_reason="customer left"),
    )
    views = await connection_views(directory, (rows, False), START)
    refused = replace(STATES["credentials_rejected"], connection="idle")
    views = [replace(v, status=refused) if v.name == "idle" else v for v in views]

    page = render(snapshot(connections=views))

    assert "<h2>Connections (4)</h2>" in page
    assert "<h2>Connection of the app settings</h2>" in page
    assert "<code>contoso</code>" in page
    assert "production, CRONUS &lt;EU&gt;" in page
    assert "1 succeeded, 1 failed" in page
    assert "crm-9 failed" in page
    assert "2 instance(s) sharing it" in page
    assert "<span class='badge bad'>credentials_rejected</span>" in page
    assert "fix the app registration" in page
    assert "<span class='badge warn'>disabled</span>" in page
    assert "PUT /api/connections/off with &quot;enabled&quot;: true" in page
    assert "<th>Connection</th><th>State</th>" in page  # the failures table names each job's connection


def test_with_only_the_settings_connection_the_page_is_as_before() -> None:
    page = render(snapshot())
    assert "Connections (" not in page
    assert "<h2>Connection</h2>" in page
    assert "<th>Connection</th>" not in page


def test_an_unreadable_registry_is_said_and_the_rest_still_shows() -> None:
    page = render(snapshot(problems={"connections": "could not be read (RegistryUnavailableError)"}))
    assert "Connections: could not be read (RegistryUnavailableError)" in page
    assert "<h2>Connection</h2>" in page
    assert Health.OK.value in page
