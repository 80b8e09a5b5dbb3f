"""`make demo` end to end, smaller: Azurite + sandbox + a devhost worker (as processes), the admin's sign-in, a
mixed workload through the queue under faults, the token running out mid-run, and the demo's own checks."""

from __future__ import annotations

import json

import pytest

from devhost.demo import STEPS, run
from devhost.demo_context import DemoOptions

pytestmark = pytest.mark.integration


def test_demo_runs_the_workload_under_faults_and_checks_its_own_outcome() -> None:
    """60 jobs, one worker: exit 0, every step in order, the summary's JSON line says every job is final and
    nothing is duplicated in BC; the ambiguous write was reconciled and the token refreshed mid-run."""
    transcript: list[str] = []

    code = run(STEPS, out=transcript.append, options=DemoOptions(jobs=60, workers=1, progress=False))

    text = "\n".join(transcript)
    jwt_in_transcript = "eyJ" in text  # checked first, as a bool, so no failure below prints a token
    assert not jwt_in_transcript
    steps = [line.split(" ")[1] for line in transcript if line.startswith("[")]
    assert code == 0, [line for line in transcript if "FAILED" in line]
    assert steps == [step.__name__ for step in STEPS]
    assert "callback 200: Business Central connected" in text
    assert "the workers refreshed the token" in text
    assert "bcjobs show " in text
    figures = json.loads(transcript[-1])
    assert figures["non_terminal"] == 0
    assert figures["duplicates_in_bc"] == 0
    assert figures["jobs"] == 65  # 60 jobs and 5 invalid messages, each one row whatever was resent
    assert figures["rejected"] == 5
    assert figures["reconciled"] >= 1  # the ambiguous write
    assert figures["bc_requests"] > 0
    assert figures["passed"] is True
    assert transcript[-2].startswith("demo passed")
