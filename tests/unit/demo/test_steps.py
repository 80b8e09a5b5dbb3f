"""The demo's step runner: transcript, failure message and cleanup, with in-memory steps."""

from __future__ import annotations

from demo.context import DemoContext, DemoError
from demo.steps import run


def test_failing_step_stops_the_demo_with_a_clear_message_and_cleans_up() -> None:
    """A failing step gives exit code 1, names the step and reason, skips later steps and runs cleanups."""
    cleaned: list[str] = []
    ran: list[str] = []

    def first(context: DemoContext) -> str:
        """Register a cleanup."""
        context.cleanup.callback(cleaned.append, "first")
        return "ok"

    def second(context: DemoContext) -> str:
        """Fail."""
        raise DemoError("expected 200, got 503")

    def third(context: DemoContext) -> str:
        """Never runs."""
        ran.append("third")
        return "ok"

    transcript: list[str] = []
    assert run([first, second, third], out=transcript.append) == 1
    assert "[2/3] second: FAILED - expected 200, got 503" in transcript
    assert transcript[-1] == "demo failed at step 'second' (Fail.)"
    assert ran == []
    assert cleaned == ["first"]


def test_passing_steps_print_one_line_each() -> None:
    """Every step's outcome is printed, numbered, and the run ends with a pass line and exit code 0."""
    transcript: list[str] = []
    assert run([lambda context: "answer 42"], out=transcript.append) == 0
    assert transcript[1].startswith("[1/1] <lambda> (")
    assert transcript[1].endswith("): answer 42")
    assert transcript[-1].startswith("demo passed")
