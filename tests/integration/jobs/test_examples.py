"""Every job in `examples/jobs/` succeeds as printed against the local world (`make dev`'s: the sandbox seeds the
records the examples name by id, `sandbox/bc/examples.py`)."""

from __future__ import annotations

import json
from pathlib import Path

from bcjobs import JobState
from sandbox import Sandbox
from tests.integration.jobs.conftest import JobsWorld

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples" / "jobs").glob("*.json"))


def test_every_example_job_succeeds_on_the_local_world(pipeline: JobsWorld, sandbox: Sandbox) -> None:
    """All examples sent at once (none depends on another's result), each ends succeeded, each batch item too."""
    jobs = [json.loads(path.read_text(encoding="utf-8")) for path in EXAMPLES]
    assert len(jobs) >= 11
    for job in jobs:
        pipeline.send(job)
    reports = {job["jobId"]: pipeline.wait_for(job["jobId"], timeout=60) for job in jobs}
    failed = {
        job_id: report.error for job_id, report in reports.items() if report.state != JobState.SUCCEEDED
    }
    assert failed == {}
    items = [item for report in reports.values() if report.result for item in report.result.items or []]
    assert [item.error for item in items if item.error is not None] == []
    posted = [row for row in sandbox.bc.records("salesInvoices") if row["number"] == "S-INV-EX1"]
    assert posted == [], "the example invoice was posted, so it has its posted number now"
