"""The demo's step runner: transcript, failure message and cleanup, with in-memory steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo import steps
from demo.context import DemoContext, DemoError
from demo.steps import keep_logs_on_failure, run


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


@pytest.mark.parametrize("fails", [True, False], ids=["failed", "passed"])
def test_a_failed_demo_keeps_its_workers_logs_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    """The workers' log folder is temporary; when a step fails its logs are copied out first, a pass keeps none."""
    monkeypatch.setattr(steps, "KEPT_LOGS", tmp_path / "kept")
    logs = tmp_path / "workers"

    def start(context: DemoContext) -> str:
        """Start the workers."""
        logs.mkdir()
        (logs / "worker-1.log").write_text("jobs_process: took bc-jobs message 1\n", encoding="utf-8")
        keep_logs_on_failure(context, logs)
        return "started"

    def check(context: DemoContext) -> str:
        """Check the feed."""
        if fails:
            raise DemoError("the events did not arrive")
        return "ok"

    transcript: list[str] = []
    run([start, check], out=transcript.append)
    kept = list((tmp_path / "kept").glob("*/worker-1.log"))
    if fails:
        assert [path.read_text(encoding="utf-8") for path in kept] == [
            "jobs_process: took bc-jobs message 1\n"
        ]
        assert f"the workers' logs are kept in {kept[0].parent}" in transcript[-1]
    else:
        assert kept == []
