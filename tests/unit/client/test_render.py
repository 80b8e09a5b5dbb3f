"""What the CLI's tables look like on a 120-column terminal."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from bcjobs.cli.render import connections_table, interactions_table, jobs_listing, short_path
from bcjobs.common import JobDetails
from bcjobs.connections import ConnectionInfo
from bcjobs.results import ErrorInfo, JobReport, JobState
from bcjobs.rows import AuditedInteraction

COMPANY = "1a2b3c4d-0000-4000-8000-000000000001"
ORDER = "5e6f7a8b-0000-4000-8000-000000000002"
FULL = f"/v2.0/tenant-guid/Production/api/v2.0/companies({COMPANY})/salesOrders({ORDER})/salesOrderLines"


def test_a_bc_path_is_shown_from_companies_on_with_short_guids() -> None:
    """The API root and company are elided and GUIDs cut to 8 characters; a path that is only those stays."""
    assert short_path(FULL) == "…/salesOrders(5e6f7a8b…)/salesOrderLines"
    assert short_path("/v2.0/t/e/api/v2.0/companies") == "/v2.0/t/e/api/v2.0/companies"
    assert short_path(f"/api/v2.0/companies({COMPANY})") == f"/api/v2.0/companies({COMPANY[:8]}…)"
    assert short_path("/companies(c)/items") == "/companies(c)/items"  # no API root: nothing to elide


def test_the_bc_requests_table_keeps_each_request_on_one_line_at_120_columns() -> None:
    """Every column a failing request fills, at 120 columns: one line per request, the path whole."""
    at = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
    log = [
        AuditedInteraction(
            attempt=attempt,
            sequence=1,
            at=at,
            method="POST",
            path=FULL,
            status=400,
            duration_ms=123.4,
            bc_error_code="Internal_ValidationError",
            client_request_id="0f0e0d0c-0000-4000-8000-000000000003",
        )
        for attempt in (1, 2)
    ]
    details = JobDetails(job_id="job-1", state=JobState.FAILED, interactions=log)
    console = Console(width=120, record=True, highlight=False)
    console.print(interactions_table(details))
    lines = console.export_text().splitlines()
    rows = [line for line in lines if "POST" in line]
    assert len(rows) == 2
    assert all("…/salesOrders(5e6f7a8b…)/salesOrderLines" in row for row in rows)
    assert all("Internal_ValidationError" in row and "0f0e0d0c…" in row for row in rows)
    assert max(len(line) for line in lines) <= 120


def test_the_jobs_list_keeps_each_job_on_one_line_at_120_columns() -> None:
    """A dead-lettered job's whole id, operation and BC error code, in 120 columns."""
    report = JobReport(
        job_id="0f0e0d0c-0000-4000-8000-000000000003",
        state=JobState.DEAD_LETTERED,
        operation="create-order-line",
        attempts=3,
        updated_at=datetime(2026, 12, 6, 5, 0, tzinfo=UTC),
        error=ErrorInfo(code="bc_error", message="x", bc_code="Internal_ValidationError"),
    )
    console = Console(width=120, record=True, highlight=False)
    for part in jobs_listing([report], 100, total=1):
        console.print(part)
    lines = console.export_text().splitlines()
    (row,) = [line for line in lines if "create-order-line" in line]
    assert "0f0e0d0c-0000-4000-8000-000000000003" in row
    assert "Internal_ValidationError" in row
    assert max(len(line) for line in lines) <= 120


def test_the_connections_list_keeps_each_connection_on_one_line_at_120_columns() -> None:
    """A 40-character name, a tenant domain, a long company and a disabled state, in 120 columns."""
    name = "customer-with-a-long-name-0123456789-abc"
    connection = ConnectionInfo.model_validate(
        {
            "name": name,
            "tenantId": "fabrikam-industries.onmicrosoft.com",
            "environment": "production-eu",
            "clientId": "22222222-2222-2222-2222-222222222222",
            "companyName": "CRONUS International Ltd.",
            "credential": "key_vault_secret",
            "secretName": "bc-conn-x-secret",
            "enabled": False,
            "disabledReason": "moved",
        }
    )
    console = Console(width=120, record=True, highlight=False)
    console.print(connections_table([connection]))
    lines = console.export_text().splitlines()
    (row,) = [line for line in lines if name in line]
    assert "fabrikam-industries.onmicrosoft.com" in row
    assert "disabled" in row
    assert max(len(line) for line in lines) <= 120
