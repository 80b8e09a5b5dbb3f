"""Exported log records: the job's dimensions on every record of its run, and nothing secret in any attribute."""

from __future__ import annotations

import asyncio
import logging

from shared import telemetry
from shared.redaction import REDACTED
from shared.telemetry.dimensions import scrub_attribute
from testkit.clock import ManualClock
from tests.fakes.telemetry import capture

log = logging.getLogger("shared.tests.telemetry")
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiIsImV4cCI6MX0.c2lnbmF0dXJlLXZhbHVl"


def test_records_of_a_job_scope_carry_the_jobs_dimensions() -> None:
    """job id, correlation id, operation and attempt are added to every record logged inside the scope."""
    with capture(ManualClock()) as captured:
        with telemetry.job_scope(message_id="m1"):
            telemetry.note_job(job_id="j-1", correlation_id="crm-9", operation="create")
            telemetry.note_job(attempt=2)
            log.info("working")
        log.info("outside")
        inside, outside = captured.records()
    attributes = dict(inside.log_record.attributes or {})
    assert {key: attributes[key] for key in ("job_id", "correlation_id", "operation", "attempt")} == {
        "job_id": "j-1",
        "correlation_id": "crm-9",
        "operation": "create",
        "attempt": "2",
    }
    assert "job_id" not in (outside.log_record.attributes or {})


def test_a_records_own_extra_wins_over_the_scope() -> None:
    """Code that logs a dimension explicitly is not overwritten by the scope."""
    with capture(ManualClock()) as captured, telemetry.job_scope(job_id="scope-id"):
        log.info("explicit", extra={"job_id": "own-id"})
        (record,) = captured.records()
    assert (record.log_record.attributes or {})["job_id"] == "own-id"


async def test_concurrent_jobs_keep_their_own_dimensions() -> None:
    """Each job's task has its own scope (one worker runs many jobs at once)."""

    async def run(job_id: str) -> None:
        with telemetry.job_scope(job_id=job_id):
            await asyncio.sleep(0)
            log.info("step of %s", job_id)

    with capture(ManualClock()) as captured:
        await asyncio.gather(*(run(f"job-{n}") for n in range(5)))
        pairs = {
            (str(r.log_record.body), (r.log_record.attributes or {})["job_id"]) for r in captured.records()
        }
    assert pairs == {(f"step of job-{n}", f"job-{n}") for n in range(5)}


def test_the_process_connection_is_a_default_dimension() -> None:
    """Records outside a job still name the connection the process serves."""
    telemetry.set_default_dimensions(connection="contoso")
    try:
        with capture(ManualClock()) as captured:
            log.info("timer ran")
            (record,) = captured.records()
        assert (record.log_record.attributes or {})["connection"] == "contoso"
    finally:
        telemetry.set_default_dimensions(connection="default")


def test_no_secret_reaches_an_exported_attribute_or_body() -> None:
    """Extras named like secrets are blanked; tokens in any text (extras, messages, stack traces) are redacted."""
    with capture(ManualClock()) as captured:
        log.info(
            "calling with Bearer %s",
            JWT,
            extra={
                "access_token": "opaque-token-value",
                "client_secret": "s3cr3t-value",
                "note": f"header was Authorization: Bearer {JWT}",
                "nested": {"refresh_token": "rt-value", "url": "https://x.test/cb?code=auth-code-value"},
            },
        )
        try:
            raise RuntimeError(f"refresh failed for refresh_token={JWT}")
        except RuntimeError:
            log.exception("failure")
        text = captured.exported_text()
    for secret in (JWT, "opaque-token-value", "s3cr3t-value", "rt-value", "auth-code-value"):
        assert secret not in text
    assert REDACTED in text


def test_scrubbing_keeps_what_ops_need() -> None:
    """BC's error codes, ids and numbers pass through unchanged."""
    assert scrub_attribute("bc_code", "Internal_EntityNotFound") == "Internal_EntityNotFound"
    assert scrub_attribute("error_code", "bc_throttled") == "bc_throttled"
    assert scrub_attribute("client_request_id", "1b4e28ba-2fa1-11d2-883f-0016d3cca427") == (
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    )
    assert scrub_attribute("attempts", 3) == 3
    assert scrub_attribute("code", "") == ""
