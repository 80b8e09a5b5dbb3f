"""`make demo` end to end: Azurite + devhost (as a process) + the product's health endpoint."""

from __future__ import annotations

import pytest

from devhost.demo import STEPS, run

pytestmark = pytest.mark.integration


def test_demo_runs_every_step_and_shows_the_health_answer() -> None:
    """The demo exits 0, and its transcript shows each step and the health answer."""
    transcript: list[str] = []
    assert run(STEPS, out=transcript.append) == 0
    assert any('GET /api/health -> 200 {"status": "ok"}' in line for line in transcript)
    assert [line.split(" ")[1] for line in transcript if line.startswith("[")] == [
        "start_azurite",
        "start_devhost",
        "call_health",
        "stop_devhost",
    ]
    assert transcript[-1].startswith("demo passed")
