"""`make demo` end to end: Azurite + sandbox + devhost (as processes), admin sign-in, token refresh, BC calls."""

from __future__ import annotations

import pytest

from devhost.demo import STEPS, run

pytestmark = pytest.mark.integration


def test_demo_signs_in_refreshes_and_calls_business_central() -> None:
    """The demo exits 0 and its transcript shows every step, the sign-in, the rotation and the audited BC calls."""
    transcript: list[str] = []

    assert run(STEPS, out=transcript.append) == 0

    text = "\n".join(transcript)
    jwt_in_transcript = "eyJ" in text  # checked first, as a bool, so no failure below prints a token
    assert not jwt_in_transcript
    assert [line.split(" ")[1] for line in transcript if line.startswith("[")] == [
        step.__name__ for step in STEPS
    ]
    assert 'GET /api/health -> 200 {"status": "ok"}' in text
    assert "has_token=False" in text
    assert "callback 200: Business Central connected" in text
    assert "generation=2" in text  # the refresh rotated the token set once
    assert "PATCH " in text
    assert "-> 200" in text
    assert transcript[-1].startswith("demo passed")
